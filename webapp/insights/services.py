"""Writes for insights."""

from __future__ import annotations

import logging

from django.db import transaction

from webapp.runs.models import Run, RunEvent

from .selectors import run_findings

log = logging.getLogger(__name__)


@transaction.atomic
def run_findings_record(*, run_id: str) -> list[str]:
    """Announce each finding once as a run event (level warning/error, `data.finding` = its
    code); returns the codes announced now. Called by the training hooks while the run is
    live, so the events log and `GET …/events` say what went wrong when it happened."""
    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        return []
    found = run_findings(run=run)
    if not found:
        return []
    announced = set(RunEvent.objects.filter(run=run, type="message", data__has_key="finding")
                    .values_list("data__finding", flat=True))
    new = [f for f in found if f.code not in announced]
    RunEvent.objects.bulk_create([
        RunEvent(run=run, level="error" if f.severity == "error" else "warning", type="message",
                 message=f"{f.title}: {f.message} Try: {f.what_to_try[0]}",
                 data={"finding": f.code, "severity": f.severity, "step": run.current_step,
                       "evidence": {k: v for k, v in f.evidence.items() if k != "samples_query"}})
        for f in new])
    return [f.code for f in new]
