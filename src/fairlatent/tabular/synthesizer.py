"""Fit a tabular model into a run directory (the engine's loop, checkpoints and resume), load it, sample.

:func:`fit` trains CTGAN or FairGAN (by the config's ``model``); :class:`Synthesizer` loads a finished run and
draws rows: ``sample(n, conditions={"sex": "Female", "income": ">50K"}, seed=0)``.

Conditional sampling returns exactly the requested categories: the generator is conditioned on one of them
(CTGAN: the conditional vector of the rarest requested category; FairGAN: the protected attribute when it is
requested) and rows are drawn in batches, keeping those that hold every requested value (rejection), until
``n`` are kept. If fewer than ``min_acceptance`` of the drawn rows match after ``max_draws`` rows, it stops with
an error giving the acceptance rate rather than return fewer rows. A value training never saw, a continuous
column or an unknown column in ``conditions`` is an error naming it.

Sampling runs the generator in eval mode (batch-norm running statistics), so a row does not depend on the
other rows of its batch; the reference CTGAN samples in training mode (statistics of each batch of 500).
Categories and modes are drawn from the softmax of the generator's logits (the Gumbel-max trick), which is
what the reference's Gumbel-softmax followed by an argmax draws too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from fairlatent.errors import FairlatentError
from fairlatent.tabular.ctgan import CTGANConfig, CTGANObjective
from fairlatent.tabular.fairgan import FairGANConfig, FairGANObjective
from fairlatent.tabular.run import RUN_FORMAT, load_run_data, run_record, start_run
from fairlatent.tabular.sampler import ConditionalSampler
from fairlatent.tabular.table import TabularData
from fairlatent.tabular.transformer import TableTransformer
from fairlatent.train.checkpoint import load_module_state, load_tensors, module_tensors, save_tensors
from fairlatent.train.engine import DataOrder, Engine, LoopSettings, identity_keys
from fairlatent.utils.io import read_json, write_json
from fairlatent.utils.seed import rng, torch_generator

__all__ = ["ModelConfig", "fit", "build_objective", "Synthesizer", "load_synthesizer", "config_class"]

ModelConfig = CTGANConfig | FairGANConfig


def config_class(model: str) -> type:
    try:
        return {"ctgan": CTGANConfig, "fairgan": FairGANConfig}[model]
    except KeyError:
        raise FairlatentError(f"unknown tabular model {model!r}; one of ctgan, fairgan") from None


def _fit_transformer(data: TabularData, config: ModelConfig, columns: list[str]) -> TableTransformer:
    return TableTransformer(config.max_modes, config.weight_threshold, config.seed).fit(
        data.train[columns], [c for c in data.continuous if c in columns], [c for c in data.categorical if c in columns])


def build_objective(data: TabularData, config: ModelConfig, state: dict[str, Any] | None = None):
    """(objective, model state for ``model.json``, steps per epoch, total steps, order) for ``data.train``.

    ``state`` (a saved ``model.json``) fixes the encoding, so a resumed run encodes exactly as before."""
    n = len(data.train)
    if n < 2:
        raise FairlatentError(f"{data.name}: {n} training row(s); a generator needs at least 2")
    if config.model == "ctgan":
        cols = data.modelled
        t = TableTransformer.from_json(state["transformer"]) if state else _fit_transformer(data, config, cols)
        encoded = t.transform(data.train[cols], rng(config.seed, "ctgan-encode"))
        sampler = ConditionalSampler.from_data(encoded, t.spans, config.log_frequency)
        obj = CTGANObjective(config, t, encoded, sampler)
        per_epoch = max(n // config.batch_size, 1)
        # the order only counts steps: real rows come from training-by-sampling (with replacement)
        order = DataOrder(per_epoch * config.batch_size, config.batch_size, seed=config.seed, stream="ctgan-order",
                          drop_last=True)
        steps = config.epochs * per_epoch
        new_state = {"model": "ctgan", "transformer": t.to_json(), "columns": cols,
                     "category_counts": [c.tolist() for c in sampler.counts]}
        return obj, new_state, per_epoch, steps, order
    p = data.protected_attribute(config.protected)
    cols = [c for c in data.modelled if c != p.column]
    t = TableTransformer.from_json(state["transformer"]) if state else _fit_transformer(data, config, cols)
    encoded = t.transform(data.train[cols], rng(config.seed, "fairgan-encode"))
    s_values = sorted(data.train[p.column].astype(str).unique())
    s_codes = data.train[p.column].astype(str).map({v: i for i, v in enumerate(s_values)}).to_numpy(np.int64)
    counts = np.bincount(s_codes, minlength=len(s_values))
    if config.batch_size > n:
        raise FairlatentError(f"FairGAN batch_size={config.batch_size} exceeds the {n} training rows; lower it "
                              "(--set batch_size=...)")
    per_epoch = n // config.batch_size
    span = next(sp for sp in t.spans if sp.column == data.target and sp.kind == "category")
    target_info = next(col for col in t.columns if col.name == data.target)
    positive_at = span.start + target_info.categories.index(str(data.positive))
    obj = FairGANObjective(config, t, encoded, s_codes, counts, s_values.index(p.privileged),
                           fair_from_step=config.plain_epochs * per_epoch, positive_at=positive_at)
    order = DataOrder(n, config.batch_size, seed=config.seed, stream="fairgan-order", drop_last=True)
    steps = (config.plain_epochs + config.fair_epochs) * per_epoch
    if steps < 1:
        raise FairlatentError("FairGAN: plain_epochs + fair_epochs must be at least 1")
    new_state = {"model": "fairgan", "transformer": t.to_json(), "columns": cols, "s_column": p.column,
                 "s_values": s_values, "s_counts": counts.tolist(), "privileged": p.privileged}
    return obj, new_state, per_epoch, steps, order


def fit(data: TabularData, out: str | Path, config: ModelConfig, *, resume: bool = True, progress: bool = True,
        stop_at_step: int | None = None) -> Path:
    """Train ``config.model`` on ``data.train`` into ``out``; resumes from ``out/checkpoint`` (bitwise)."""
    out = Path(out)
    sha = start_run(out, data, resume=resume)
    state = read_json(out / "model.json") if resume and (out / "model.json").is_file() else None
    if state is not None and state.get("model") != config.model:
        raise FairlatentError(f"{out}: holds a {state.get('model')} run, not {config.model}; use another --out")
    obj, state, per_epoch, steps, order = build_objective(data, config, state)
    write_json(out / "model.json", state)
    cfg = config.model_dump(mode="json")
    run_cfg = {**cfg, "data_sha256": sha}
    engine = Engine(obj, order, out, LoopSettings(steps=steps, checkpoint_every=config.checkpoint_every,
                                                  log_every=config.log_every, name=config.model),
                    run_config=run_cfg, resume_keys=identity_keys(type(config)) + ("data_sha256",), progress=progress)
    start = engine.restore() if resume else 0
    write_json(out / "config.json", run_record(config.model, cfg, start, steps, False, sha))
    final = engine.run(stop_at_step=stop_at_step)
    if final == steps:
        save_tensors(out / "generator.safetensors", module_tensors(obj.G, "G"))
        write_json(out / "config.json", run_record(config.model, cfg, final, steps, True, sha))
    return out


class Synthesizer:
    """A trained tabular generator, loaded from a finished run directory."""

    def __init__(self, run: str | Path, data: TabularData | None = None):
        self.run = Path(run)
        rec = read_json(self.run / "config.json") if (self.run / "config.json").is_file() else None
        if not isinstance(rec, dict) or rec.get("format") != RUN_FORMAT:
            raise FairlatentError(f"{self.run}: not a fairlatent tabular run (config.json of format {RUN_FORMAT!r})")
        if not rec.get("done") or not (self.run / "generator.safetensors").is_file():
            raise FairlatentError(f"{self.run}: the run is not finished (step {rec.get('step')} of {rec.get('steps')});"
                                  " run `fairlatent tabular fit` again to resume it")
        self.config = config_class(rec["model"]).model_validate(rec["config"])
        self.state = read_json(self.run / "model.json")
        self.data = data if data is not None else load_run_data(self.run)
        self.transformer = TableTransformer.from_json(self.state["transformer"])
        c = self.config
        if c.model == "ctgan":
            self.sampler = ConditionalSampler(self.transformer.spans,
                                              [np.asarray(x) for x in self.state["category_counts"]], c.log_frequency)
            obj = CTGANObjective(c, self.transformer, None, self.sampler)
        else:
            counts = np.asarray(self.state["s_counts"])
            obj = FairGANObjective(c, self.transformer, None, None, counts,
                                   self.state["s_values"].index(self.state["privileged"]), 0)
        self.objective = obj
        self.G = obj.G
        load_module_state(self.G, load_tensors(self.run / "generator.safetensors"), "G", source=self.run)
        self.G.eval()

    # --- drawing raw batches ---
    def _decode(self, raw: torch.Tensor, tg: torch.Generator) -> pd.DataFrame:
        parts = []
        for s in self.transformer.spans:
            x = raw[:, s.start:s.stop]
            if s.activation == "tanh":
                parts.append(torch.tanh(x))
            else:  # a category drawn from softmax(x): the Gumbel-max trick
                gumbel = -torch.log(-torch.log(torch.rand(x.shape, generator=tg).clamp_min(1e-20)))
                parts.append(F.one_hot((x + gumbel).argmax(1), s.width).float())
        return self.transformer.inverse(torch.cat(parts, 1).numpy())

    @torch.no_grad()
    def _batch(self, n: int, conditions: Mapping[str, str], i: int, seed: int) -> pd.DataFrame:
        g, tg = rng(seed, "tabular-sample", i), torch_generator(seed, "tabular-sample", i)
        c = self.config
        z = torch.randn(n, c.embedding_dim, generator=tg)
        conditions = {k: v for k, v in conditions.items() if k not in self.data.constants}  # always satisfied
        if c.model == "ctgan":
            if conditions:
                col = min(conditions, key=lambda k: self._frequency(k, conditions[k]))
                j = [s.column for s in self.sampler.discrete].index(col)
                k = self.transformer.column(col).categories.index(conditions[col])
                cond = self.sampler.condvec(np.full(n, j), np.full(n, k))[0]
            else:
                cond = self.sampler.original_condvec(n, g)
            x = z if cond is None else torch.cat([z, torch.from_numpy(cond)], 1)
            df = self._decode(self.G(x), tg)
        else:
            obj, s_col = self.objective, self.state["s_column"]
            if s_col in conditions:
                s = torch.full((n,), self.state["s_values"].index(conditions[s_col]), dtype=torch.long)
            else:
                s = obj.draw_s(n, g)
            df = self._decode(self.G(torch.cat([z, obj.onehot(s)], 1)), tg)
            df[s_col] = np.asarray(self.state["s_values"], dtype=object)[s.numpy()]
        for col, v in self.data.constants.items():
            df[col] = v
        return df[self.data.columns]

    def _frequency(self, column: str, value: str) -> float:
        return float((self.data.train[column].astype(str) == value).mean())

    def check_conditions(self, conditions: Mapping[str, Any] | None) -> dict[str, str]:
        out = {}
        for col, v in (conditions or {}).items():
            if col not in self.data.columns:
                raise FairlatentError(f"condition on {col!r}: no such column; columns: {self.data.columns}")
            if col in self.data.continuous:
                raise FairlatentError(f"condition on {col!r}: a continuous column; only categorical columns can be "
                                      "conditioned on")
            v = str(v)
            known = sorted(self.data.train[col].astype(str).unique())
            if v not in known:
                raise FairlatentError(f"condition {col}={v!r}: training never saw this value; known: {known[:20]}")
            out[col] = v
        return out

    def sample(self, n: int, conditions: Mapping[str, Any] | None = None, *, seed: int = 0, batch_size: int = 2000,
               max_draws: int | None = None, min_acceptance: float = 1e-3) -> pd.DataFrame:
        """``n`` rows (all holding the ``conditions``' values), a pure function of (the run, conditions, seed)."""
        if n < 1:
            raise FairlatentError(f"n must be at least 1, got {n}")
        cond = self.check_conditions(conditions)
        max_draws = max_draws if max_draws is not None else max(int(n / min_acceptance), 10 * batch_size)
        kept, got, drawn, i = [], 0, 0, 0
        while got < n:
            if drawn >= max_draws:
                rate = got / max(drawn, 1)
                raise FairlatentError(f"sampling {cond}: only {got} of {n} rows after drawing {drawn} "
                                      f"(acceptance {rate:.3%}); the generator rarely produces this combination")
            df = self._batch(batch_size, cond, i, seed)
            drawn, i = drawn + len(df), i + 1
            ok = np.ones(len(df), dtype=bool)
            for col, v in cond.items():
                ok &= (df[col].astype(str) == v).to_numpy()
            kept.append(df[ok])
            got += int(ok.sum())
        return pd.concat(kept, ignore_index=True).iloc[:n].reset_index(drop=True)


def load_synthesizer(run: str | Path) -> Synthesizer:
    return Synthesizer(run)
