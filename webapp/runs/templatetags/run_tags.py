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
