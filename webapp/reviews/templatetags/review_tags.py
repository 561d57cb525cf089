from django import template

from .. import selectors

register = template.Library()


@register.filter
def pct(value) -> str:
    """0.734 -> "73 %"; None -> "—" (not measured)."""
    return "—" if value is None else f"{value * 100:.0f} %"


@register.filter
def num(value, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{int(digits)}f}"


@register.filter
def score_word(value) -> str:
    """An expert's or the grader's score in words: pass / fail, or the number."""
    if value is None:
        return "—"
    if value in (0, 1):
        return "pass" if value == 1 else "fail"
    return f"{value:.2f}"


@register.filter
def message_text(content) -> str:
    """A chat message's content as text (content parts joined; images named, not shown)."""
    if isinstance(content, list):
        return "".join(p.get("text", "[image]" if p.get("type") == "image_url" else "")
                       for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


@register.filter
def get(mapping, key):
    return (mapping or {}).get(key)


@register.inclusion_tag("reviews/_launch_warning.html")
def grader_agreement_warning(grader, project):
    """The launch page's plain-words warning when the grader's agreement is low or unmeasured."""
    if grader is None or not getattr(grader, "pk", None):
        return {"grader": None}
    report = selectors.grader_agreement(grader=grader)
    return {"grader": grader, "project": project, "report": report, "verdict": report["verdict"]}
