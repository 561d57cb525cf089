"""The sample browser: filters, sorts, pagination, escaping of model output, early vs late,
and “grader was wrong” feedback counted on the run page."""

import re

import pytest
from django.urls import reverse

from tests.webapp.runs.factories import make_run, sample_row
from webapp.runs.models import RunSample, SampleFeedback


@pytest.fixture
def run(project_with_roles, dataset):
    project, users = project_with_roles
    run = make_run(project, dataset, users["owner"], steps=10, samples_per_step=2, eval_interval=5)
    return run  # 20 train samples (tasks 0, 1) + 2 valid (steps 5, 10)


def samples_url(run, **params):
    from urllib.parse import urlencode

    base = reverse("runs:samples", kwargs={"slug": run.project.slug, "pk": run.pk})
    return base + ("?" + urlencode(params) if params else "")


def shown(body) -> list[int]:
    return [int(x) for x in re.findall(r'<article class="card sample" id="sample-(\d+)"', body)]


def steps_of(ids):
    return [RunSample.objects.get(pk=i).step for i in ids]


def test_lists_samples_newest_first_with_pagination(run, project_with_roles, client_for):
    _, users = project_with_roles
    client = client_for(users["viewer"])
    body = client.get(samples_url(run)).content.decode()
    assert "22 matching samples" in body and "page 1 of 2" in body
    ids = shown(body)
    assert len(ids) == 20 and steps_of(ids)[0] == 10 and steps_of(ids) == sorted(steps_of(ids), reverse=True)
    assert "What is 1 + 1?" in body and "Reference answer" in body and "The model's answer" in body
    assert "correct" in body and "polite" in body  # each criterion's score
    page2 = client.get(samples_url(run, page=2)).content.decode()
    assert len(shown(page2)) == 2


@pytest.mark.parametrize("params,expect", [
    ({"min_step": 3, "max_step": 4}, lambda s: 3 <= s.step <= 4),
    ({"split": "valid"}, lambda s: s.split == "valid"),
    ({"min_reward": 0.6}, lambda s: s.reward >= 0.6),
    ({"max_reward": 0.5}, lambda s: s.reward <= 0.5),
    ({"criterion": "correct", "max_score": 0.5}, lambda s: s.sub_rewards["correct"] <= 0.5),
    ({"criterion": "polite", "min_score": 0.7, "split": "train"}, lambda s: s.sub_rewards["polite"] >= 0.7 and s.split == "train"),
])
def test_filters(run, project_with_roles, client_for, params, expect):
    _, users = project_with_roles
    body = client_for(users["viewer"]).get(samples_url(run, **params)).content.decode()
    ids = shown(body)
    wanted = [s.pk for s in run.samples.all() if expect(s)]
    assert ids and sorted(ids) == sorted(wanted)


def test_sort_best_worst_and_by_criterion(run, project_with_roles, client_for):
    _, users = project_with_roles
    client = client_for(users["viewer"])
    best = [RunSample.objects.get(pk=i).reward for i in shown(client.get(samples_url(run, order="best")).content.decode())]
    worst = [RunSample.objects.get(pk=i).reward for i in shown(client.get(samples_url(run, order="worst")).content.decode())]
    assert best == sorted(best, reverse=True) and worst == sorted(worst) and best[0] > worst[0]
    RunSample.objects.filter(pk=run.samples.order_by("step").first().pk).update(sub_rewards={"correct": 0.0, "polite": 5.0})
    top = shown(client.get(samples_url(run, order="best", criterion="polite")).content.decode())[0]
    assert RunSample.objects.get(pk=top).sub_rewards["polite"] == 5.0
    body = client.get(samples_url(run, criterion="nonexistent", order="nonsense", min_step="x")).content.decode()
    assert "no criterion called" in body and len(shown(body)) == 20  # bad input is ignored, said


def test_htmx_filter_returns_only_the_results(run, project_with_roles, client_for):
    _, users = project_with_roles
    response = client_for(users["viewer"]).get(samples_url(run, split="valid"),
                                               headers={"HX-Request": "true", "HX-Target": "sample-results"})
    body = response.content.decode()
    assert "<html" not in body and "2 matching samples" in body and 'id="sample-filters"' not in body


def test_model_output_is_escaped_and_long_outputs_folded(run, project_with_roles, client_for):
    _, users = project_with_roles
    evil = "<script>alert('pwned')</script><img src=x onerror=alert(1)>"
    sample_row(run, 11, output=evil, task=7).save()
    sample_row(run, 11, output="word " * 400, task=8).save()
    errors = {"python_grader_runtime_error": True, "python_grader_runtime_error_details": "ZeroDivisionError"}
    sample_row(run, 11, output="oops", task=9, errors=errors).save()
    body = client_for(users["viewer"]).get(samples_url(run, min_step=11)).content.decode()
    assert "<script>alert" not in body and "<img src=x" not in body
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in body
    assert "Show the whole answer (2000 characters)" in body and "<details>" in body
    assert "python grader runtime error" in body and "ZeroDivisionError" in body
    only_errors = shown(client_for(users["viewer"]).get(samples_url(run, errors=1)).content.decode())
    assert [RunSample.objects.get(pk=i).output_text for i in only_errors] == ["oops"]


def test_early_vs_late_shows_one_task_at_its_first_and_last_step(run, project_with_roles, client_for):
    _, users = project_with_roles
    sample = run.samples.filter(split="train").order_by("step").first()
    url = reverse("runs:sample_task", kwargs={"slug": run.project.slug, "pk": run.pk, "task_key": sample.task_key})
    body = client_for(users["viewer"]).get(url).content.decode()
    early, late = body.split('id="early"')[1].split('id="late"')
    assert "Earliest: step 1" in early and "step 1." in early  # the output text names its step
    assert "Latest: step 10" in late and "step 10." in late and "step 1." not in late
    assert set(steps_of(shown(body))) == {1, 10}
    bad = reverse("runs:sample_task", kwargs={"slug": run.project.slug, "pk": run.pk, "task_key": "nope"})
    assert client_for(users["viewer"]).get(bad).status_code == 404


def test_grader_was_wrong_feedback_is_counted_on_the_run_page(run, project_with_roles, client_for):
    project, users = project_with_roles
    sample = run.samples.first()
    url = reverse("runs:sample_feedback", kwargs={"slug": project.slug, "pk": run.pk, "sample_pk": sample.pk})
    editor = client_for(users["editor"])
    form = editor.get(url, headers={"HX-Request": "true"}).content.decode()
    assert "<html" not in form and 'name="criterion"' in form and 'value="polite"' in form
    assert "the total score" in form
    done = editor.post(url, {"criterion": "polite", "comment": "It <b>was</b> polite"}, headers={"HX-Request": "true"})
    assert "Recorded" in done.content.decode() and "It &lt;b&gt;was&lt;/b&gt; polite" in done.content.decode()
    editor.post(url, {"criterion": "", "comment": ""})
    bad = editor.post(url, {"criterion": "made-up"}, headers={"HX-Request": "true"})
    assert "no criterion called" in bad.content.decode()
    assert SampleFeedback.objects.filter(sample=sample).count() == 2
    detail = editor.get(reverse("runs:detail", args=[project.slug, run.pk])).content.decode()
    counts = detail.split('id="feedback-counts"')[1].split("</dd>")[0]
    assert "polite: 1" in counts and "total: 1" in counts
    marked = shown(editor.get(samples_url(run, feedback=1)).content.decode())
    assert marked == [sample.pk]
    # reviewers are the experts: a viewer may flag too, and take back their own flag
    viewer = client_for(users["viewer"])
    assert "Grader was wrong</a>" in viewer.get(samples_url(run)).content.decode()
    assert viewer.post(url, {"comment": "viewer disagrees"}).status_code == 302
    mine = SampleFeedback.objects.get(comment="viewer disagrees")
    theirs = SampleFeedback.objects.filter(sample=sample).exclude(pk=mine.pk).first()

    def undo(client, flag):
        return client.post(reverse("runs:sample_feedback_delete", kwargs={
            "slug": project.slug, "pk": run.pk, "sample_pk": sample.pk, "feedback_pk": flag.pk}),
            headers={"HX-Request": "true"})

    assert undo(viewer, theirs).status_code == 403  # not theirs to take back
    page = undo(viewer, mine)
    assert page.status_code == 200 and "viewer disagrees" not in page.content.decode()
    assert not SampleFeedback.objects.filter(pk=mine.pk).exists()
    assert undo(editor, theirs).status_code == 200  # editors curate the reviews
    assert SampleFeedback.objects.filter(sample=sample).count() == 1


def test_another_runs_sample_or_checkpoint_is_404_under_this_run(run, project_with_roles, dataset, client_for):
    project, users = project_with_roles
    other = make_run(project, dataset, users["owner"], steps=2)
    editor = client_for(users["editor"])
    url = reverse("runs:sample_feedback", kwargs={"slug": project.slug, "pk": run.pk,
                                                  "sample_pk": other.samples.first().pk})
    assert editor.post(url, {"comment": "x"}).status_code == 404
    ckpt = reverse("runs:checkpoint_download", kwargs={"slug": project.slug, "pk": run.pk,
                                                       "ckpt": other.checkpoints.get().pk})
    assert editor.get(ckpt).status_code == 404
    assert not SampleFeedback.objects.exists()
