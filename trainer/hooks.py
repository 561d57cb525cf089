"""How a run talks to the outside: the web app and the CLI each pass their own `Hooks`.

The trainer calls these and never knows who listens; a listener never needs to know the
trainer's internals. The contract, in the order the calls arrive for one step:

    should_stop()                      before the step (and again before its checkpoint)
    on_step(step, metrics, samples)    the step's metrics and samples, always first
    on_checkpoint(step, path, metrics) if the step saved a checkpoint: after that step's on_step
    on_checkpoint_removed(path)        for each older checkpoint the trainer then deleted
    on_event(level, message, data)     at any time: progress and problems for a person

So a listener may rely on a step's `on_step` having arrived before its checkpoint, and on
`on_checkpoint_removed` naming exactly the folders that are gone (no folder rescans).
Exceptions raised by a hook are not caught: a hook that cannot record a step should stop the
run, not hide data loss.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any


class Hooks:
    """No-op base: subclass and override what you need."""

    def on_step(self, step: int, metrics: dict[str, Any], samples: list[dict[str, Any]]) -> None:
        """After every step: the flat metrics dict and up to `samples_per_step` graded samples."""

    def on_event(self, level: str, message: str, data: dict[str, Any] | None = None) -> None:
        """Human-readable progress and problems; level is `info`, `warning` or `error`."""

    def on_checkpoint(self, step: int, path: str, metrics: dict[str, Any]) -> None:
        """A checkpoint folder was written (also sent for the pause checkpoint), after that
        step's `on_step`; `metrics` are the step's metrics."""

    def on_checkpoint_removed(self, path: str) -> None:
        """A checkpoint folder reported earlier was deleted (not among the best kept)."""

    def should_stop(self) -> str | None:
        """Polled between steps: None to go on, "cancel" to stop now, "pause" to checkpoint and stop."""
        return None


class JsonlHooks(Hooks):
    """Appends metrics.jsonl, samples.jsonl, events.jsonl and checkpoints.jsonl in `out_dir`.

    `stop_file`: if that file appears, its content ("cancel" or "pause") stops the run,
    which gives a CLI user the same pause/cancel as the web app.
    """

    def __init__(self, out_dir: str | Path, *, stop_file: str | Path | None = None, echo=None):
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.stop_file = Path(stop_file) if stop_file else self.out / "STOP"
        self.echo = echo

    def _write(self, name: str, record: dict) -> None:
        with open(self.out / name, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(clean_json(record), ensure_ascii=False) + "\n")

    def on_step(self, step, metrics, samples):
        self._write("metrics.jsonl", {"step": step, "time": time.time(), **metrics})
        for sample in samples:
            self._write("samples.jsonl", sample)

    def on_event(self, level, message, data=None):
        self._write("events.jsonl", {"time": time.time(), "level": level, "message": message,
                                     "data": data or {}})
        if self.echo is not None:
            self.echo(f"[{level}] {message}")

    def on_checkpoint(self, step, path, metrics):
        self._write("checkpoints.jsonl", {"step": step, "path": str(path), "metrics": metrics})

    def on_checkpoint_removed(self, path):
        self._write("checkpoints.jsonl", {"path": str(path), "removed": True})

    def should_stop(self):
        if self.stop_file.is_file():
            word = self.stop_file.read_text().strip().lower() or "cancel"
            return word if word in ("cancel", "pause") else "cancel"
        return None


def clean_json(value):
    """Plain JSON: NaN/inf become null (strict JSON and PostgreSQL refuse them) and numpy or
    torch values become Python numbers and lists. Every hooks implementation and the
    checkpoints' metrics.json store through this."""
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy / torch scalars and arrays
        return clean_json(value.tolist())
    return value
