"""Findings reach the run's events (once each, while it trains), the API and the run page."""

import pytest
from django.urls import reverse

from tests.webapp.runs.factories import make_run
from webapp.runs.hooks import DbHooks
from webapp.runs.models import RunEvent, RunMetric

pytestmark = pytest.mark.django_db


def broken_grader_metrics(step: int) -> dict:
    """Every answer errors in the grader: reward 0 everywhere, no group differs."""
    return {"train/reward_mean": 0.0, "train/reward_std": 0.0, "train/grader_error_frac": 1.0,
            "train/frac_zero_std_groups": 1.0, "train/grader/correct_mean": 0.0,
            "train/grader/polite_mean": 0.0, "train/completion_tokens_mean": 30.0, "train/truncated_frac": 0.0,
            "train/entropy": 1.0}


def broken_run(project, dataset, user, steps=10):
    run = make_run(project, dataset, user, steps=0, total_steps=20)
    RunMetric.objects.bulk_create([RunMetric(run=run, step=s, data=broken_grader_metrics(s))
                                   for s in range(1, steps + 1)])
    run.current_step = steps
    run.save(update_fields=["current_step"])
    return run


def test_hooks_announce_each_finding_once_while_the_run_trains(project_with_roles, dataset):
    project, users = project_with_roles
    run = make_run(project, dataset, users["owner"], steps=0, total_steps=20)
    hooks = DbHooks(run, flush_seconds=0, diagnose_seconds=0)  # flush and diagnose at every step
    for step in range(1, 9):
        hooks.on_step(step, broken_grader_metrics(step), [])
    events = RunEvent.objects.filter(run=run, data__has_key="finding")
    codes = sorted(events.values_list("data__finding", flat=True))
    assert codes == ["grader_errors", "no_signal"]  # once each, though diagnosed at every step
    error = events.get(data__finding="grader_errors")
    assert error.level == "error" and "grader fails" in error.message and error.data["step"] >= 3


def test_healthy_run_gets_no_finding_events(project_with_roles, dataset):
    project, users = project_with_roles
    run = make_run(project, dataset, users["owner"], steps=12)  # the factory's rising curve
    hooks = DbHooks(run, diagnose_seconds=0)
    hooks.diagnose()
    assert not RunEvent.objects.filter(run=run, data__has_key="finding").exists()


def test_diagnosis_api(project_with_roles, dataset, api_client_for):
    project, users = project_with_roles
    run = broken_run(project, dataset, users["owner"])
    body = api_client_for(users["viewer"], project).get(f"/v1/fine_tuning/jobs/{run.pk}/diagnosis").json()
    assert [f["code"] for f in body["data"]] == ["grader_errors", "no_signal"]
    first = body["data"][0]
    assert set(first) >= {"code", "severity", "message", "evidence", "what_to_try"}
    assert first["severity"] == "error"
    assert first["evidence"]["samples_url"] == f"/v1/fine_tuning/jobs/{run.pk}/samples?errors=1"
    assert first["evidence"]["metric"] == "train/grader_error_frac"


def test_diagnosis_api_of_a_healthy_run_is_empty(project_with_roles, dataset, api_client_for):
    project, users = project_with_roles
    run = make_run(project, dataset, users["owner"], steps=12)
    body = api_client_for(users["owner"], project).get(f"/v1/fine_tuning/jobs/{run.pk}/diagnosis").json()
    assert body["data"] == []


def test_run_page_shows_the_findings_panel(project_with_roles, dataset, client_for):
    project, users = project_with_roles
    run = broken_run(project, dataset, users["owner"])
    html = client_for(users["viewer"]).get(reverse("runs:detail", args=[project.slug, run.pk])).content.decode()
    assert 'id="finding-grader_errors"' in html and "The grader fails on many answers" in html
    assert f"/p/{project.slug}/runs/{run.pk}/samples/?errors=1" in html
    partial = client_for(users["viewer"]).get(reverse("insights:run_findings", args=[project.slug, run.pk]))
    assert partial.status_code == 200 and 'id="finding-no_signal"' in partial.content.decode()
