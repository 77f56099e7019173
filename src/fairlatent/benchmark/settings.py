"""The settings every benchmark config has: seeds, methods, device and the pipeline's model sections.

:class:`BenchmarkSettings` is the base of :class:`~fairlatent.benchmark.celeba.CelebABenchmarkConfig` and
:class:`~fairlatent.benchmark.toyfaces.ToyFacesBenchmarkConfig`. Each benchmark has its own defaults of the
``gan``/``classifier``/``latent``/``evaluation``/``translator``/``oversample`` sections (``section_defaults``); a section the config gives
(or ``--set`` reaches into) is laid over them, so ``--set classifier.lr=1e-3`` changes the learning rate and
keeps the benchmark's ``epochs``. The sections are the training code's and the pipeline's own classes, and
they remember which keys are set (a section dumps only those, so the run's seed and device fill the rest).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, Field, field_serializer, field_validator, model_validator

from fairlatent.pipeline.config import EvaluationConfig, LatentConfig, OversampleConfig
from fairlatent.pipeline.methods import method_names
from fairlatent.train.classifier import ClassifierConfig
from fairlatent.train.cyclegan import CycleGANConfig
from fairlatent.train.gan import GANConfig
from fairlatent.utils.device import DeviceName
from fairlatent.utils.settings import StrictSettings

SECTIONS = ("gan", "classifier", "latent", "evaluation", "translator", "oversample")


class BenchmarkSettings(StrictSettings):
    """Seeds, methods, device and the typed model sections, laid over the subclass's ``section_defaults``."""

    section_defaults: ClassVar[dict[str, dict[str, Any]]] = {}

    seeds: list[int] = Field(default_factory=lambda: [0])
    methods: list[str] = Field(default_factory=lambda: ["baseline", "reweighting", "latent_debias",
                                                        "latent_debias_filtered"])
    gan: GANConfig = Field(default_factory=GANConfig)
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    latent: LatentConfig = Field(default_factory=LatentConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    translator: CycleGANConfig = Field(default_factory=CycleGANConfig,
                                       description="the CycleGAN translator of methods on translated images")
    oversample: OversampleConfig = Field(default_factory=OversampleConfig,
                                         description="the autoencoder and cell sizes of latent_oversample")
    device: DeviceName = None

    @model_validator(mode="before")
    @classmethod
    def _over_defaults(cls, data: Any) -> Any:
        """A section given as a table is laid over the benchmark's defaults of that section; a section not
        given is those defaults."""
        if isinstance(data, dict):
            data = dict(data)
            for name, defaults in cls.section_defaults.items():
                if name not in data:
                    data[name] = dict(defaults)
                elif isinstance(data[name], dict):
                    data[name] = {**defaults, **data[name]}
        return data

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, v: list[str]) -> list[str]:
        unknown = [m for m in v if m not in method_names()]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; methods are: {', '.join(method_names())}")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("seeds is empty")
        return list(dict.fromkeys(v))

    @field_serializer(*SECTIONS)
    def _set_keys_only(self, section: BaseModel) -> dict[str, Any]:
        return section.model_dump(include=section.model_fields_set)

    def sections(self) -> dict[str, dict[str, Any]]:
        """The sections as the keys they set (what a pipeline config takes)."""
        dumped = self.model_dump()
        return {name: dumped[name] for name in SECTIONS}


__all__ = ["BenchmarkSettings", "SECTIONS"]
