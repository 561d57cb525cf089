"""Hostile form inputs to the difficulty profile and re-grade: the field named, nothing started."""

import pytest
from django.urls import reverse

from tests.webapp.runs.factories import make_run
from webapp.graders.services import grader_create
from webapp.insights.models import DifficultyProfile, Regrade
from webapp.projects.models import Project

pytestmark = pytest.mark.django_db

HARSH = {"type": "string_check", "name": "harsh", "input": "{{sample.output_text}}", "reference": "never",
         "operation": "eq"}


def test_difficulty_numbers_out_of_range_or_not_numbers(project_with_roles, dataset, client_for):
    project, users = project_with_roles
    grader = grader_create(project=project, name="Harsh", spec=HARSH, user=users["owner"], dataset=dataset)
    editor = client_for(users["editor"])
    url = reverse("insights:difficulty_start", args=[project.slug, dataset.pk])
    for k, tasks, says in (("9" * 5000, "5", "Answers per task"), ("-3", "5", "Answers per task"),
                           ("abc", "5", "Answers per task"), ("1e3", "5", "Answers per task"),
                           ("2", "9" * 30, "Tasks: from 1 to"), ("2", "-1", "Tasks: from 1 to"),
                           ("2", "", "Tasks: from 1 to")):
        response = editor.post(url, {"grader": grader.pk, "base_model": "x", "k": k, "max_tasks": tasks},
                               follow=True)
        assert response.status_code == 200 and says in response.content.decode(), (k, tasks)
    page = editor.get(reverse("insights:difficulty", args=[project.slug, dataset.pk]),
                      {"k": "9" * 5000, "max_tasks": "-7"})
    assert page.status_code == 200
    assert not DifficultyProfile.objects.exists()


def test_regrade_and_difficulty_refuse_another_projects_grader(project_with_roles, dataset, client_for):
    project, users = project_with_roles
    other = Project.objects.create(name="Other", slug="other")
    foreign = grader_create(project=other, name="Theirs", spec=HARSH, user=users["owner"])
    run = make_run(project, dataset, users["owner"], steps=2, status="succeeded")
    editor = client_for(users["editor"])
    for value in (foreign.pk, "x" * 10_000, "", "grader-' OR 1=1"):
        response = editor.post(reverse("insights:regrade", args=[project.slug, run.pk]), {"grader": value},
                               follow=True)
        assert response.status_code == 200 and "Choose a grader of this project" in response.content.decode()
        response = editor.post(reverse("insights:difficulty_start", args=[project.slug, dataset.pk]),
                               {"grader": value, "base_model": "x", "k": "2", "max_tasks": "5"}, follow=True)
        assert response.status_code == 200 and "Choose a grader of this project" in response.content.decode()
    assert not Regrade.objects.exists() and not DifficultyProfile.objects.exists()


def test_the_page_and_the_trainer_agree_on_the_bounds():
    from trainer import difficulty
    from webapp.insights import services

    assert (services.MAX_K, services.MAX_TASKS) == (difficulty.MAX_K, difficulty.MAX_TASKS)
