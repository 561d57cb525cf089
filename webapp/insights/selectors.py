"""Reads for insights: a run's findings, computed from its stored metrics by the pure rules."""

from __future__ import annotations

from webapp.runs.models import Run

from .diagnosis import Finding, RunView, diagnose, main_criterion

# A run's metrics are read whole; a very long run is judged on its latest steps.
MAX_STEPS_READ = 5000


def run_view(*, run: Run) -> RunView:
    rows = list(run.metrics.order_by("-step").values_list("step", "data")[:MAX_STEPS_READ])
    rows.reverse()
    return RunView(steps=rows, max_completion_tokens=(run.config or {}).get("max_completion_tokens"),
                   main_criterion=main_criterion(run.grader_spec))


def run_findings(*, run: Run) -> list[Finding]:
    """The findings that apply to the run now (what the panel and the API show)."""
    return diagnose(run_view(run=run))


def finding_object(finding: Finding, *, run: Run) -> dict:
    """The API's shape: `{code, severity, message, evidence, title, what_to_try}`; evidence
    links the samples that show it (`samples_url`, the sample browser's filters)."""
    from urllib.parse import urlencode

    evidence = dict(finding.evidence)
    query = evidence.pop("samples_query", None)
    if query is not None:
        evidence["samples_url"] = f"/v1/fine_tuning/jobs/{run.pk}/samples?{urlencode(query)}"
    return {"code": finding.code, "severity": finding.severity, "title": finding.title,
            "message": finding.message, "evidence": evidence, "what_to_try": finding.what_to_try}
