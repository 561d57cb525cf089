from django import template

from ..panels import findings_context

register = template.Library()


@register.inclusion_tag("insights/_findings_panel.html")
def run_findings_panel(run, project, access=None):
    """The findings panel for the run page (`templates/runs/_findings.html` renders it)."""
    return findings_context(run=run, project=project, access=access)


@register.inclusion_tag("insights/_launch_difficulty.html")
def dataset_difficulty_note(dataset, project):
    """The launch page's word on the dataset's latest difficulty profile (or a link to make one)."""
    from ..selectors import difficulty_latest

    return {"dataset": dataset, "project": project, "profile": difficulty_latest(dataset=dataset, done_only=True)}
