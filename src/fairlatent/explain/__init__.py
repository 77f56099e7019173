"""fairlatent.explain: where bias lives inside a classifier — network dissection and compositional
explanations of neurons (Bau et al. 2017; Mu & Andreas 2020), and a bias audit built on them."""
