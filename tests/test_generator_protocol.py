"""The Generator protocol with structured latents and conditions, on a hand-built conditional toy generator:
sampling (shapes, one-hot codes, seeds), truncation of the normal part only, condition validation, and the
image check the pipeline relies on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fairlatent.errors import FairlatentError
from fairlatent.models.generator import Generator, GeneratorHandle, require_images, truncated_normal
from fairlatent.models.latent_spec import CategoricalCode, LatentSpec, UniformCode
from fairlatent.utils.seed import rng

SPEC = LatentSpec(normal_dim=4, codes=(CategoricalCode("shape", k=3), UniformCode("tilt", dim=2)))


class ToyConditional(nn.Module):
    """8×8 images: brightness set by the categorical code (value v → −1 + v), the red channel by the
    condition's first column, a faint pattern by the noise; so each input part visibly moves the output."""

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        level = z[:, 4:7].argmax(dim=1).float() - 1.0  # −1, 0, 1
        x = level[:, None, None, None].expand(-1, 3, 8, 8).clone()
        x[:, 0] = torch.tanh(c[:, :1])[:, :, None].expand(-1, 8, 8)
        x = x + 0.01 * torch.tanh(z[:, :1])[:, :, None, None]
        return x.clamp(-1, 1)


def toy_handle(condition_dim: int = 2) -> GeneratorHandle:
    return GeneratorHandle(ToyConditional(), latent_spec=SPEC, condition_dim=condition_dim, output_range="[-1,1]",
                           device=torch.device("cpu"), source="toy")


class TableGenerator:
    """A tabular generator: implements the protocol, decodes to rows, not images."""

    latent_spec = LatentSpec(normal_dim=3)
    condition_dim = 0
    output_kind = "table"

    def sample_latents(self, n, seed, truncation=None):
        return self.latent_spec.sample(n, seed, truncation)

    def decode(self, z, condition=None):
        return np.asarray(z) * 2


def test_handle_and_table_generator_implement_the_protocol():
    h = toy_handle()
    assert isinstance(h, Generator) and isinstance(TableGenerator(), Generator)
    assert not isinstance(object(), Generator)
    assert h.latent_dim == SPEC.dim == 4 + 3 + 2 and h.output_kind == "image" and h.image_size == 8


def test_sampling_shapes_one_hot_codes_uniform_range_and_seed():
    h = toy_handle()
    z = h.sample_latents(500, seed=3)
    assert z.shape == (500, 9) and z.dtype == np.float32
    parts = SPEC.slices()
    assert parts == {"normal": slice(0, 4), "shape": slice(4, 7), "tilt": slice(7, 9)}
    onehot = z[:, parts["shape"]]
    assert set(np.unique(onehot)) == {0.0, 1.0} and (onehot.sum(axis=1) == 1).all()
    assert set(onehot.argmax(axis=1)) == {0, 1, 2}  # every value drawn
    tilt = z[:, parts["tilt"]]
    assert tilt.min() >= -1 and tilt.max() <= 1 and tilt.std() > 0.4  # U(-1, 1): std 0.577
    assert np.array_equal(z, h.sample_latents(500, seed=3))
    assert not np.array_equal(z[:, parts["shape"]], h.sample_latents(500, seed=4)[:, parts["shape"]])


def test_a_spec_without_codes_samples_exactly_the_unconditional_latents():
    z = LatentSpec(normal_dim=12).sample(50, seed=9, truncation=0.8)
    assert np.array_equal(z, truncated_normal(rng(9, "generator-latents"), (50, 12), 0.8))


def test_truncation_touches_only_the_normal_part():
    parts = SPEC.slices()
    free, cut = SPEC.sample(2000, seed=1), SPEC.sample(2000, seed=1, truncation=0.5)
    assert np.abs(cut[:, parts["normal"]]).max() <= 0.5 < np.abs(free[:, parts["normal"]]).max()
    for code in ("shape", "tilt"):
        assert np.array_equal(cut[:, parts[code]], free[:, parts[code]])
    assert np.abs(cut[:, parts["tilt"]]).max() > 0.9  # codes keep their full range


def test_decode_follows_the_categorical_code_and_the_condition():
    h = toy_handle()
    z = np.zeros((3, 9), np.float32)
    z[np.arange(3), 4 + np.arange(3)] = 1  # code values 0, 1, 2
    cond = np.zeros((3, 2), np.float32)
    imgs = h.decode(z, cond)
    assert imgs.shape == (3, 8, 8, 3) and imgs.dtype == np.uint8
    green = imgs[:, 0, 0, 1].astype(int)
    assert green[0] < green[1] < green[2]
    brighter = h.decode(z, cond + np.array([[3.0, 0.0]], np.float32))
    assert (brighter[:, 0, 0, 0] > imgs[:, 0, 0, 0]).all() and np.array_equal(brighter[..., 1], imgs[..., 1])


def test_condition_is_validated_both_ways():
    h = toy_handle()
    z = h.sample_latents(4, seed=0)
    with pytest.raises(FairlatentError, match="conditional: decode needs a condition array of shape n×2"):
        h.decode(z)
    with pytest.raises(FairlatentError, match="conditional"):
        h.render(z)  # render = decode without a condition
    with pytest.raises(FairlatentError, match=r"condition has shape \(3, 2\), expected 4×2"):
        h.decode(z, np.zeros((3, 2)))
    with pytest.raises(FairlatentError, match="condition must be numeric"):
        h.decode(z, np.full((4, 2), "a"))
    with pytest.raises(FairlatentError, match=r"expected n×9"):
        h.decode(z[:, :5], np.zeros((4, 2)))
    unconditional = GeneratorHandle(nn.Sequential(nn.Linear(3, 3 * 4 * 4), nn.Unflatten(1, (3, 4, 4)), nn.Tanh()),
                                    latent_dim=3, output_range="[-1,1]", device=torch.device("cpu"), source="u")
    zu = unconditional.sample_latents(2, seed=0)
    with pytest.raises(FairlatentError, match="unconditional: decode got a condition"):
        unconditional.decode(zu, np.zeros((2, 1)))
    assert np.array_equal(unconditional.decode(zu), unconditional.render(zu))


def test_latent_spec_refuses_malformed_codes():
    with pytest.raises(FairlatentError, match="k ≥ 2"):
        CategoricalCode("c", k=1)
    with pytest.raises(FairlatentError, match="distinct"):
        LatentSpec(2, codes=(UniformCode("a"), UniformCode("a")))
    with pytest.raises(FairlatentError, match="disagrees"):
        GeneratorHandle(ToyConditional(), latent_dim=4, latent_spec=SPEC, condition_dim=2, output_range="[-1,1]",
                        device=torch.device("cpu"), source="toy")


def test_image_stages_refuse_a_table_generator_by_name(tmp_path):
    with pytest.raises(FairlatentError, match="output_kind is 'table'"):
        require_images(TableGenerator(), "labelling")
    with pytest.raises(FairlatentError, match="does not implement the Generator protocol"):
        require_images(object(), "labelling")
    assert require_images(toy_handle(), "labelling") is not None

    from fairlatent.cli.pipeline_commands import _builtin_config
    from fairlatent.pipeline.run import Pipeline

    class TablePipeline(Pipeline):
        def _generator(self):
            return TableGenerator()

    pipe = TablePipeline(_builtin_config("demo_fast"), tmp_path, progress=False)
    with pytest.raises(FairlatentError, match="image classifiers f_t, f_g needs an image generator"):
        pipe._image_generator()
