from django import template

register = template.Library()


@register.filter
def score(value) -> str:
    """A reward or criterion score with 3 decimals; “—” when missing."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    return f"{value:.3f}"


@register.filter
def reward_class(value) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "none"
    return "high" if value >= 0.8 else "low" if value < 0.4 else "mid"


@register.filter
def last_user_text(messages) -> str:
    """The last user message of a prompt, as plain text, for a one-line preview."""
    from webapp.datasets.templatetags.tasks import message_text

    for m in reversed(messages or []):
        if isinstance(m, dict) and m.get("role") == "user":
            return message_text(m)
    return ""


@register.filter
def get(mapping, key):
    """`mapping[key]`, or "" when it is missing (templates cannot index a dict by a variable)."""
    return (mapping or {}).get(key, "") if isinstance(mapping, dict) else ""


def _minutes_or_hours(seconds: float) -> tuple[float, str]:
    if seconds < 120:
        return seconds, "s"
    if seconds < 7200:
        return seconds / 60, "min"
    return seconds / 3600, "h"


@register.simple_tag
def duration_range(low, high) -> str:
    """“6–9 min”, “40–70 s”, “1.5–2 h”: a time range in the larger range's unit."""
    if not isinstance(low, int | float) or not isinstance(high, int | float):
        return "—"
    high_value, unit = _minutes_or_hours(max(high, 1))
    scale = {"s": 1, "min": 60, "h": 3600}[unit]
    low_value = low / scale

    def fmt(value: float) -> str:
        return f"{value:.1f}".rstrip("0").rstrip(".") if unit == "h" and value < 10 else f"{round(value):d}"

    low_text, high_text = fmt(low_value), fmt(high_value)
    if low_text == high_text or low_text in ("0", "0.0"):
        return f"{'under ' if low_text in ('0', '0.0') and high_text != '0' else ''}{high_text} {unit}"
    return f"{low_text}–{high_text} {unit}"


@register.filter
def sub(value, other):
    """`value - other` for numbers; None otherwise."""
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (value, other))
    return value - other if numbers else None


@register.filter
def signed(value) -> str:
    """A change with its sign: “+0.290”, “−0.050”; “—” when missing."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    return f"+{value:.3f}" if value >= 0 else f"−{-value:.3f}"
