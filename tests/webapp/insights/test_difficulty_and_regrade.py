"""Difficulty profiles (a real tiny model, sampled by the worker's service) and re-grades of
finished runs, through the services, pages and API."""

import pytest
from django.urls import reverse

from tests.webapp.runs.factories import make_run
from webapp.datasets.models import Dataset
from webapp.graders.services import grader_create
from webapp.insights import services
from webapp.insights.models import DifficultyProfile, Regrade
from webapp.reviews.models import ReviewItem
from webapp.runs.hooks import task_key
from webapp.runs.models import LocalBaseModel, RunSample

pytestmark = pytest.mark.django_db

HARSH = {"type": "string_check", "name": "harsh", "input": "{{sample.output_text}}", "reference": "never",
         "operation": "eq"}
EXACT = {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}",
         "reference": "{{item.reference_answer}}", "operation": "eq"}


@pytest.fixture
def tiny(tiny_model_path):
    LocalBaseModel.objects.create(name="tiny", path=str(tiny_model_path))
    return "tiny"


def test_profile_on_a_worker_then_exclude_and_review(project_with_roles, dataset, tiny, client_for, api_client_for):
    project, users = project_with_roles
    grader = grader_create(project=project, name="Harsh", spec=HARSH, user=users["owner"], dataset=dataset)
    editor = client_for(users["editor"])
    page = editor.get(reverse("insights:difficulty", args=[project.slug, dataset.pk]), {"k": "2", "max_tasks": "5"})
    assert page.status_code == 200 and "5 tasks × 2 answers = <strong>10 answers</strong>" in page.content.decode()
    response = editor.post(reverse("insights:difficulty_start", args=[project.slug, dataset.pk]),
                           {"grader": grader.pk, "base_model": tiny, "k": "2", "max_tasks": "5"})
    assert response.status_code == 302
    profile = DifficultyProfile.objects.get()
    assert profile.status == "queued" and profile.total_tasks == 5

    services.difficulty_execute(profile_id=profile.pk)  # what the Celery task calls
    profile.refresh_from_db()
    assert profile.status == "done", profile.error
    assert profile.results["bands"] == {"never": 5, "between": 0, "always": 0}
    assert len(profile.results["tasks"][0]["answers"]) == 2

    html = editor.get(reverse("insights:difficulty", args=[project.slug, dataset.pk])).content.decode()
    assert "<strong>5</strong> never solved" in html and "nothing to learn from" in html
    body = api_client_for(users["viewer"], project).get(f"/v1/datasets/{dataset.pk}/difficulty").json()
    assert body["bands"]["never"] == 5 and body["k"] == 2 and len(body["tasks"]) == 5
    assert api_client_for(users["viewer"], project).get(f"/v1/datasets/dataset-{dataset.pk}/difficulty").status_code == 200

    response = editor.post(reverse("insights:difficulty_apply", args=[project.slug, profile.pk]),
                           {"action": "exclude", "bands": ["never", "always"]})
    copy = Dataset.objects.get(name=dataset.name, version=2)
    assert response.status_code == 302 and copy.tasks.count() == dataset.tasks.count() - 5
    editor.post(reverse("insights:difficulty_apply", args=[project.slug, profile.pk]),
                {"action": "to_valid", "bands": ["never"]})
    moved = Dataset.objects.get(name=dataset.name, version=3)
    assert moved.tasks.count() == dataset.tasks.count()
    assert moved.tasks.filter(split="valid").count() == dataset.tasks.filter(split="valid").count() + 5

    response = editor.post(reverse("insights:difficulty_review", args=[project.slug, profile.pk]), {"count": "4"})
    assert response.status_code == 302 and ReviewItem.objects.filter(source="base_model").count() == 4


def test_bad_profile_requests_say_what_is_wrong(project_with_roles, dataset, client_for):
    project, users = project_with_roles
    grader = grader_create(project=project, name="Harsh", spec=HARSH, user=users["owner"], dataset=dataset)
    url = reverse("insights:difficulty_start", args=[project.slug, dataset.pk])
    response = client_for(users["editor"]).post(url, {"grader": grader.pk, "base_model": "nope", "k": "2",
                                                      "max_tasks": "5"}, follow=True)
    assert "is not available here" in response.content.decode()
    response = client_for(users["editor"]).post(url, {"grader": grader.pk, "base_model": "nope", "k": "99",
                                                      "max_tasks": "5"}, follow=True)
    assert "Answers per task: from 1 to 16" in response.content.decode()
    assert not DifficultyProfile.objects.exists()
    assert client_for(users["viewer"]).get(f"/v1/datasets/{dataset.pk}/difficulty").status_code in (401, 404)


def test_run_page_shows_how_each_band_moved(project_with_roles, dataset, client_for):
    project, users = project_with_roles
    tasks = list(dataset.tasks.filter(split="train").order_by("position")[:2])
    DifficultyProfile.objects.create(
        project=project, dataset=dataset, grader_spec=HARSH, base_model="tiny", k=2, max_tasks=2, status="done",
        results={"pass_threshold": 0.5, "bands": {"never": 1, "between": 1, "always": 0},
                 "tasks": [{"id": tasks[0].pk, "band": "never", "pass_rate": 0.0},
                           {"id": tasks[1].pk, "band": "between", "pass_rate": 0.5}]})
    run = make_run(project, dataset, users["owner"], steps=0, total_steps=6, status="succeeded")
    for step in range(1, 7):
        for task, reward in ((tasks[0], 0.0 if step < 4 else 1.0), (tasks[1], 1.0)):
            RunSample.objects.create(run=run, step=step, split="train", task_key=task_key(task.data["messages"]),
                                     prompt=task.data["messages"], item={}, output_text="x", reward=reward)
    run.current_step = 6
    run.save()
    html = client_for(users["viewer"]).get(reverse("runs:detail", args=[project.slug, run.pk])).content.decode()
    assert 'id="band-progress"' in html
    row = html.split('data-band="never"')[1].split("</tr>")[0]
    assert "0 %" in row and "100 %" in row  # never-solved tasks: 0 % early (steps 1-2), 100 % late (5-6)


def test_regrade_a_finished_run_and_overlay(project_with_roles, dataset, client_for):
    project, users = project_with_roles
    run = make_run(project, dataset, users["owner"], steps=6, status="succeeded")
    exact = grader_create(project=project, name="Exact", spec=EXACT, user=users["owner"])
    editor = client_for(users["editor"])
    response = editor.post(reverse("insights:regrade", args=[project.slug, run.pk]), {"grader": exact.pk})
    assert response.status_code == 302
    regrade = Regrade.objects.get()
    assert regrade.total == run.samples.count()
    services.regrade_execute(regrade_id=regrade.pk)  # what the Celery task calls
    regrade.refresh_from_db()
    assert regrade.status == "done" and regrade.done == regrade.total
    # The factory's answers say "The answer is 2, step 1." — never exactly the reference.
    assert set(regrade.curve["regraded"]["train"]["y"]) == {0.0}
    assert regrade.curve["original"]["train"]["x"] == list(range(1, 7))
    html = editor.get(reverse("runs:detail", args=[project.slug, run.pk])).content.decode()
    assert f'data-curve="regrade-curve-{regrade.pk}"' in html and "Exact v1: mean score 0.00" in html


def test_regrade_refuses_a_running_run(project_with_roles, dataset, client_for):
    project, users = project_with_roles
    run = make_run(project, dataset, users["owner"], steps=3)
    exact = grader_create(project=project, name="Exact", spec=EXACT, user=users["owner"])
    response = client_for(users["editor"]).post(reverse("insights:regrade", args=[project.slug, run.pk]),
                                                {"grader": exact.pk}, follow=True)
    assert "once it has finished" in response.content.decode() and not Regrade.objects.exists()
