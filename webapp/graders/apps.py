from django.apps import AppConfig


class GradersConfig(AppConfig):
    name = "webapp.graders"
    label = "graders"
