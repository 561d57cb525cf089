from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    """Grader calibration: experts score answers, the studio measures how often the grader agrees."""

    name = "webapp.reviews"
    label = "reviews"
