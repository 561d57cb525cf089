import json

from django import template

from webapp.datasets import importers

register = template.Library()


@register.filter
def prompt_text(row: dict) -> str:
    return importers.prompt_text(row)


@register.filter
def message_text(message: dict) -> str:
    content = message.get("content") if isinstance(message, dict) else None
    return importers.content_text(content) or ("" if content is None else json.dumps(content))


@register.filter
def as_json(value) -> str:
    """Compact JSON for showing a field's value (autoescaped by the template)."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
