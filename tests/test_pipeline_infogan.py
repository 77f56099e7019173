"""InfoGAN inside the de-biasing pipeline (issue 17): ``[gan] info_categorical`` / ``info_continuous`` train an
InfoGAN, and the latent stages work on its whole latent [noise, one-hot codes, continuous codes], so every
stored latent regenerates the image its labels were read from."""

from __future__ import annotations

import numpy as np
import pytest
from rich.console import Console

from fairlatent.data.dataset import load_dataset
from fairlatent.models.generator import load_generator
from fairlatent.pipeline.config import validate_config
from fairlatent.pipeline.run import Pipeline

CAT, CONT = 3, 1


@pytest.fixture(scope="module")
def infogan_run(tmp_path_factory):
    cfg = validate_config({
        "seed": 0, "name": "infogan",
        "data": {"source": "toyfaces", "target": "Wearing_Hat", "protected": "Eyeglasses", "n": 2000, "size": 32,
                 "skew": 0.9, "faint": {"Wearing_Hat": 0.5}},  # demo_fast's data and GAN, plus the codes
        "gan": {"steps": 1500, "batch_size": 32, "width": 16, "info_categorical": [CAT], "info_continuous": CONT,
                "checkpoint_every": 500, "sample_every": 500},
        "labeler": {"epochs": 5}, "classifier": {"epochs": 1, "width": 8},
        "latent": {"n_fit": 300, "n_holdout": 150, "n_pairs": 100},
        "methods": ["baseline", "latent_debias"],
        "evaluation": {"n_boot": 20, "generative_metrics": False},
    }, where="test")
    run_dir = tmp_path_factory.mktemp("infogan") / "run"
    pipe = Pipeline(cfg, run_dir, console=Console(quiet=True), progress=False)
    return pipe, pipe.run()


def test_the_latents_carry_the_codes_and_regenerate_the_labelled_images(infogan_run):
    pipe, report = infogan_run
    gen = load_generator(pipe.stages.results["gan"].outputs["path"])
    noise = gen.latent_spec.normal_dim
    assert gen.latent_spec.dim == noise + CAT + CONT
    z = np.load(pipe.stages.results["latents"].dir / "z.npy")
    assert z.shape[1] == noise + CAT + CONT
    one_hot = z[:, noise:noise + CAT]
    assert np.array_equal(one_hot.sum(axis=1), np.ones(len(z))) and set(np.unique(one_hot)) == {0.0, 1.0}
    assert len(np.unique(one_hot.argmax(axis=1))) == CAT  # every category drawn
    assert np.all(np.abs(z[:, -CONT:]) <= 1)  # U(−1, 1) continuous codes
    # the stored scores are the labelers' scores of G(z) regenerated from the stored latent, codes included
    scores = np.load(pipe.stages.results["latents"].dir / "scores.npy")
    again = pipe._score(gen.decode(z[:32]), pipe._labelers())
    np.testing.assert_allclose(again, scores[:32], rtol=1e-5, atol=1e-5)
    # and a latent with another category draws another image
    other = z[:4].copy()
    other[:, noise:noise + CAT] = np.roll(other[:, noise:noise + CAT], 1, axis=1)
    assert np.abs(gen.decode(other).astype(int) - gen.decode(z[:4]).astype(int)).max() > 0


def test_the_hyperplanes_and_edits_span_the_whole_latent(infogan_run):
    pipe, report = infogan_run
    hp = pipe.stages.results["hyperplanes"].outputs
    dim = load_generator(pipe.stages.results["gan"].outputs["path"]).latent_spec.dim
    assert len(hp["h_t"]["w"]) == len(hp["h_g"]["w"]) == dim
    pairs = load_dataset(pipe.stages.results["pairs"].dir / "complementary")
    assert pairs.latents.shape == (2 * 100, dim)
    # the complementary edit keeps h_t's score and moves h_g's across the plane, codes included
    w_t, b_t = np.array(hp["h_t"]["w"]), hp["h_t"]["b"]
    w_g, b_g = np.array(hp["h_g"]["w"]), hp["h_g"]["b"]
    zz, zp = pairs.latents[:100].astype(np.float64), pairs.latents[100:].astype(np.float64)
    np.testing.assert_allclose(zp @ w_t + b_t, zz @ w_t + b_t, atol=1e-4)
    assert np.all(np.sign(zp @ w_g + b_g) == -np.sign(zz @ w_g + b_g))
    assert report["methods"]["latent_debias"]["paired_vs_baseline"]["test"]["DEO"]["median"] is not None


def test_edit_codes_false_moves_only_the_noise(infogan_run, tmp_path):
    """``latent.edit_codes = false``: the same run's pairs, re-made with the codes held: every z' keeps z's
    one-hot and continuous codes, the edit still keeps h_t's score and negates h_g's on the whole planes, and
    the pairs stage is keyed apart from the paper's."""
    import shutil

    pipe, _ = infogan_run
    shutil.copytree(pipe.run_dir, tmp_path / "run")
    raw = pipe.cfg.model_dump()
    raw["latent"]["edit_codes"] = False
    cfg = validate_config(raw, where="test")
    held = Pipeline(cfg, tmp_path / "run", console=Console(quiet=True), progress=False)
    report = held.run()
    assert held.stages.results["gan"].key == pipe.stages.results["gan"].key  # the same GAN, not retrained
    assert held.stages.results["pairs"].key != pipe.stages.results["pairs"].key
    hp = held.stages.results["hyperplanes"].outputs
    noise = load_generator(held.stages.results["gan"].outputs["path"]).latent_spec.normal_dim
    pairs = load_dataset(held.stages.results["pairs"].dir / "complementary")
    zz, zp = pairs.latents[:100].astype(np.float64), pairs.latents[100:].astype(np.float64)
    np.testing.assert_array_equal(zp[:, noise:], zz[:, noise:])
    assert np.abs(zp[:, :noise] - zz[:, :noise]).max() > 0.1
    w_t, b_t = np.array(hp["h_t"]["w"]), hp["h_t"]["b"]
    w_g, b_g = np.array(hp["h_g"]["w"]), hp["h_g"]["b"]
    np.testing.assert_allclose(zp @ w_t, zz @ w_t, atol=1e-4)
    np.testing.assert_allclose(zp @ w_g + b_g, -(zz @ w_g + b_g), atol=1e-4)
    free = load_dataset(pipe.stages.results["pairs"].dir / "complementary").latents
    # held codes cost length: the noise-only edit is at least as long as the free one (minimum norm)
    assert np.linalg.norm(zp - zz, axis=1).mean() >= np.linalg.norm(free[100:] - free[:100], axis=1).mean() - 1e-4
    assert report["methods"]["latent_debias"]["paired_vs_baseline"]["test"]["DEO"]["median"] is not None
