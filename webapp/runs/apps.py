from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "webapp.runs"
    label = "runs"

    def ready(self) -> None:
        from . import signals  # noqa: F401 - worker start-up reaps runs it was running
