from django.apps import AppConfig


class InsightsConfig(AppConfig):
    """What a run's numbers mean: plain-language findings, task difficulty, re-grading."""

    name = "webapp.insights"
    label = "insights"
