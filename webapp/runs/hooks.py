"""The trainer's hooks for the web app: rows in the database, written in batches.

The trainer calls `on_step` once per step, `on_checkpoint` after the step it belongs to,
`on_checkpoint_removed` for each checkpoint it pruned, and `should_stop` between steps (the
contract in `trainer.hooks`). Writing one transaction per number would make SQLite the
bottleneck and lock readers out, so rows are buffered and flushed at most every
`flush_seconds` (and at checkpoints, errors and the end). A separate heartbeat thread proves
the worker is alive even during a long step.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import deque
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from trainer.export import export_size
from trainer.hooks import Hooks, clean_json

from .models import Run, RunCheckpoint, RunEvent, RunMetric, RunSample

log = logging.getLogger(__name__)


def task_key(messages) -> str:
    return hashlib.sha1(json.dumps(messages, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def folder_size(path: str | Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


class DbHooks(Hooks):
    def __init__(self, run: Run, *, flush_seconds: float = 2.0, diagnose_seconds: float = 10.0):
        self.run_id = run.pk
        self.diagnose_seconds = diagnose_seconds
        self._last_diagnosis = time.monotonic()
        # The metrics the diagnosis reads, kept here as the steps come: read from the database
        # once (a resumed run's earlier steps), so each diagnosis costs the same however long
        # the run has been going.
        self._diagnosis_rows: deque[tuple[int, dict[str, Any]]] | None = None
        self.base_model = run.base_model  # the download's adapter config names it (its size counts)
        self.total_steps = run.total_steps
        self.flush_seconds = flush_seconds
        self._metrics: list[RunMetric] = []
        self._samples: list[RunSample] = []
        self._events: list[RunEvent] = []
        self._progress: dict[str, Any] = {}
        self._last_flush = time.monotonic()

    # --- trainer callbacks ------------------------------------------------------------------
    def on_step(self, step: int, metrics: dict[str, Any], samples: list[dict[str, Any]]) -> None:
        metrics = clean_json(metrics)
        self._metrics.append(RunMetric(run_id=self.run_id, step=step, data=metrics))
        if self._diagnosis_rows is not None:
            while self._diagnosis_rows and self._diagnosis_rows[-1][0] >= step:  # a resumed step repeats
                self._diagnosis_rows.pop()
            self._diagnosis_rows.append((step, metrics))
        self._events.append(RunEvent(run_id=self.run_id, level="info", type="metrics",
                                     message=f"Step {step}/{self.total_steps}", data={"step": step, **metrics}))
        for s in samples:
            self._samples.append(self._sample_row(step, s))
        progress = {"current_step": step}
        if metrics.get("train/reward_mean") is not None:
            progress["latest_train_reward"] = metrics["train/reward_mean"]
        if metrics.get("trained_tokens") is not None:
            progress["trained_tokens"] = int(metrics["trained_tokens"])
        if metrics.get("eta_s") is not None:  # the trainer's own estimate from its step times
            progress["estimated_finish"] = timezone.now() + timedelta(seconds=metrics["eta_s"])
        self._progress.update(progress)
        self._maybe_flush()

    def on_event(self, level: str, message: str, data: dict[str, Any] | None = None) -> None:
        self._events.append(RunEvent(run_id=self.run_id, level=level, type="message", message=message[:10000],
                                     data=clean_json(data or {})))
        self._maybe_flush(force=level == "error")

    def on_checkpoint(self, step: int, path: str, metrics: dict[str, Any]) -> None:
        metrics = clean_json(metrics)
        valid = metrics.get("valid/reward_mean")
        with transaction.atomic():
            # The step's own rows (buffered by its on_step) land with its checkpoint, so a
            # resume from this checkpoint never leaves a hole in the metrics.
            self._flush_rows()
            RunCheckpoint.objects.create(run_id=self.run_id, step=step, path=str(path), metrics=metrics,
                                         valid_reward=valid,
                                         size_bytes=export_size(path, base_model=self.base_model))
            self._update_best()

    def on_checkpoint_removed(self, path: str) -> None:
        """The trainer keeps only the best few plus the latest: forget the pruned one (else the
        run page offers a download that 404s)."""
        with transaction.atomic():
            RunCheckpoint.objects.filter(run_id=self.run_id, path=str(path)).delete()
            self._update_best()

    def _update_best(self) -> None:
        best = (RunCheckpoint.objects.filter(run_id=self.run_id, valid_reward__isnull=False)
                .order_by("-valid_reward").values_list("valid_reward", flat=True).first())
        Run.objects.filter(pk=self.run_id).update(best_valid_reward=best)

    def should_stop(self) -> str | None:
        self._maybe_flush()
        action = Run.objects.filter(pk=self.run_id).values_list("requested_action", flat=True).first()
        return action or None

    # --- writing ----------------------------------------------------------------------------
    def _sample_row(self, step: int, s: dict[str, Any]) -> RunSample:
        prompt = s.get("prompt") or []
        item = s.get("item") or {}
        return RunSample(
            run_id=self.run_id, step=step, split=s.get("split", "train"), task_key=task_key(prompt),
            prompt=clean_json(prompt), item=clean_json(item), output_text=str(s.get("output_text", ""))[:100_000],
            reward=float(s.get("reward") or 0.0), sub_rewards=clean_json(s.get("sub_rewards") or {}),
            errors=clean_json(s.get("errors") or {}), completion_tokens=int(s.get("completion_tokens") or 0),
            truncated=bool(s.get("truncated", False)),
        )

    def _maybe_flush(self, force: bool = False) -> None:
        if force or time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        with transaction.atomic():
            self._flush_rows()
        if time.monotonic() - self._last_diagnosis >= self.diagnose_seconds:
            self.diagnose()

    def diagnose(self) -> None:
        """Announce new findings (webapp.insights) as run events; never stops the run."""
        from webapp.insights.selectors import MAX_STEPS_READ
        from webapp.insights.services import run_findings_record

        self._last_diagnosis = time.monotonic()
        try:
            if self._diagnosis_rows is None:  # once per run (or resume); on_step keeps it current
                rows = list(RunMetric.objects.filter(run_id=self.run_id).order_by("-step")
                            .values_list("step", "data")[:MAX_STEPS_READ])
                rows.reverse()
                self._diagnosis_rows = deque(rows, maxlen=MAX_STEPS_READ)
            run_findings_record(run_id=self.run_id, metric_rows=list(self._diagnosis_rows))
        except Exception:  # a diagnosis bug must not cost a training run
            log.exception("diagnosis of run %s failed", self.run_id)

    def _flush_rows(self) -> None:
        if self._metrics:
            RunMetric.objects.bulk_create(self._metrics, ignore_conflicts=True)  # a resumed step may repeat
        RunSample.objects.bulk_create(self._samples, batch_size=500)
        RunEvent.objects.bulk_create(self._events, batch_size=500)
        if self._progress:
            Run.objects.filter(pk=self.run_id).update(**self._progress, heartbeat_at=timezone.now())
        self._metrics, self._samples, self._events, self._progress = [], [], [], {}
        self._last_flush = time.monotonic()


class Heartbeat:
    """Updates `Run.heartbeat_at` every `interval` seconds from a background thread."""

    def __init__(self, run_id: str, interval: float):
        self.run_id, self.interval = run_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{run_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _beat(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    Run.objects.filter(pk=self.run_id).update(heartbeat_at=timezone.now())
                except Exception:  # a busy database must not kill the run; the next beat retries
                    log.exception("heartbeat for %s failed", self.run_id)
                    close_old_connections()
        finally:
            connection.close()
