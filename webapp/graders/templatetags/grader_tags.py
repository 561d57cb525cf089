from django import template

register = template.Library()


@register.filter
def grader_kind(spec) -> str:
    """What a grader is, in plain words: “3 criteria” for a combined grader, else its check's
    name (“Text matches”), never the code name (`multi`, `string_check`)."""
    from webapp.graders.explain import type_label

    spec = spec if isinstance(spec, dict) else {}
    if spec.get("type") == "multi" and isinstance(spec.get("graders"), dict):
        n = len(spec["graders"])
        return f"{n} criteri{'on' if n == 1 else 'a'}"
    return type_label(str(spec.get("type") or "unknown"))
