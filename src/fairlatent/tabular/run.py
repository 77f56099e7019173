"""The run directory of a tabular model, shared by CTGAN and FairGAN.

::

    config.json         run record: format, model, config, step, steps, done
    spec.json           the data set's column types, target, protected attributes, constants, notes
    train.csv test.csv  the split the model was trained on (evaluation uses the same one)
    model.json          the encoding (mixture parameters, categories) and category counts: no pickles
    checkpoint/ log.csv the engine's checkpoint and log (bitwise resume)
    generator.safetensors  the trained generator (written when the run is done)

A run is resumed only with the same data (the SHA-256 of ``train.csv`` is a resume key) and the same
identity settings (every config field not marked run-only).
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pandas as pd

from fairlatent.errors import FairlatentError
from fairlatent.tabular.table import TabularData
from fairlatent.utils.io import check_replaceable, claim_output_directory, read_json, write_json, write_text

__all__ = ["RUN_FORMAT", "table_csv", "read_table_csv", "start_run", "load_run_data", "run_record"]

RUN_FORMAT = "fairlatent-tabular"


def table_csv(df: pd.DataFrame) -> str:
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    return buf.getvalue()


def read_table_csv(path: Path, data: TabularData | None = None) -> pd.DataFrame:
    """A CSV written by fairlatent (or a user's synthetic table), typed like ``data`` when given."""
    from fairlatent.utils.io import user_file_errors

    with user_file_errors(path, what="CSV file"):
        try:
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        except pd.errors.EmptyDataError:
            raise FairlatentError(f"{path}: empty file") from None
        except pd.errors.ParserError as exc:
            raise FairlatentError(f"{path}: not a readable CSV ({' '.join(str(exc).split())})") from None
    if len(df) == 0:
        raise FairlatentError(f"{path}: no data rows")
    return data.coerce(df, str(path)) if data is not None else df


def run_record(model: str, config: dict, step: int, steps: int, done: bool, data_sha: str) -> dict[str, Any]:
    return {"format": RUN_FORMAT, "model": model, "done": done, "step": step, "steps": steps, "data_sha256": data_sha,
            "config": config}


def start_run(out: Path, data: TabularData, *, resume: bool) -> str:
    """Claim ``out``, write (or, resuming, check) the split and the spec; return the train table's SHA-256."""
    claim_output_directory(out, record_format=RUN_FORMAT)
    text = table_csv(data.train)
    sha = hashlib.sha256(text.encode()).hexdigest()
    if not resume:
        check_replaceable(out / "checkpoint", True)
        import shutil

        shutil.rmtree(out / "checkpoint", ignore_errors=True)
        for name in ("log.csv", "generator.safetensors", "model.json", "config.json"):
            (out / name).unlink(missing_ok=True)
    rec = read_json(out / "config.json") if (out / "config.json").is_file() else None
    if isinstance(rec, dict) and rec.get("data_sha256") not in (None, sha):
        raise FairlatentError(f"{out}: holds a run trained on other data; use another --out or --no-resume")
    write_text(out / "train.csv", text)
    write_text(out / "test.csv", table_csv(data.test))
    write_json(out / "spec.json", data.spec())
    return sha


def load_run_data(run: Path) -> TabularData:
    """The data set (spec, train and test tables) a run was trained on."""
    run = Path(run)
    rec = read_json(run / "config.json") if (run / "config.json").is_file() else None
    if not isinstance(rec, dict) or rec.get("format") != RUN_FORMAT:
        raise FairlatentError(f"{run}: not a fairlatent tabular run (no config.json of format {RUN_FORMAT!r})")
    spec = read_json(run / "spec.json")
    raw = {k: read_table_csv(run / f"{k}.csv") for k in ("train", "test")}
    data = TabularData.from_spec(spec, raw["train"], raw["test"])
    data.train, data.test = data.coerce(raw["train"], str(run / "train.csv")), data.coerce(raw["test"], str(run / "test.csv"))
    return data
