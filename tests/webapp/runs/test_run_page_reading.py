"""What the run page and the runs list lead with: validation and the training trend (never
one noisy step), bands that stay in [0, 1], events that show validation results, charts only
for what was measured, and a readable title for a run without a name."""

import pytest
from django.urls import reverse

from tests.webapp.runs.factories import make_run
from webapp.runs.charts import reward_band, reward_summary
from webapp.runs.models import RunEvent, RunMetric, RunStatus
from webapp.runs.views import run_title


@pytest.fixture
def world(project_with_roles, dataset):
    project, users = project_with_roles
    return project, users, dataset


def url(name, run):
    return reverse(f"runs:{name}", kwargs={"slug": run.project.slug, "pk": run.pk})


def test_the_page_leads_with_validation_and_the_trend(world, client_for):
    project, users, dataset = world
    run = make_run(project, dataset, users["owner"], steps=20, total_steps=40, suffix="v1")
    # the last step is a bad one: the headline must not be it
    last = run.metrics.get(step=20)
    last.data["train/reward_mean"] = 0.01
    last.save()
    body = client_for(users["viewer"]).get(url("detail", run)).content.decode()
    headline = body.split('id="run-headline"')[1].split("</section>")[0]
    valid = [m.data["valid/reward_mean"] for m in run.metrics.order_by("step") if "valid/reward_mean" in m.data]
    assert f"<strong>{valid[-1]:.3f}</strong>" in headline and "at step 20" in headline
    assert f"first check {valid[0]:.3f}" in headline
    assert "→" in headline and "0.010" not in headline  # a trend over several steps, not the last one
    assert "Latest train reward" not in body


def test_summary_from_curves():
    curve = {"train": {"x": list(range(1, 21)), "y": [0.1] * 10 + [0.5] * 10},
             "valid": {"x": [5, 10, 15, 20], "y": [0.2, 0.6, 0.5, 0.55]}}
    s = reward_summary(curve)
    assert s["valid"] == 0.55 and s["valid_first"] == 0.2 and (s["valid_best"], s["valid_best_step"]) == (0.6, 10)
    assert s["trend"]["early"] == pytest.approx(0.1) and s["trend"]["late"] == pytest.approx(0.5)
    empty = reward_summary({"train": {"x": [1], "y": [0.3]}, "valid": {"x": [], "y": []}})
    assert empty["valid"] is None and empty["trend"] is None


def test_bands_stay_between_0_and_1_and_validation_shows_the_means_range():
    assert reward_band({"train/reward_mean": 0.1, "train/reward_std": 0.3}, "train/reward_mean",
                       "train/reward_std") == (0.0, pytest.approx(0.4))
    lo, hi = reward_band({"valid/reward_mean": 0.5, "valid/reward_std": 0.5, "valid/n_samples": 100},
                         "valid/reward_mean", "valid/reward_std")
    assert lo == pytest.approx(0.5 - 0.098) and hi == pytest.approx(0.5 + 0.098)  # not 0..1 from task spread
    assert reward_band({"valid/reward_mean": 0.5, "valid/reward_std": 0.5}, "valid/reward_mean",
                       "valid/reward_std") is None  # without the task count there is no honest band


def test_events_show_validation_results_not_pruned_checkpoints(world, client_for):
    project, users, dataset = world
    run = make_run(project, dataset, users["owner"], steps=10, total_steps=10, status=RunStatus.SUCCEEDED)
    for step in (2, 4, 6):
        RunEvent.objects.create(run=run, message=f"Removed checkpoint step-{step:06d} (not among the 3 best)")
    body = client_for(users["viewer"]).get(url("detail", run)).content.decode()
    events = body.split('id="events"')[1].split("</ol>")[0]
    assert "Removed checkpoint" not in events and "Step 10: validation score" in events
    assert "3 older\n      checkpoints removed" in body
    assert RunEvent.objects.filter(run=run, message__startswith="Removed").count() == 3  # the API keeps them


def test_no_kl_chart_without_a_kl_penalty(world, client_for):
    project, users, dataset = world
    run = make_run(project, dataset, users["owner"], steps=3, config={"beta": 0, "eval_interval": 5})
    RunMetric.objects.filter(run=run).update(data={"train/reward_mean": 0.5})
    body = client_for(users["viewer"]).get(url("detail", run)).content.decode()
    assert 'id="chart-kl"' not in body and "Drift from the base model" not in body
    kl = make_run(project, dataset, users["owner"], steps=3, config={"beta": 0.04, "eval_interval": 5})
    assert 'id="chart-kl"' in client_for(users["viewer"]).get(url("detail", kl)).content.decode()


def test_a_run_without_a_name_is_titled_by_its_grader_and_date(world, client_for):
    project, users, dataset = world
    run = make_run(project, dataset, users["owner"], steps=1)
    assert run_title(run).startswith("rubric, ") and run.pk not in run_title(run)
    body = client_for(users["viewer"]).get(reverse("runs:list", args=[project.slug])).content.decode()
    assert run_title(run) in body


def test_runs_list_shows_validation_and_trend(world, client_for):
    project, users, dataset = world
    make_run(project, dataset, users["owner"], steps=10, total_steps=10, status=RunStatus.SUCCEEDED, suffix="done")
    body = client_for(users["viewer"]).get(reverse("runs:list", args=[project.slug])).content.decode()
    assert "<th title=\"Latest progress check on the held-out tasks (0 to 1)\">Validation</th>" in body
    assert 'class="valid-score"><strong>' in body and " → " in body and "Train reward" not in body


def test_events_name_the_model_not_its_folder(world, client_for):
    project, users, dataset = world
    run = make_run(project, dataset, users["owner"], steps=2, base_model="tiny",
                   config={"base_model": "/srv/models/tiny-folder", "eval_interval": 5})
    RunEvent.objects.create(run=run, message="Loading base model /srv/models/tiny-folder")
    body = client_for(users["viewer"]).get(url("detail", run)).content.decode()
    assert "Loading base model tiny" in body and "/srv/models" not in body
