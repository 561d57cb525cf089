"""Run time from measured step times: the New run estimate and the run page's “time left”
follow one rule, give a range, and do not drift when answers get shorter."""

import pytest
from django.urls import reverse

from tests.webapp.runs.factories import make_run
from webapp.runs.models import RunMetric, RunStatus
from webapp.runs.templatetags.run_tags import duration_range
from webapp.runs.timing import Shape, comparable_step_times, evals_in, run_time_left

CPU = {"base_model": "tiny-test-model", "device": "cpu", "batch_size": 4, "group_size": 4,
       "max_completion_tokens": 64, "eval_interval": 5, "eval_samples": 10, "learning_rate": 5e-5}


def set_step_times(run, seconds, *, eval_s=4.0, tokens_per_s=None):
    for m in run.metrics.all():
        m.data["time/step"] = seconds + (eval_s if "valid/reward_mean" in m.data else 0.0)
        if "valid/reward_mean" in m.data:
            m.data["time/eval"] = eval_s
        if tokens_per_s is not None:
            m.data["throughput/tokens_per_s"] = tokens_per_s
        m.save()


@pytest.fixture
def finished(project_with_roles, dataset):
    project, users = project_with_roles
    run = make_run(project, dataset, users["owner"], steps=20, total_steps=20, status=RunStatus.SUCCEEDED,
                   config=dict(CPU), base_model="tiny-test-model")
    set_step_times(run, 10.0)
    return run


def test_nothing_measured_gives_a_typical_wide_range(db):
    times = comparable_step_times(base_model="never-run", device="cpu", shape=Shape(4, 4, 64, 10))
    assert "typical CPU worker" in times.source and times.low < times.mid < times.high
    low, high = times.total(steps=60, evals=6)
    assert 0 < low < high and high >= 2 * low


def test_same_shape_runs_give_the_estimate(finished):
    times = comparable_step_times(base_model="tiny-test-model", device="cpu", shape=Shape(4, 4, 64, 10))
    assert times.source == "earlier runs with the same step size"
    assert times.mid == pytest.approx(10.0) and times.eval_s == pytest.approx(4.0)
    low, high = times.total(steps=60, evals=12, startup=False)
    assert low <= 60 * 10 + 12 * 4 <= high and high - low <= 0.35 * (60 * 10 + 48)
    # another device or model is not comparable
    other = comparable_step_times(base_model="tiny-test-model", device="cuda", shape=Shape(4, 4, 64, 10))
    assert "typical GPU worker" in other.source


def test_shorter_answers_do_not_inflate_the_estimate(finished):
    """The old estimate divided by answer tokens/s, which fell once answers became one word
    (“about 5 min”, then “2–3 h” for the same settings). Step times do not care."""
    before = comparable_step_times(base_model="tiny-test-model", device="cpu", shape=Shape(4, 4, 64, 10))
    set_step_times(finished, 10.0, tokens_per_s=3.0)  # one-word answers: few tokens per second
    after = comparable_step_times(base_model="tiny-test-model", device="cpu", shape=Shape(4, 4, 64, 10))
    assert after.mid == pytest.approx(before.mid)


def test_other_step_sizes_are_scaled_by_the_answers_they_write(finished):
    times = comparable_step_times(base_model="tiny-test-model", device="cpu", shape=Shape(8, 4, 64, 10))
    assert "scaled" in times.source and times.mid == pytest.approx(20.0)


def test_the_run_page_agrees_with_the_estimate_then_uses_its_own_steps(finished, project_with_roles, dataset):
    project, users = project_with_roles
    queued = make_run(project, dataset, users["owner"], steps=0, total_steps=60, status=RunStatus.QUEUED,
                      config=dict(CPU), base_model="tiny-test-model")
    times = comparable_step_times(base_model="tiny-test-model", device="cpu", shape=Shape.of_config(CPU))
    assert run_time_left(run=queued) == times.total(steps=60, evals=evals_in(1, 60, 5))
    running = make_run(project, dataset, users["owner"], steps=10, total_steps=60, config=dict(CPU),
                       base_model="tiny-test-model")
    set_step_times(running, 30.0)  # this run is slower than the earlier one: its own steps count
    low, high = run_time_left(run=running)
    assert low <= 50 * 30 + 10 * 4 <= high
    assert run_time_left(run=finished) is None


def test_evals_are_counted_like_the_trainer_does():
    assert evals_in(1, 60, 6) == 10 and evals_in(1, 61, 6) == 11 and evals_in(11, 20, 5) == 2
    assert evals_in(5, 4, 5) == 0


def test_the_estimate_shows_a_range_and_where_it_comes_from(finished, client_for, project_with_roles, dataset):
    from webapp.graders.services import grader_create
    from webapp.runs.models import LocalBaseModel

    project, users = project_with_roles
    LocalBaseModel.objects.create(name="tiny-test-model", path="/models/tiny")
    grader = grader_create(project=project, name="Exact", user=users["owner"], dataset=dataset, spec={
        "type": "string_check", "name": "exact", "input": "{{sample.output_text}}",
        "reference": "{{item.reference_answer}}", "operation": "eq"})
    form = {"dataset": str(dataset.pk), "grader": grader.pk, "base_model": "tiny-test-model", "suffix": "",
            "n_epochs": "30", "batch_size": "4", "group_size": "4", "learning_rate_multiplier": "auto",
            "max_completion_tokens": "64", "eval_interval": "5", "worker_type": "cpu", "method": "lora",
            "temperature": "1.0", "beta": "0", "seed": "3"}
    body = client_for(users["editor"]).post(reverse("runs:estimate", args=[project.slug]), form).content.decode()
    assert "earlier runs with the same step size" in body and "about 10.0 s per step" in body
    assert RunMetric.objects.filter(run__config__device="cpu").exists()
    assert "–" in body.split('id="est-time">')[1].split("</dd>")[0]  # a range


@pytest.mark.parametrize(("low", "high", "text"), [
    (40, 70, "40–70 s"), (300, 540, "5–9 min"), (5400, 9000, "1.5–2.5 h"), (0, 30, "under 30 s"),
    (600, 610, "10 min"), (None, 5, "—"),
])
def test_duration_range_words(low, high, text):
    assert duration_range(low, high) == text
