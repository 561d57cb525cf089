"""The launch page's estimate warns in plain words when the grader is unchecked against people."""

from django.urls import reverse

from tests.webapp.runs.conftest import tiny_model_path  # noqa: F401 - fixtures of the launch tests
from tests.webapp.runs.test_launch import launchable  # noqa: F401


def test_estimate_warns_that_the_grader_was_never_checked(launchable, client_for):  # noqa: F811
    project, users, _, grader, form = launchable
    body = client_for(users["editor"]).post(reverse("runs:estimate", args=[project.slug]), form).content.decode()
    assert 'id="agreement-warning" data-verdict="unmeasured"' in body
    assert "Nobody has checked this grader against people yet" in body
    assert reverse("reviews:grader", args=[project.slug, grader.pk]) in body
    assert 'id="launch-difficulty"' in body and "See how often it already solves them" in body


def test_estimate_says_when_no_task_can_teach_anything(launchable, client_for):  # noqa: F811
    from webapp.insights.models import DifficultyProfile

    project, users, dataset, grader, form = launchable
    DifficultyProfile.objects.create(project=project, dataset=dataset, grader_spec=grader.spec, base_model="tiny",
                                     k=4, max_tasks=10, status="done",
                                     results={"bands": {"never": 10, "between": 0, "always": 0}, "tasks": []})
    body = client_for(users["editor"]).post(reverse("runs:estimate", args=[project.slug]), form).content.decode()
    assert "never or always solves every task it tried" in body and "(10 never, 0 always;" in body and "tiny, " in body


def test_grader_page_links_to_calibration(launchable, client_for):  # noqa: F811
    project, users, _, grader, _ = launchable
    body = client_for(users["viewer"]).get(reverse("graders:detail", args=[project.slug, grader.pk])).content.decode()
    assert reverse("reviews:grader", args=[project.slug, grader.pk]) in body
