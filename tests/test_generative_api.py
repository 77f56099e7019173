"""compute_generative_metrics / extract_features: every input kind, cache, bad input, CLI, truncation sweep."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from fairlatent.cli.app import app
from fairlatent.data import write_dataset
from fairlatent.errors import FairlatentError
from fairlatent.metrics.generative import (
    DatasetSelection,
    Features,
    GeneratorSamples,
    PixelsExtractor,
    compute_generative_metrics,
    compute_prdc,
    extract_features,
    fid_from_features,
)
from fairlatent.metrics.generative.truncation import parse_truncations, truncation_sweep
from fairlatent.report.truncation import plot_truncation_sweep, truncation_table

KW = dict(kid_subsets=3, progress=False)


def images(seed, n=40, size=8, lo=0, hi=256):
    return np.random.default_rng(seed).integers(lo, hi, (n, size, size, 3), dtype=np.uint8)


class StubGenerator:
    """GeneratorHandle contract: latents → images whose brightness follows the first latent (truncation matters)."""

    latent_dim, image_size = 4, 8

    def __init__(self):
        self.rendered = 0

    def sample_latents(self, n, seed, truncation=None):
        z = np.random.default_rng(seed).standard_normal((n, self.latent_dim)).astype(np.float32)
        if truncation is not None:
            z = np.clip(z, -truncation, truncation)
        return z

    def render(self, latents, batch_size=256):
        self.rendered += len(latents)
        base = 128 + 40 * latents[:, :1, None, None] + 20 * latents[:, 1:2, None, None] * np.linspace(-1, 1, 8)[None, None, :, None]
        noise = np.random.default_rng(len(latents)).normal(0, 5, (len(latents), 8, 8, 3))
        return np.clip(base + noise, 0, 255).astype(np.uint8)


@pytest.fixture
def dataset_dir(tmp_path):
    imgs = images(0, n=60)
    table = pd.DataFrame({"id": [f"i{i}" for i in range(60)], "split": ["train"] * 40 + ["test"] * 20,
                          "Smiling": np.arange(60) % 2})
    return write_dataset(tmp_path / "ds", imgs, table, {"seed": 0}), imgs


def test_pixels_metrics_equal_direct_computation():
    a, b = images(1), images(2)
    res = compute_generative_metrics(a, b, features="pixels", **KW)
    fa, fb = a.reshape(40, -1) / 255.0, b.reshape(40, -1) / 255.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert res["fid"] == pytest.approx(fid_from_features(fa, fb), rel=1e-6)
    pr = compute_prdc(fa, fb)
    for k in ("precision", "recall", "density", "coverage"):
        assert res[k] == pytest.approx(pr[k], abs=1e-12)
    assert res["features"] == "pixels" and res["n_real"] == 40 and res["n_fake"] == 40 and res["feature_dim"] == 192


def test_dataset_directory_split_and_indices(dataset_dir):
    path, imgs = dataset_dir
    proj = PixelsExtractor(16, seed=3)
    got = extract_features(DatasetSelection(path, split="test", indices=np.array([0, 5, 7])), proj)
    assert np.allclose(got, extract_features(imgs[[40, 45, 47]], PixelsExtractor(16, seed=3)))
    assert extract_features(path, "pixels").shape == (60, 192)
    res = compute_generative_metrics(DatasetSelection(path, split="train"), DatasetSelection(path, split="test"),
                                     features="pixels", pixels_dim=16, fid=True, kid=False, prdc=True, **KW)
    assert res["n_real"] == 40 and res["n_fake"] == 20


def test_generator_input_and_cache(tmp_path):
    gen = StubGenerator()
    real = gen.render(gen.sample_latents(50, seed=9))
    gen.rendered = 0
    res = compute_generative_metrics(real, GeneratorSamples(gen, 30, seed=1, truncation=0.5), features="pixels",
                                     **KW)
    assert res["n_fake"] == 30 and gen.rendered == 30
    # identical data + extractor → features served from the cache (the extractor is not called again)
    calls = []

    def fn(x):
        calls.append(len(x))
        return x.reshape(len(x), -1)[:, :10].astype(np.float32)

    fn.__qualname__ = "first10"
    from fairlatent.metrics.generative import CallableExtractor

    ext = CallableExtractor(fn, name="first10")
    one = extract_features(real, ext, cache_dir=tmp_path / "c")
    two = extract_features(real, ext, cache_dir=tmp_path / "c")
    assert np.array_equal(one, two) and sum(calls) == 50
    extract_features(real[:-1], ext, cache_dir=tmp_path / "c")  # different data → new entry
    assert sum(calls) == 99


def test_domain_extractor_uses_classifier_features_and_names_it():
    class StubClassifier:
        image_size = 8
        path = "runs/clf"

        def features(self, x):
            return x.reshape(len(x), -1)[:, :12].astype(np.float32) / 255

    res = compute_generative_metrics(images(3), images(4, size=16), features="domain", classifier=StubClassifier(),
                                     **KW)
    assert res["features"] == "domain:runs/clf" and res["feature_dim"] == 12
    with pytest.raises(FairlatentError, match="classifier"):
        compute_generative_metrics(images(3), images(4), features="domain", **KW)


def test_precomputed_features():
    rs = np.random.default_rng(5)
    x, y = rs.standard_normal((300, 4)), rs.standard_normal((300, 4)) + 1
    res = compute_generative_metrics(Features(x, "f"), y, **KW)
    assert res["fid"] == pytest.approx(fid_from_features(x, y)) and res["fid"] > 3
    assert res["kid_mean"] > 0


def test_bad_inputs():
    rs = np.random.default_rng(6)
    with pytest.raises(FairlatentError, match="at least 2"):
        compute_generative_metrics(Features(rs.random((1, 3))), Features(rs.random((5, 3))), **KW)
    with pytest.raises(FairlatentError, match="dimensions differ"):
        compute_generative_metrics(Features(rs.random((20, 3))), Features(rs.random((20, 4))), **KW)
    bad = rs.random((20, 3))
    bad[7, 2] = np.nan
    with pytest.raises(FairlatentError, match="row 7, column 2"):
        compute_generative_metrics(Features(rs.random((20, 3))), Features(bad), **KW)
    with pytest.raises(FairlatentError, match="uint8"):
        compute_generative_metrics(np.zeros((4, 8, 8), np.uint8), images(1), features="pixels", **KW)
    with pytest.raises(FairlatentError, match="Inception Score"):
        compute_generative_metrics(Features(rs.random((20, 3))), Features(rs.random((20, 3))), isc=True, **KW)
    with pytest.raises(FairlatentError, match="unknown feature extractor"):
        compute_generative_metrics(images(1), images(2), features="vgg", **KW)


def test_different_image_sizes_are_resized_with_a_warning():
    with pytest.warns(UserWarning, match="resized to 8×8"):
        res = compute_generative_metrics(images(1, size=8), images(2, size=12), features="pixels", **KW)
    assert res["feature_dim"] == 192


def test_cli_positional_form_and_json(tmp_path):
    np.save(tmp_path / "a.npy", images(1))
    np.save(tmp_path / "b.npy", images(1))
    out = tmp_path / "r.json"
    runner = CliRunner()
    r = runner.invoke(app, ["metrics", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--features", "pixels",
                            "--prdc", "--fid", "--no-cache", "--json", str(out)])
    assert r.exit_code == 0, r.output
    data = json.loads(out.read_text())
    assert data["fid"] == pytest.approx(0.0, abs=1e-5) and data["coverage"] == 1.0 and "kid_mean" not in data
    assert "precision" in r.output
    r = runner.invoke(app, ["metrics", "compute", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"),
                            "--features", "pixels", "--kid", "--no-cache"])
    assert r.exit_code == 0 and "KID" in r.output
    r = runner.invoke(app, ["metrics", "truncation-sweep", "--help"])
    assert r.exit_code == 0 and "--taus" in r.output


def test_truncation_sweep_trades_recall_for_precision(tmp_path):
    gen = StubGenerator()
    real = gen.render(gen.sample_latents(400, seed=11))
    rows = truncation_sweep(gen, real, taus=[0.25, 1.0, None], n=400, features=PixelsExtractor(), seed=0,
                            progress=False)
    assert [r["truncation"] for r in rows] == [0.25, 1.0, None]
    assert rows[0]["recall"] < rows[-1]["recall"]  # strong truncation loses diversity
    assert rows[0]["fid"] > rows[-1]["fid"]
    plot_truncation_sweep(rows, tmp_path / "s.png")
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    table = truncation_table(rows, "sweep")
    assert table.row_count == 3 and [c.header for c in table.columns][:2] == ["τ", "FID"]
    assert list(table.columns[0].cells) == ["0.25", "1", "none"]


def test_parse_truncations_reads_none_and_refuses_bad_values():
    assert parse_truncations("0.5, 1,none,inf") == [0.5, 1.0, None, None]
    with pytest.raises(FairlatentError, match="'abc' is not a number"):
        parse_truncations("0.5,abc")
    with pytest.raises(FairlatentError, match="must be positive"):
        parse_truncations("0")
