"""Inception-v3 TF port: identical to torch-fidelity's extractor on the same (random) weights; weight loading."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from fairlatent.errors import FairlatentError
from fairlatent.metrics.generative.inception import (
    InceptionV3TF,
    find_inception_weights,
    load_inception,
    resize_bilinear_tf1,
)


def load_fidelity_inception():
    """torch-fidelity's feature_extractor_inceptionv3, loaded by file path (its package __init__ needs torchvision)."""
    try:
        import importlib.metadata as md

        pkgdir = Path(md.distribution("torch-fidelity").locate_file("torch_fidelity"))
    except Exception:  # noqa: BLE001
        pytest.skip("torch-fidelity not installed (pip install --no-deps torch-fidelity)")
    saved = sys.modules.get("torch_fidelity")
    pkg = types.ModuleType("torch_fidelity")
    pkg.__path__ = [str(pkgdir)]
    sys.modules["torch_fidelity"] = pkg
    try:
        spec = importlib.util.spec_from_file_location("torch_fidelity.feature_extractor_inceptionv3",
                                                      pkgdir / "feature_extractor_inceptionv3.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        interp = importlib.import_module("torch_fidelity.interpolate_compat_tensorflow")
        return module, interp
    finally:
        if saved is None:
            sys.modules.pop("torch_fidelity", None)
        else:
            sys.modules["torch_fidelity"] = saved


def random_weights(seed: int = 0) -> dict:
    """Kaiming-normal convolutions (default init gives near-zero features) and non-trivial BN statistics."""
    torch.manual_seed(seed)
    net = InceptionV3TF()
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight)
        elif isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    return net.state_dict()


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("inception") / "weights-inception-2015-12-05-6726825d.pth"
    torch.save(random_weights(), path)
    return path


@pytest.fixture(scope="module")
def networks(weights_file):
    module, _ = load_fidelity_inception()
    ref = module.FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased", "logits"],
                                             feature_extractor_weights_path=str(weights_file))
    # ours with fused batch norms (the default fast path) and unfused
    return ref, load_inception(weights_file), load_inception(weights_file, fuse=False)


@pytest.mark.parametrize("size", [32, 64, 299])
def test_features_and_logits_match_torch_fidelity(networks, size):
    ref, ours, exact = networks
    x = torch.from_numpy(np.random.default_rng(size).integers(0, 256, (1, 3, size, size), dtype=np.uint8))
    with torch.inference_mode():
        expect = ref(x)
        got, got_exact = ours(x), exact(x)
    for e, g, ge in zip(expect, got, got_exact):
        assert e.abs().mean() > 0.1  # features are not degenerate
        assert (g - e).abs().max() <= 1e-5 * e.abs().max()
        assert (ge - e).abs().max() <= 1e-6 * e.abs().max()


def test_tf1_resize_is_bit_identical_to_torch_fidelity():
    _, interp = load_fidelity_inception()
    x = torch.rand(2, 3, 37, 53) * 255
    ref = interp.interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299), align_corners=False)
    assert torch.equal(resize_bilinear_tf1(x, 299), ref)
    y = torch.rand(1, 3, 299, 299)
    assert torch.equal(resize_bilinear_tf1(y, 299), y)


def test_loads_pytorch_fid_style_state_dict(tmp_path, weights_file):
    """pytorch-fid's file holds torchvision Inception3 keys: may add AuxLogits.* and num_batches_tracked."""
    state = torch.load(weights_file, weights_only=True)
    variant = {f"module.{k}": v for k, v in state.items()}
    variant["AuxLogits.fc.weight"] = torch.zeros(1008, 768)
    for k in list(state):
        if k.endswith("running_var"):
            variant["module." + k.replace("running_var", "num_batches_tracked")] = torch.tensor(0)
    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(variant, path)
    a = load_inception(path, fuse=False).state_dict()
    assert set(a) == set(state)
    assert all(torch.equal(a[k], state[k]) for k in state)


def test_missing_or_bad_weights_give_clear_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("FAIRLATENT_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(FairlatentError, match="pt_inception-2015-12-05-6726825d.pth"):
        find_inception_weights()
    with pytest.raises(FairlatentError, match="does not exist"):
        find_inception_weights(tmp_path / "nope.pth")
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    found = tmp_path / "hub" / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth"
    found.write_bytes(b"x")
    assert find_inception_weights() == found
    with pytest.raises(FairlatentError, match="cannot read"):
        load_inception(found)
    bad = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(3)}, bad)
    monkeypatch.setenv("FAIRLATENT_INCEPTION_WEIGHTS", str(bad))
    with pytest.raises(FairlatentError, match="not an Inception-v3"):
        load_inception()
