"""Stage caching: each stage writes to its own folder and is skipped when its inputs and config are unchanged.

A stage's *key* is a hash of its name, its own config and the keys of the stages it reads from, so a change
anywhere upstream invalidates everything downstream and nothing else. ``<stage>/stage.json`` is written last,
atomically, with ``done: true``: a folder without it is an interrupted stage, which is re-entered with its
files intact (the training jobs inside resume from their checkpoints). A folder whose recorded key differs
is stale and is cleared before the stage runs again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from rich.console import Console

from fairlatent.errors import FairlatentError
from fairlatent.utils.io import write_json
from fairlatent.utils.schema import Schema, read_json_object


class StageRecord(Schema):
    """``stage.json``: written when a stage finishes; read to skip it when nothing changed."""

    key: str
    done: bool
    seconds: float = 0.0
    outputs: dict[str, Any] = {}


def stable_hash(obj: Any) -> str:
    """SHA-256 (16 hex digits) of a JSON-serialisable object with sorted keys."""
    blob = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass
class StageResult:
    name: str
    dir: Path
    key: str
    outputs: dict[str, Any]
    seconds: float
    skipped: bool


@dataclass
class StageRunner:
    """Runs stages under ``run_dir`` with caching; records timings for the report."""

    run_dir: Path
    console: Console = field(default_factory=Console)
    results: dict[str, StageResult] = field(default_factory=dict)
    #: Run nothing: every stage must already be finished and its record is taken as it stands, whatever key
    #: today's code would give it (to re-read finished work written by an older version without retraining
    #: it); an unfinished stage is an error naming it.
    read_only: bool = False

    def key(self, name: str, config: Any, deps: tuple[str, ...] = ()) -> str:
        """The stage's key: its name, its config and the keys of the stages it reads from."""
        return stable_hash({"stage": name, "config": config, "deps": [self.results[d].key for d in deps]})

    def finished(self, name: str, key: str) -> dict[str, Any] | None:
        """The record of stage ``name`` when it finished with ``key``, else None."""
        record_path = self.run_dir / name / "stage.json"
        if not record_path.is_file():
            return None
        record = read_json_object(record_path, StageRecord)
        return record if record.get("key") == key and record.get("done") else None

    def run(self, name: str, config: Any, fn: Callable[[Path], dict[str, Any] | None],
            deps: tuple[str, ...] = ()) -> StageResult:
        """Run ``fn(stage_dir)`` unless a finished stage with the same key exists; return its outputs."""
        if self.read_only:
            return self.load_finished(name)
        key = self.key(name, config, deps)
        stage_dir = self.run_dir / name
        record_path = stage_dir / "stage.json"
        if record_path.is_file():
            record = self.finished(name, key)
            if record is not None:
                self.console.print(f"[dim]stage {name}: unchanged, skipped[/]")
                result = StageResult(name, stage_dir, key, record.get("outputs", {}), record.get("seconds", 0.0), True)
                self.results[name] = result
                return result
            # stale (another key): clear so nothing from the old configuration leaks in
            shutil.rmtree(stage_dir)
        elif stage_dir.exists():
            marker = stage_dir / ".key"
            if marker.is_file() and marker.read_text().strip() != key:
                shutil.rmtree(stage_dir)
            elif marker.is_file():
                self.console.print(f"[yellow]stage {name}: resuming an interrupted run[/]")
        stage_dir.mkdir(parents=True, exist_ok=True)
        (stage_dir / ".key").write_text(key)
        self.console.rule(f"[bold]{name}")
        t0 = time.perf_counter()
        outputs = fn(stage_dir) or {}
        seconds = time.perf_counter() - t0
        write_json(record_path, {"stage": name, "key": key, "done": True, "seconds": seconds, "outputs": outputs})
        result = StageResult(name, stage_dir, key, outputs, seconds, False)
        self.results[name] = result
        return result

    def load_finished(self, name: str) -> StageResult:
        """Stage ``name``'s finished record as it stands, whatever its key, taken into :attr:`results` (what
        ``read_only`` runs give; also how a stage run on a finished run later finds its dependencies' keys)."""
        stage_dir = self.run_dir / name
        record_path = stage_dir / "stage.json"
        record = read_json_object(record_path, StageRecord) if record_path.is_file() else None
        if record is None or not record.get("done"):
            raise FairlatentError(f"{stage_dir}: stage {name} is not finished, and this invocation only reads "
                                  "finished stages (e.g. --run-nothing); run the pipeline or benchmark to train it")
        result = StageResult(name, stage_dir, record["key"], record.get("outputs", {}), record.get("seconds", 0.0),
                             True)
        self.results[name] = result
        return result

    def timings(self) -> dict[str, float]:
        return {name: round(r.seconds, 2) for name, r in self.results.items()}
