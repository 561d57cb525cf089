"""Context for the panels other pages include (the run page's findings)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.urls import reverse

from . import selectors


def findings_context(*, run, project) -> dict:
    samples = reverse("runs:samples", args=[project.slug, run.pk])
    findings = []
    for f in selectors.run_findings(run=run):
        query = f.evidence.get("samples_query")
        findings.append({"f": f, "samples_url": f"{samples}?{urlencode(query)}" if query is not None else None,
                         "facts": [(k.replace("_", " "), v) for k, v in f.evidence.items()
                                   if k not in ("samples_query", "metric")]})
    return {"run": run, "project": project, "findings": findings, "active": run.is_active,
            "enough": run.current_step >= 5}
