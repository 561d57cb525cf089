"""Context for the panels other pages include (the run page's findings, bands and re-grades)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.urls import reverse

from . import selectors


def _mean(curve: dict) -> float | None:
    ys = [y for s in (curve or {}).values() for y in s.get("y", [])]
    return sum(ys) / len(ys) if ys else None


def findings_context(*, run, project, access=None) -> dict:
    from webapp.graders.selectors import grader_list

    samples = reverse("runs:samples", args=[project.slug, run.pk])
    findings = []
    for f in selectors.run_findings(run=run):
        query = f.evidence.get("samples_query")
        findings.append({"f": f, "samples_url": f"{samples}?{urlencode(query)}" if query is not None else None,
                         "facts": [(k.replace("_", " "), v) for k, v in f.evidence.items()
                                   if k not in ("samples_query", "metric")]})
    regrades = list(run.regrades.select_related("grader").order_by("-created_at", "-pk")[:3])
    for g in regrades:
        g.script_id = f"regrade-curve-{g.pk}"
        g.mean_regraded = _mean((g.curve or {}).get("regraded", {}))
        g.mean_original = _mean((g.curve or {}).get("original", {}))
    can_edit = bool(access and access.can_edit)
    return {"run": run, "project": project, "findings": findings, "enough": run.current_step >= 5,
            "active": run.is_active or any(not g.is_finished for g in regrades),
            "bands": selectors.run_band_progress(run=run), "regrades": regrades,
            "can_regrade": can_edit and not run.is_active and run.current_step > 0,
            "regrade_graders": list(grader_list(project=project)) if can_edit else []}
