"""fairlatent.latent"""
