from django import template

from ..panels import findings_context

register = template.Library()


@register.inclusion_tag("insights/_findings_panel.html")
def run_findings_panel(run, project, access=None):
    """The findings panel for the run page (`templates/runs/_findings.html` renders it)."""
    return findings_context(run=run, project=project, access=access)
