from django import template

register = template.Library()


@register.simple_tag
def run_eval_summary(run):
    """The run's before/after evaluation summary (see `selectors.run_eval_summary`), with the
    criteria chart's bar widths."""
    from webapp.evals.selectors import run_eval_summary as summary_for
    from webapp.evals.views import _criteria_chart

    if hasattr(run, "_eval_summary"):  # the run page includes the summary twice (answer, offer)
        return run._eval_summary
    summary = summary_for(run=run)
    if summary and summary.get("ready"):
        summary["bars"] = _criteria_chart(summary["criteria"], summary["trained"].grader_spec)
    run._eval_summary = summary
    return summary


@register.filter
def signed(value) -> str:
    """A score change with its sign: +0.270, −0.050, 0.000."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    if abs(value) < 0.0005:
        return "0.000"
    return f"+{value:.3f}" if value > 0 else f"−{abs(value):.3f}"


@register.filter
def pct(value) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    return f"{100 * value:.0f}%"


@register.filter
def label_in(key, spec) -> str:
    """A criterion's key as its author named it in the grader `spec`: {{ name|label_in:ev.grader_spec }}."""
    from webapp.evals.views import criterion_labels

    return criterion_labels(spec).get(key, key)
