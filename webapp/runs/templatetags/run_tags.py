from django import template

register = template.Library()


@register.filter
def get_item(mapping, key):
    return (mapping or {}).get(key) if hasattr(mapping, "get") else None


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
