"""Context for the panels other pages include (the run page's findings, bands and re-grades)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.urls import reverse

from . import selectors


def _mean(curve: dict) -> float | None:
    ys = [y for s in (curve or {}).values() for y in s.get("y", [])]
    return sum(ys) / len(ys) if ys else None


# The evidence's keys in the expert's words; shares (0..1) read as percentages.
FACT_LABELS = {"steps": "steps", "value": "share of answers", "groups_flat": "task groups scored alike", "best_step": "best validation at step",
               "best": "best validation score", "latest_step": "latest step", "latest": "latest score",
               "train_rise": "training score rise", "start": "at the start", "end": "recently", "change": "change",
               "trend": "steadiness", "criterion": "criterion", "rising": "rising criterion",
               "rising_start": "it started at", "rising_end": "it reached", "peak_step": "peak at step",
               "peak": "peak score", "kl_step": "KL jump at step", "kl": "KL",
               "criterion_start": "criterion at the start", "criterion_end": "criterion recently"}
PERCENT_KEYS = {"value", "change", "groups_flat"}


def evidence_facts(evidence: dict) -> list[tuple[str, str]]:
    facts = []
    for key, value in evidence.items():
        if key in ("samples_query", "metric") or value is None:
            continue
        if isinstance(value, list) and len(value) == 2:
            text = f"{value[0]}–{value[1]}" if value[0] != value[1] else str(value[0])
        elif key in PERCENT_KEYS and isinstance(value, int | float):
            text = f"{value * 100:+.0f} %" if key == "change" else f"{value * 100:.0f} %"
        elif isinstance(value, float):
            text = f"{value:.3f}"
        else:
            text = str(value)
        facts.append((FACT_LABELS.get(key, key.replace("_", " ")), text))
    return facts


def findings_context(*, run, project, access=None) -> dict:
    from webapp.graders.selectors import grader_list

    from .diagnosis import diagnose

    samples = reverse("runs:samples", args=[project.slug, run.pk])
    view = selectors.run_view(run=run)
    findings = []
    for f in diagnose(view):
        query = f.evidence.get("samples_query")
        findings.append({"f": f, "samples_url": f"{samples}?{urlencode(query)}" if query is not None else None,
                         "facts": evidence_facts(f.evidence)})
    regrades = list(run.regrades.select_related("grader").order_by("-created_at", "-pk")[:3])
    for g in regrades:
        g.script_id = f"regrade-curve-{g.pk}"
        g.mean_regraded = _mean((g.curve or {}).get("regraded", {}))
        g.mean_original = _mean((g.curve or {}).get("original", {}))
    can_edit = bool(access and access.can_edit)
    return {"run": run, "project": project, "findings": findings, "enough": len(view.steps) >= 5,
            "active": run.is_active or any(not g.is_finished for g in regrades),
            "bands": selectors.run_band_progress(run=run), "regrades": regrades,
            "can_regrade": can_edit and not run.is_active and run.current_step > 0,
            # another grader: the run's own would only give its scores back
            "regrade_graders": [g for g in grader_list(project=project) if g.pk != run.grader_id] if can_edit else []}
