"""The pipeline configuration: one TOML file, validated with clear messages.

Every section is a pydantic model with ``extra="forbid"``, so a misspelt key is an error that names it.
The GAN and classifier sections take the same fields as :class:`fairlatent.train.gan.GANConfig` and
:class:`fairlatent.train.classifier.ClassifierConfig`; they are validated against those when the stage runs.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fairlatent.errors import FairlatentError

METHODS = ("baseline", "reweighting", "latent_debias", "latent_debias_filtered", "latent_debias_onto_plane",
           "latent_debias_reflect", "latent_debias_project", "synthetic_only", "real_plus_gz")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Strict):
    """Where the data comes from. ``source="toyfaces"`` renders the built-in data; ``"path"`` reads a data set."""

    source: Literal["toyfaces", "path"] = "toyfaces"
    path: str | None = None
    target: str = "Wearing_Hat"
    protected: str = "Eyeglasses"
    # ToyFaces rendering (ignored for source="path")
    n: int = Field(20000, ge=100)
    size: Literal[32, 64] = 32
    skew: float = Field(0.9, ge=0.0, le=1.0)
    val_skew: float | None = Field(None, ge=0.0, le=1.0)
    test_skew: float | None = Field(None, ge=0.0, le=1.0)
    label_noise: float = Field(0.0, ge=0.0, le=0.5)
    faint: dict[str, float] = Field(default_factory=dict, description="{attribute: share drawn faintly}")
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: int | None = None

    @model_validator(mode="after")
    def _check(self) -> "DataConfig":
        if self.source == "path" and not self.path:
            raise ValueError("data.source = 'path' needs data.path (a fairlatent data set directory)")
        if any(f <= 0 for f in self.split_fractions) or abs(sum(self.split_fractions) - 1) > 1e-6:
            raise ValueError(f"data.split_fractions must be three positive shares summing to 1, "
                             f"got {list(self.split_fractions)}")
        bad = {k: v for k, v in self.faint.items() if not 0.0 <= v <= 1.0}
        if bad:
            raise ValueError(f"data.faint shares must be in [0, 1], got {bad}")
        if self.target == self.protected:
            raise ValueError(f"data.target and data.protected are both {self.target!r}; they must differ")
        return self


class LatentConfig(_Strict):
    """Latent sampling, labelling, hyperplanes and pair generation (REFERENCE §1 steps 2–5)."""

    labeler_weights: Literal["balanced", "none"] = Field(
        "balanced",
        description="Train the labeler f_t, f_g with group-balanced weights w(t,g) = N_t / (2·N_tg) ('balanced') "
                    "or unweighted like the reference code ('none'). A labeler trained on skewed data labels "
                    "ambiguous images by the protected attribute, which tilts h_t toward h_g.")
    target_labeler: Literal["own", "baseline", "reweighting"] = Field(
        "own",
        description="Which classifier labels G(z) with the target: 'own' trains the labeler of this section; "
                    "'baseline' / 'reweighting' reuse that method's trained target classifier (the reference uses "
                    "its baseline classifier f_t; 'reweighting' is the group-balanced one, like labeler_weights="
                    "'balanced') and save one training per run.")
    protected_labeler: str | None = Field(
        None,
        description="A trained fairlatent classifier directory that predicts the protected attribute. Given, it "
                    "is f_g (shared across runs, e.g. by a benchmark over many targets) and the labeler learns "
                    "the target only.")
    n_fit: int = Field(10000, ge=50)
    n_holdout: int = Field(5000, ge=20)
    n_pairs: int = Field(10000, ge=10)
    hyperplane: Literal["svm", "logistic"] = "svm"
    threshold: Literal["f1", "calibrated"] = "f1"
    truncation: float | None = Field(None, gt=0)
    agreement_filter: bool = False
    min_sin: float = Field(0.1, gt=0, lt=1)
    batch_size: int = Field(512, ge=1)


class EvaluationConfig(_Strict):
    n_boot: int = Field(500, ge=10)
    ci: float = Field(0.95, gt=0, lt=1)
    generative_metrics: bool = True
    n_generative: int = Field(5000, ge=10)


class GeneratorConfig(_Strict):
    """A trained generator to use instead of training one: a fairlatent GAN run or a TorchScript file."""

    path: str
    latent_dim: int | None = Field(None, ge=1, description="needed for a TorchScript file")
    output_range: Literal["[-1,1]", "[0,1]"] = "[-1,1]"


class PipelineConfig(_Strict):
    """The whole run. ``seed`` seeds every stage (each stage derives its own sub-stream)."""

    seed: int = 0
    name: str = "run"
    device: str | None = None
    data: DataConfig = DataConfig()
    gan: dict[str, Any] = Field(default_factory=dict)
    generator: GeneratorConfig | None = Field(
        None, description="use this trained generator (the gan section is then ignored)")
    labeler: dict[str, Any] = Field(default_factory=dict)
    classifier: dict[str, Any] = Field(default_factory=dict)
    latent: LatentConfig = LatentConfig()
    methods: list[str] = Field(default_factory=lambda: ["baseline", "reweighting", "latent_debias"])
    evaluation: EvaluationConfig = EvaluationConfig()

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, v: list[str]) -> list[str]:
        unknown = [m for m in v if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; methods are: {', '.join(METHODS)}")
        if not v:
            raise ValueError("methods is empty")
        return list(dict.fromkeys(v))


def _format_validation_error(exc: ValidationError, where: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"{where}: {loc}: {msg}" + (f" (got {err['input']!r})" if err["type"] != "extra_forbidden" and "input" in err and not isinstance(err["input"], dict) else ""))
    return "\n".join(lines)


def validate_config(raw: dict[str, Any], where: str = "config") -> PipelineConfig:
    """Validate a raw dict (e.g. parsed TOML); raise FairlatentError listing every problem."""
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        raise FairlatentError(_format_validation_error(exc, where)) from None


def load_config(path: str | Path) -> PipelineConfig:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FairlatentError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise FairlatentError(f"{path}: not valid TOML ({exc})") from None
    return validate_config(raw, str(path))
