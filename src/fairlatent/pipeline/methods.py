"""The de-biasing methods the pipeline can train, one registered object each.

A method is everything the pipeline needs to know to train one target classifier: which upstream stages it
needs (the latent stages and which edit's pairs, filtered by label agreement or not), how its training set
is built from the real data and the pairs, whether it uses sample weights, and whether its best epoch is
chosen on group-balanced validation AP. Before this module that knowledge was spread over six places of
:mod:`fairlatent.pipeline.run` and the config's list of names, and a name could pass validation with no
training recipe behind it. Now the config validates ``methods`` against this registry, and the pipeline
asks the registry for everything else, so adding a method touches only this file.

Every method selects its epoch on the real data set's ``val`` split (only the weighting differs) and is
evaluated on the real test splits.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from fairlatent.errors import FairlatentError
from fairlatent.latent.edits import DOMAIN_EDIT, EDIT_KINDS, MULTI_EDIT
from fairlatent.models.domain_heads import DOMAIN_HEADS


@dataclass(frozen=True)
class MethodContext:
    """What a training-set builder may read: the real data set, the pairs stage's folder, the attributes."""

    data_path: str
    pairs_dir: Path | None
    target: str
    protected: str
    translations: str | None = None
    oversampled: str | None = None
    load_dataset: Callable[[Any], Any] = field(default=None, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.load_dataset is None:
            from fairlatent.data.dataset import load_dataset

            object.__setattr__(self, "load_dataset", load_dataset)

    def pairs(self, name: str) -> str:
        """Path of one pair set written by the pairs stage (``complementary``, ``complementary_filtered``…)."""
        if self.pairs_dir is None:
            raise FairlatentError(f"pair set {name!r} asked for, but the pairs stage has not run")
        return str(Path(self.pairs_dir) / name)

    def translated(self) -> str:
        """Path of the translations stage's data set (every real training image in the other group)."""
        if self.translations is None:
            raise FairlatentError("translated images asked for, but the translations stage has not run")
        return self.translations

    def oversampled_set(self) -> str:
        """Path of the oversample stage's data set (the RAE's decoded images of the rare cells)."""
        if self.oversampled is None:
            raise FairlatentError("decoded rare-cell images asked for, but the oversample stage has not run")
        return self.oversampled

    def real_train_size(self) -> int:
        return len(self.load_dataset(self.data_path).split_indices("train"))


@dataclass(frozen=True)
class TrainingSets:
    """Arguments of :func:`fairlatent.train.classifier.train_classifier` for one method: the training data
    sets (their ``train`` rows are concatenated) and one weight array (or None) per set, or None for all
    ones. Validation is always on the real data set (``MethodContext.data_path``)."""

    sets: list[str]
    weights: list[np.ndarray | None] | None = None


#: Which pairs of an edit a method trains on (see :class:`Method`).
PAIR_FILTERS: tuple[str, ...] = ("all", "agree", "verified")
#: ``Method.pair_filter`` of a method whose filter is the run's ``latent.pair_filter`` (``latent_debias``).
FILTER_FROM_CONFIG = "config"


def pair_set_name(edit: str, pair_filter: str) -> str:
    """Folder of the pairs stage holding ``edit``'s pairs under ``pair_filter`` (``complementary``,
    ``complementary_filtered`` for agreement — its name since before there were two filters —,
    ``complementary_verified``)."""
    return {"all": edit, "agree": f"{edit}_filtered", "verified": f"{edit}_verified"}[pair_filter]


@dataclass(frozen=True)
class Method:
    """One de-biasing method.

    ``edit``: the latent edit whose pairs it trains on (None: real data only, no GAN or latent stages);
    ``pair_filter``: which of the edit's pairs (:data:`PAIR_FILTERS`): ``"all"``; ``"agree"``, those whose
    f_t label agreed on G(z) and G(z') (the reference code's option); ``"verified"``, those on which the edit
    did on the images what it does in latent space — f_t held *and* f_g flipped; or :data:`FILTER_FROM_CONFIG`,
    the run's ``latent.pair_filter`` (:meth:`with_filter` resolves it; ``latent_debias`` is such a method, so
    its default can depart from the paper while the paper's behaviour stays one setting away);
    ``sample_weights``: its builder
    returns per-sample weights; ``balanced_val``: select the best epoch on group-balanced validation AP
    (the paper does this for every model trained with synthetic data); ``translated``: trains on the real
    images translated to the other protected group (the translator stages); ``domain_heads``: None, or
    ``"independent"``: one head per protected group, each image trained through its own group's head, scored
    with their mean, or ``"discriminative"``: one softmax over the four (target, protected) cells, scored with
    the group summed out (Wang et al. 2020's two; :class:`fairlatent.models.classifier.AttributeClassifier`);
    ``post_process``: trains nothing, and
    post-processes the baseline classifier's scores with fairlearn's ``ThresholdOptimizer`` under these
    constraints (:mod:`fairlatent.train.postprocess`), fitted on validation; its outputs are decisions, so
    AP and KL do not apply to it; ``oversampled``: trains on the real images plus new images of the rare
    (target, protected) cells decoded by a class-preserving autoencoder fitted with the cells as classes
    (the oversample stage, ``[oversample]``; Mondal et al. 2023); ``probe_scored``: trains no classifier of its
    own: the oversample stage's autoencoder is the classifier (its EMA encoder + linear probe, trained on the
    real latents and on mixes of same-cell latents, the paper's final classifier), scoring P(target = 1) as the
    probe's probability of the two target-positive cells.
    """

    name: str
    description: str
    build: Callable[[MethodContext, "Method"], TrainingSets] = field(repr=False)
    edit: str | None = None
    pair_filter: str = "all"
    sample_weights: bool = False
    balanced_val: bool = False
    domain_heads: str | None = None
    post_process: str | None = None
    translated: bool = False
    oversampled: bool = False
    probe_scored: bool = False

    @property
    def trains(self) -> bool:
        """Whether it trains a classifier of its own in a ``train_<method>`` stage (a post-processing method uses
        the baseline's, a probe-scored one the oversample stage's autoencoder)."""
        return self.post_process is None and not self.probe_scored

    @property
    def scores(self) -> bool:
        """Whether it gives scores (AP and KL apply): every method but post-processing, which gives decisions."""
        return self.post_process is None

    def __post_init__(self) -> None:
        if self.edit is not None and self.edit not in (*EDIT_KINDS, DOMAIN_EDIT, MULTI_EDIT):
            raise ValueError(f"method {self.name!r}: unknown edit {self.edit!r}; edits are "
                             f"{', '.join((*EDIT_KINDS, DOMAIN_EDIT, MULTI_EDIT))}")
        if self.translated and self.edit is not None:
            raise ValueError(f"method {self.name!r}: trains on translations or on latent pairs, not both")
        if self.oversampled and (self.edit is not None or self.translated):
            raise ValueError(f"method {self.name!r}: trains on decoded rare-cell images, not on pairs or translations")
        if self.post_process is not None and (self.edit is not None or self.domain_heads or self.sample_weights
                                              or self.translated or self.oversampled):
            raise ValueError(f"method {self.name!r}: a post-processing method trains nothing (no edit, heads or weights)")
        if self.probe_scored and (not self.oversampled or self.sample_weights or self.domain_heads):
            raise ValueError(f"method {self.name!r}: a probe-scored method is the oversample stage's autoencoder "
                             "(oversampled=True), with no weights or heads of its own")
        if self.domain_heads is not None and self.domain_heads not in DOMAIN_HEADS:
            raise ValueError(f"method {self.name!r}: unknown domain_heads {self.domain_heads!r}; "
                             f"they are {', '.join(DOMAIN_HEADS)}")
        if self.pair_filter not in (*PAIR_FILTERS, FILTER_FROM_CONFIG):
            raise ValueError(f"method {self.name!r}: unknown pair_filter {self.pair_filter!r}; "
                             f"filters are {', '.join(PAIR_FILTERS)} (or {FILTER_FROM_CONFIG!r})")
        if self.pair_filter != "all" and self.edit is None:
            raise ValueError(f"method {self.name!r}: pair_filter {self.pair_filter!r} needs an edit")

    @property
    def needs_pairs(self) -> bool:
        """Whether it needs the GAN, labeler, latents, hyperplanes and pairs stages."""
        return self.edit is not None

    def with_filter(self, configured: str) -> "Method":
        """This method with a pair filter taken from the config resolved to ``configured`` (itself when its
        filter is fixed)."""
        if self.pair_filter != FILTER_FROM_CONFIG:
            return self
        if configured not in PAIR_FILTERS:
            raise ValueError(f"unknown pair filter {configured!r}; filters are {', '.join(PAIR_FILTERS)}")
        return replace(self, pair_filter=configured)

    @property
    def pair_set(self) -> str | None:
        """Name of the folder of the pairs stage it trains on."""
        if self.edit is None:
            return None
        if self.pair_filter == FILTER_FROM_CONFIG:
            raise AssertionError(f"method {self.name}: resolve its pair filter with with_filter() first")
        return pair_set_name(self.edit, self.pair_filter)

    def training_sets(self, ctx: MethodContext) -> TrainingSets:
        out = self.build(ctx, self)
        if out.weights is not None and len(out.weights) != len(out.sets):
            raise AssertionError(f"method {self.name}: {len(out.weights)} weight arrays for {len(out.sets)} sets")
        return out


_REGISTRY: dict[str, Method] = {}


def register_method(method: Method, *, replace: bool = False) -> Method:
    """Add a method to the registry (``replace=True`` to redefine one); returns it."""
    if method.name in _REGISTRY and not replace:
        raise ValueError(f"method {method.name!r} is already registered")
    _REGISTRY[method.name] = method
    return method


def get_method(name: str) -> Method:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise FairlatentError(f"unknown method {name!r}; methods are: {', '.join(_REGISTRY)}") from None


def pair_uses(methods: list[str], pair_filter: str) -> dict[str, tuple[str, str]]:
    """Per method of ``methods`` that trains on latent pairs, (its edit, its pair filter) in a run whose
    ``latent.pair_filter`` is ``pair_filter``: which pre-flight failures block it
    (:func:`fairlatent.latent.preflight.blocks`)."""
    out = {}
    for name in methods:
        m = get_method(name).with_filter(pair_filter)
        if m.edit is not None:
            out[name] = (m.edit, m.pair_filter)
    return out


def method_names() -> tuple[str, ...]:
    """Registered names, in registration order."""
    return tuple(_REGISTRY)


# ----------------------------------------------------------------------------------------------- builders
def _real(ctx: MethodContext, m: Method) -> TrainingSets:
    return TrainingSets([ctx.data_path])


def _reweighted(ctx: MethodContext, m: Method) -> TrainingSets:
    from fairlatent.train.classifier import reweighting_weights

    ds = ctx.load_dataset(ctx.data_path)
    tr = ds.split_indices("train")
    return TrainingSets([ctx.data_path], [reweighting_weights(ds.labels(ctx.target, tr), ds.labels(ctx.protected, tr))])


def _real_plus_pairs(ctx: MethodContext, m: Method) -> TrainingSets:
    return TrainingSets([ctx.data_path, ctx.pairs(m.pair_set)])


def _real_plus_gz(ctx: MethodContext, m: Method) -> TrainingSets:
    # the pair set holds G(z) in its first half and G(z') in its second: weight 0 drops the G(z') half
    pairs = ctx.pairs(m.pair_set)
    n_pairs = len(ctx.load_dataset(pairs))
    half = n_pairs // 2
    w = np.concatenate([np.ones(half), np.zeros(n_pairs - half)])
    return TrainingSets([ctx.data_path, pairs], [np.ones(ctx.real_train_size()), w])


def _real_plus_translations(ctx: MethodContext, m: Method) -> TrainingSets:
    return TrainingSets([ctx.data_path, ctx.translated()])


def _real_plus_oversampled(ctx: MethodContext, m: Method) -> TrainingSets:
    decoded = ctx.oversampled_set()
    if len(ctx.load_dataset(decoded)) == 0:  # every cell already at the target count: nothing was decoded
        return TrainingSets([ctx.data_path])
    return TrainingSets([ctx.data_path, decoded])


def _synthetic(ctx: MethodContext, m: Method) -> TrainingSets:
    return TrainingSets([ctx.pairs(m.pair_set)])


# ----------------------------------------------------------------------------------------------- the methods
register_method(Method("baseline", "real training data as is", _real))
register_method(Method("reweighting", "real data, weights w(t,g) = N_t / (2·N_tg) that make t and g independent",
                       _reweighted, sample_weights=True))
register_method(Method("latent_debias",
                       "real data + the pairs G(z), G(z') of the complementary edit that latent.pair_filter keeps "
                       "(default 'verified': those on which f_t held and f_g flipped; 'all' is the paper)",
                       _real_plus_pairs, edit="complementary", pair_filter=FILTER_FROM_CONFIG, balanced_val=True))
register_method(Method("latent_debias_filtered",
                       "real data + the complementary pairs on which f_t gave G(z) and G(z') the same label (the "
                       "reference code's option), whatever latent.pair_filter says",
                       _real_plus_pairs, edit="complementary", pair_filter="agree", balanced_val=True))
register_method(Method("latent_debias_verified",
                       "real data + the complementary pairs on which the edit did on the images what it does in "
                       "latent space (f_t gave G(z) and G(z') the same label and f_g different ones), whatever "
                       "latent.pair_filter says: latent_debias at its default, beside it in a run that sets "
                       "pair_filter = 'all'",
                       _real_plus_pairs, edit="complementary", pair_filter="verified", balanced_val=True))
register_method(Method("latent_debias_domain",
                       "latent_debias with one target hyperplane per protected group (the reference's "
                       "domain-dependent robustness check): z' keeps z's target score on its new group's plane",
                       _real_plus_pairs, edit=DOMAIN_EDIT, balanced_val=True))
register_method(Method("latent_debias_multi",
                       "latent_debias for several protected attributes (data.protected and data.protected_extra): "
                       "real data + G(z) and G(z') of every edit of latent.multi_flip, each keeping h_t's score and the "
                       "scores of the protected planes it does not flip (the paper's multiple protected attributes)",
                       _real_plus_pairs, edit=MULTI_EDIT, balanced_val=True))
register_method(Method("latent_debias_onto_plane", "real data + pairs with z' moved onto h_g, target score kept (ablation)",
                       _real_plus_pairs, edit="onto_plane", balanced_val=True))
register_method(Method("latent_debias_reflect", "real data + pairs with z' reflected across h_g, target plane ignored (ablation)",
                       _real_plus_pairs, edit="reflect", balanced_val=True))
register_method(Method("latent_debias_project", "real data + pairs with z' projected onto h_g, target plane ignored (ablation)",
                       _real_plus_pairs, edit="project", balanced_val=True))
register_method(Method("synthetic_only",
                       "only the complementary pairs G(z) ∪ G(z'), epoch chosen on real val (the paper's ablation)",
                       _synthetic, edit="complementary", balanced_val=True))
register_method(Method("real_plus_gz", "real data + G(z) without its partner G(z') (unpaired ablation)",
                       _real_plus_gz, edit="complementary", sample_weights=True, balanced_val=True))

register_method(Method("domain_independent",
                       "real data, a shared network with one target head per protected group, each image trained "
                       "through its group's head, scored without the group by the mean of the heads (Wang et al. 2020)",
                       _real, domain_heads="independent"))
register_method(Method("domain_discriminative",
                       "real data weighted as reweighting's (t and g independent), a shared network with one softmax "
                       "over the four (target, protected) cells, scored without the group as P(t=1) = Σ_g P(t=1, g) "
                       "(Wang et al. 2020's domain-discriminative training; the weights stand for its prior-shift "
                       "inference)", _reweighted, sample_weights=True, domain_heads="discriminative"))
register_method(Method("cyclegan_augment",
                       "real data + every real training image translated to the other protected group by a CycleGAN "
                       "(Zhu et al. 2017), keeping its target label: image-space counterfactuals",
                       _real_plus_translations, translated=True, balanced_val=True))
register_method(Method("latent_oversample",
                       "real data + new images of the rare (target, protected) cells, decoded from mixes of two "
                       "same-cell latents of a class-preserving regularized autoencoder fitted with the four cells "
                       "as its classes (Mondal et al. 2023), until every cell is as large as the largest",
                       _real_plus_oversampled, oversampled=True, balanced_val=True))
register_method(Method("latent_oversample_probe",
                       "the class-preserving autoencoder of latent_oversample as the classifier itself, as in Mondal "
                       "et al. 2023: its encoder + linear probe, trained on the real latents and on mixes of two "
                       "same-cell latents of every cell, scores P(target = 1) as the probability of the two "
                       "target-positive cells; no decoded image is involved",
                       _real_plus_oversampled, oversampled=True, probe_scored=True))
register_method(Method("threshold_optimizer_tpr",
                       "the baseline's scores post-processed by fairlearn's ThresholdOptimizer: per-group randomised "
                       "thresholds with equal true-positive rates, best balanced accuracy (fitted on val; reads the "
                       "protected attribute at prediction)", _real, post_process="true_positive_rate_parity"))
register_method(Method("threshold_optimizer_eo",
                       "the same under equalized odds (equal true- and false-positive rates)", _real,
                       post_process="equalized_odds"))

# What a refusal names when the pre-flight blocks the latent methods: methods that use neither the GAN's
# hyperplanes nor an edit, so no pre-flight check judges them. The class-conditional autoencoder models the rare
# cells directly; its probe lowered DEO on every seed of the ToyFaces mouth pair, where the GAN draws the smile
# half-way and the pre-flight refuses the edit, and on all seven eligible pairs at a mean ΔAP of -0.87
# (docs/benchmarks/toyfaces.md, *When the edit cannot help*); reweighting is the cheapest competitor. Named, not
# run: the user decides what to run instead.
NO_EDIT_ALTERNATIVES: tuple[str, ...] = ("latent_oversample_probe", "latent_oversample", "reweighting")


def no_edit_alternatives_sentence() -> str:
    """The sentence a strict pre-flight refusal ends with: the methods of :data:`NO_EDIT_ALTERNATIVES` (all
    registered above), which the failed checks do not concern."""
    return (f"methods that use no hyperplane or edit of this latent space, which these checks do not judge: "
            f"{', '.join(NO_EDIT_ALTERNATIVES)} (list them in methods without the latent ones; figures on the pairs the edit "
            f"fails in docs/benchmarks/toyfaces.md)")


__all__ = ["FILTER_FROM_CONFIG", "NO_EDIT_ALTERNATIVES", "PAIR_FILTERS", "Method", "MethodContext", "TrainingSets",
           "get_method", "method_names", "no_edit_alternatives_sentence", "pair_set_name", "pair_uses",
           "register_method"]
