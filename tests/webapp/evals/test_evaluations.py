"""Evaluations through the services with real forward passes of a tiny random model."""

import pytest
from django.core.exceptions import ValidationError

from tests.webapp.evals.conftest import RUBRIC
from webapp.evals.models import EvalStatus
from webapp.evals.services import evaluation_cancel, evaluation_create, evaluation_execute
from webapp.runs.models import Run, RunCheckpoint, RunStatus

pytestmark = pytest.mark.django_db(transaction=True)


def test_base_model_evaluation_stores_every_task(tiny_setup):
    project, users, dataset = tiny_setup
    ev = evaluation_create(project=project, user=users["editor"], model_name="tiny", dataset=dataset,
                           split="valid", grader_spec=RUBRIC, sampling={"max_completion_tokens": 5})
    assert ev.status == EvalStatus.QUEUED and ev.total_items == 4
    evaluation_execute(evaluation_id=ev.pk)
    ev.refresh_from_db()
    assert ev.status == EvalStatus.COMPLETED, ev.error
    items = list(ev.items.order_by("index"))
    assert [i.index for i in items] == [0, 1, 2, 3] and ev.done_items == 4
    assert [i.prompt[-1]["content"] for i in items] == ["say m", "say n", "say o", "say p"]
    for item in items:
        assert set(item.sub_rewards) == {"short", "has_a"}
        # the reward is the grader's formula over its criteria, graded in the sandbox
        expected = 0.5 * (len(item.output_text) < 6) + 0.5 * ("a" in item.output_text)
        assert item.reward == pytest.approx(expected)
        assert 1 <= item.completion_tokens <= 5 and item.samples[0]["finish_reason"] in ("stop", "length")
    assert ev.reward_mean == pytest.approx(sum(i.reward for i in items) / 4)
    assert set(ev.criteria_means) == {"short", "has_a"} and ev.completion_tokens > 0


def test_greedy_is_deterministic_and_k_samples_give_pass_at_k(tiny_setup):
    project, users, dataset = tiny_setup
    evs = []
    for sampling in ({"max_completion_tokens": 4}, {"max_completion_tokens": 4},
                     {"max_completion_tokens": 4, "temperature": 1.0, "n_samples": 3}):
        ev = evaluation_create(project=project, user=users["editor"], model_name="tiny", dataset=dataset,
                               split="valid", grader_spec=RUBRIC, sampling=sampling)
        evaluation_execute(evaluation_id=ev.pk)
        ev.refresh_from_db()
        evs.append(ev)
    a, b, k = evs
    assert [i.output_text for i in a.items.all()] == [i.output_text for i in b.items.all()]
    for item in k.items.all():
        assert len(item.samples) == 3
        assert item.reward == pytest.approx(sum(s["reward"] for s in item.samples) / 3)
        assert item.passed == any(s["reward"] >= 1 for s in item.samples)


def test_checkpoint_evaluation_uses_the_adapter(tiny_setup, tiny_adapter_path):
    project, users, dataset = tiny_setup
    run = Run.objects.create(project=project, dataset=dataset, grader_spec=RUBRIC, base_model="tiny",
                             status=RunStatus.SUCCEEDED, config={"eval_temperature": 0.0})
    RunCheckpoint.objects.create(run=run, step=4, path=str(tiny_adapter_path), valid_reward=0.5)
    results = {}
    for name in ("tiny", f"ft:tiny:{run.pk}", f"ft:tiny:{run.pk}:ckpt-step-4"):
        ev = evaluation_create(project=project, user=users["editor"], model_name=name, dataset=dataset,
                               split="train", grader_spec=RUBRIC, sampling={"max_completion_tokens": 8})
        evaluation_execute(evaluation_id=ev.pk)
        ev.refresh_from_db()
        assert ev.status == EvalStatus.COMPLETED, ev.error
        results[name] = [i.output_text for i in ev.items.all()]
    assert results[f"ft:tiny:{run.pk}"] == results[f"ft:tiny:{run.pk}:ckpt-step-4"]
    assert results["tiny"] != results[f"ft:tiny:{run.pk}"]  # the adapter changed the answers


def test_bad_inputs_are_named(tiny_setup):
    project, users, dataset = tiny_setup
    common = {"project": project, "user": users["editor"], "dataset": dataset, "grader_spec": RUBRIC}
    with pytest.raises(ValidationError, match="No model 'nope'"):
        evaluation_create(model_name="nope", **common)
    with pytest.raises(ValidationError, match="temperature above 0"):
        evaluation_create(model_name="tiny", sampling={"n_samples": 4}, **common)
    with pytest.raises(ValidationError, match="Unknown sampling setting 'beam'"):
        evaluation_create(model_name="tiny", sampling={"beam": 4}, **common)
    with pytest.raises(ValidationError, match="max_completion_tokens must be a whole number"):
        evaluation_create(model_name="tiny", sampling={"max_completion_tokens": "x"}, **common)


def test_cancel_before_start_and_failures_are_readable(tiny_setup, tiny_model_path):
    project, users, dataset = tiny_setup
    ev = evaluation_create(project=project, user=users["editor"], model_name="tiny", dataset=dataset,
                           grader_spec=RUBRIC)
    evaluation_cancel(evaluation=ev)
    evaluation_execute(evaluation_id=ev.pk)  # the worker takes it later: nothing to do
    ev.refresh_from_db()
    assert ev.status == EvalStatus.CANCELED and not ev.items.exists()
    ev = evaluation_create(project=project, user=users["editor"], model_name="tiny", dataset=dataset,
                           grader_spec=RUBRIC)
    type(ev).objects.filter(pk=ev.pk).update(base_model=str(tiny_model_path) + "-gone")
    evaluation_execute(evaluation_id=ev.pk)
    ev.refresh_from_db()
    assert ev.status == EvalStatus.FAILED and "does not exist" in ev.error
