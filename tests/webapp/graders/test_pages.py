"""Grader pages beyond the builder: try-it, the check against references, JSON import/view."""

import json

import pytest
from django.urls import reverse

from webapp.graders import services
from webapp.graders.models import CheckStatus, Grader, GraderCheck
from webapp.graders.services import grader_create

pytestmark = pytest.mark.django_db

RUBRIC = {"type": "multi", "name": "Sums", "calculate_output": "(3 * number_is_correct + 1 * short_answer) / 4",
          "graders": {
              "number_is_correct": {"type": "numeric_match", "name": "Number is correct",
                                    "reference": "{{item.reference_answer}}"},
              "short_answer": {"type": "length_bounds", "name": "Short answer", "unit": "characters", "max": 1},
          }}


@pytest.fixture
def grader(dataset):
    return grader_create(project=dataset.project, name="Sums", spec=RUBRIC, user=None, dataset=dataset)


@pytest.fixture
def viewer(project_with_roles, client_for):
    return client_for(project_with_roles[1]["viewer"])


@pytest.fixture
def editor(project_with_roles, client_for):
    return client_for(project_with_roles[1]["editor"])


def test_try_it_shows_total_and_each_criterion(grader, dataset, viewer):
    url = reverse("graders:try", args=[dataset.project.slug, grader.pk])
    task = dataset.tasks.get(data__id="t3")  # "What is 3 + 3?" -> "6"
    body = viewer.post(url, {"sample": "It is 6", "task": task.pk}, headers={"HX-Request": "true"}).content.decode()
    assert 'id="try-total">0.750<' in body  # right number (3/4), too long (0/4)
    assert 'data-criterion="number_is_correct"' in body and "Number is correct" in body
    rows = body.split('id="try-criteria"')[1]
    assert rows.count('class="score">1.000<') == 1 and rows.count('class="score">0.000<') == 1

    body = viewer.post(url, {"sample": "7", "item_json": '{"reference_answer": "7"}'},
                       headers={"HX-Request": "true"}).content.decode()
    assert 'id="try-total">1.000<' in body
    body = viewer.post(url, {"sample": "7", "item_json": "[1]"}, headers={"HX-Request": "true"}).content.decode()
    assert "must be a JSON object" in body


def test_try_it_starts_on_the_first_task_numbered_as_on_the_dataset_page(grader, dataset, viewer):
    body = viewer.get(reverse("graders:detail", args=[dataset.project.slug, grader.pk])).content.decode()
    first = dataset.tasks.order_by("position").first()
    assert f'<option value="{first.pk}" selected>Task 1 (' in body and "no task" not in body


def test_try_it_says_why_each_criterion_failed(grader, dataset, viewer):
    url = reverse("graders:try", args=[dataset.project.slug, grader.pk])
    task = dataset.tasks.get(data__id="t3")  # "What is 3 + 3?" -> "6"
    body = viewer.post(url, {"sample": "It is 7", "task": task.pk}, headers={"HX-Request": "true"}).content.decode()
    rows = body.split('id="try-criteria"')[1]
    assert "It says 7; the correct number is 6." in rows
    assert "It has 7 characters; at most 1 allowed." in rows
    good = viewer.post(url, {"sample": "6", "task": task.pk}, headers={"HX-Request": "true"}).content.decode()
    assert good.count("full marks") == 2


def test_try_it_reports_a_criterion_error_escaped(dataset, viewer):
    spec = {"type": "multi", "calculate_output": "a", "graders": {
        "a": {"type": "string_check", "name": "<b>A</b>", "input": "{{sample.output_text}}",
              "reference": "{{item.missing}}", "operation": "eq"}}}
    grader = grader_create(project=dataset.project, name="G", spec=spec, user=None, dataset=dataset)
    body = viewer.post(reverse("graders:try", args=[dataset.project.slug, grader.pk]),
                       {"sample": "<script>x</script>"}, headers={"HX-Request": "true"}).content.decode()
    assert "item.missing" in body and "invalid_variable_error" not in body  # the message, not the code name
    assert "<script>x" not in body and "<b>A</b>" not in body


def test_reference_check_lists_failing_tasks_and_criteria(grader, dataset, editor, viewer):
    slug = dataset.project.slug
    body = editor.post(reverse("graders:check", args=[slug, grader.pk]), headers={"HX-Request": "true"}).content.decode()
    check = GraderCheck.objects.get()
    assert check.status == CheckStatus.DONE and check.total == 10
    # references "0".."8" are one character (full marks); "10".."18" are too long
    assert check.full_marks == 5 and len(check.rewards) == 10 and sorted(set(check.rewards)) == [0.75, 1.0]
    assert 'id="check-summary"><strong>5 of 10</strong>' in body
    failing = body.split('id="check-failing"')[1]
    assert failing.count("<tr>") == 1 + 5 and "Short answer</strong>: 0.000" in failing
    assert "Number is correct</strong>" not in failing
    assert '<script id="check-rewards" type="application/json">[1.0, 1.0' in body  # json_script, for plotly
    page = viewer.get(reverse("graders:detail", args=[slug, grader.pk])).content.decode()
    assert "vendor/plotly-cartesian.min.js" in page and 'id="check-histogram"' in page


def test_slow_graders_are_checked_by_a_worker(dataset, editor, viewer, monkeypatch, django_capture_on_commit_callbacks):
    from webapp.graders import tasks

    spec = {"type": "python", "name": "py", "source": "def grade(sample, item):\n    return 1.0\n"}
    grader = grader_create(project=dataset.project, name="Py", spec=spec, user=None, dataset=dataset)
    queued = []
    monkeypatch.setattr(tasks.grader_check_task, "delay", queued.append)
    with django_capture_on_commit_callbacks(execute=True):
        body = editor.post(reverse("graders:check", args=[dataset.project.slug, grader.pk]),
                           headers={"HX-Request": "true"}).content.decode()
    check = GraderCheck.objects.get()
    assert queued == [check.pk] and check.status == CheckStatus.QUEUED
    assert "Waiting for a worker" in body and 'hx-trigger="every 1s"' in body  # the page polls
    tasks.grader_check_task(check.pk)  # what the worker runs (the python grader in its sandbox)
    status = viewer.get(reverse("graders:check_status", args=[dataset.project.slug, grader.pk, check.pk]),
                        headers={"HX-Request": "true"}).content.decode()
    assert "<strong>10 of 10</strong>" in status and "every 1s" not in status


def test_which_graders_need_a_worker():
    assert not services.grader_needs_worker(RUBRIC)
    assert services.grader_needs_worker({"type": "multi", "graders": {"x": {"type": "text_similarity",
                                                                          "evaluation_metric": "cosine"}}})


def test_import_validates_and_names_the_field(project_with_roles, editor):
    project = project_with_roles[0]
    url = reverse("graders:import", args=[project.slug])
    bad = {"type": "multi", "calculate_output": "acc", "graders": {"acc": {
        "type": "string_check", "input": "{{sample.output_text}}", "reference": "x", "operation": "equals"}}}
    body = editor.post(url, {"grader_json": json.dumps(bad)}).content.decode()
    assert "at graders.acc.operation: must be one of eq, ne, like, ilike" in body
    assert "not valid JSON" in editor.post(url, {"grader_json": "{nope"}).content.decode()
    assert not Grader.objects.exists()

    good = {**bad, "name": "Exact"}
    good["graders"]["acc"]["operation"] = "eq"
    response = editor.post(url, {"grader_json": json.dumps(good)})
    grader = Grader.objects.get()
    assert response.status_code == 302 and grader.name == "Exact" and grader.spec == good and grader.rubric is None
    page = editor.get(response.url).content.decode()
    assert 'data-copy-target="grader-json"' in page and "&quot;operation&quot;: &quot;eq&quot;" in page
    assert "Edit in the rubric builder" in page  # a flat multi opens as rows


def test_edit_json_of_locked_grader_makes_new_version(grader, dataset, editor):
    services.grader_lock(grader=grader, reason="run ftjob-1")
    url = reverse("graders:edit_json", args=[dataset.project.slug, grader.pk])
    assert "saving creates a new version" in editor.get(url).content.decode()
    spec = {**RUBRIC, "calculate_output": "number_is_correct"}
    response = editor.post(url, {"name": "Sums", "grader_json": json.dumps(spec), "dataset": dataset.pk})
    new = Grader.objects.exclude(pk=grader.pk).get()
    assert new.version == 2 and new.spec["calculate_output"] == "number_is_correct"
    assert response.url.endswith(f"/graders/{new.pk}/")
    grader.refresh_from_db()
    assert grader.spec == RUBRIC
    body = editor.post(reverse("graders:delete", args=[dataset.project.slug, grader.pk]), follow=True).content.decode()
    assert "cannot be deleted" in body and Grader.objects.filter(pk=grader.pk).exists()


def test_grader_page_shows_each_criterion_in_words_and_weights_only_when_used(dataset, viewer):
    state = {"combine": "formula", "formula": "min(number_is_correct, short_answer)", "criteria": [
        {"key": "number_is_correct", "name": "Number is correct", "type": "numeric_match", "weight": 1, "gate": False},
        {"key": "short_answer", "name": "Short answer", "type": "length_bounds", "weight": 1, "gate": False}]}
    spec = {**RUBRIC, "calculate_output": "min(number_is_correct, short_answer)"}
    formula = grader_create(project=dataset.project, name="F", spec=spec, rubric=state, user=None, dataset=dataset)
    body = viewer.get(reverse("graders:detail", args=[dataset.project.slug, formula.pk])).content.decode()
    summary = body.split('id="criteria-summary"')[1].split("</section>")[0]
    assert "<th>Weight</th>" not in summary and "Weights are not used." in summary
    assert "The last number in the answer equals the task&#x27;s “reference_answer”." in summary
    assert "The answer is at most 1 character long." in summary
    assert "numeric_match" not in summary and "length_bounds" not in summary  # plain words, no code names
    weighted = grader_create(project=dataset.project, name="W", spec=RUBRIC, user=None, dataset=dataset,
                             rubric={**state, "combine": "weighted_mean", "formula": ""})
    body = viewer.get(reverse("graders:detail", args=[dataset.project.slug, weighted.pk])).content.decode()
    assert "<th>Weight</th>" in body and "the weighted mean of the criteria" in body


def test_builder_offers_checks_in_plain_words(dataset, editor):
    body = editor.get(reverse("graders:new", args=[dataset.project.slug])).content.decode()
    options = body.split('-type" hx-get=')[1].split("</select>")[0]
    assert "Text matches" in options and "(string_check)" not in options and "string_check<" not in options
    assert "not used: your formula sets the total" in body
