"""/v1/fine_tuning/jobs: OpenAI's shapes, driven by the official SDK against a live server."""

import pytest

from tests.helpers import jsonl, rft_row
from tests.webapp.runs.factories import make_run
from webapp.datasets.services import file_create
from webapp.runs.models import Run, RunStatus

GRADER = {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}",
          "reference": "{{item.reference_answer}}", "operation": "eq"}


@pytest.mark.django_db(transaction=True)
def test_openai_sdk_creates_lists_controls_and_reads_jobs(live_server, project_with_roles, api_key_for, tmp_path):
    from openai import BadRequestError, OpenAI

    project, users = project_with_roles
    client = OpenAI(base_url=f"{live_server.url}/v1", api_key=api_key_for(users["editor"]),
                    project=project.slug, max_retries=0)
    path = tmp_path / "train.jsonl"
    path.write_bytes(jsonl([rft_row(f"{i}+{i}?", str(2 * i)) for i in range(12)]))
    with path.open("rb") as fh:
        training = client.files.create(file=fh, purpose="fine-tune")

    job = client.fine_tuning.jobs.create(
        model="smollm2-135m-instruct", training_file=training.id, suffix="sums", seed=7,
        metadata={"team": "tax"},
        method={"type": "reinforcement", "reinforcement": {
            "grader": GRADER, "hyperparameters": {"n_epochs": 2, "batch_size": 4, "eval_interval": 1}}},
    )
    assert job.id.startswith("ftjob-") and job.object == "fine_tuning.job" and job.status == "queued"
    assert job.model == "smollm2-135m-instruct" and job.seed == 7 and job.training_file == training.id
    assert job.method.type == "reinforcement" and job.method.reinforcement.grader.name == "exact"
    assert job.hyperparameters.n_epochs == 2 and job.hyperparameters.batch_size == 4
    assert job.metadata == {"team": "tax"} and job.user_provided_suffix == "sums"
    assert Run.objects.get(pk=job.id).total_steps == 6  # 2 epochs x 12 tasks / 4 per step

    assert [j.id for j in client.fine_tuning.jobs.list()] == [job.id]
    assert client.fine_tuning.jobs.retrieve(job.id).status == "queued"
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id)]
    assert "Run queued; waiting for a training worker." in messages
    assert list(client.fine_tuning.jobs.checkpoints.list(job.id)) == []

    assert client.fine_tuning.jobs.pause(job.id).status == "paused"
    assert client.fine_tuning.jobs.resume(job.id).status == "queued"
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at
    with pytest.raises(BadRequestError) as info:
        client.fine_tuning.jobs.cancel(job.id)
    assert "Cannot cancel a run that is cancelled" in info.value.message

    with pytest.raises(BadRequestError) as info:
        client.fine_tuning.jobs.create(model="gpt-4o", training_file=training.id,
                                       method={"type": "reinforcement", "reinforcement": {"grader": GRADER}})
    assert info.value.body["param"] == "model" and "not available here" in info.value.message
    with pytest.raises(BadRequestError) as info:
        client.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=training.id,
                                       method={"type": "reinforcement", "reinforcement": {
                                           "grader": {**GRADER, "operation": "equals"}}})
    assert info.value.body["param"] == "method.reinforcement.grader" and "operation" in info.value.message
    with pytest.raises(BadRequestError) as info:
        client.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=training.id,
                                       method={"type": "reinforcement", "reinforcement": {
                                           "grader": GRADER, "hyperparameters": {"n_epochs": 99}}})
    assert "n_epochs must be between 1 and 50" in info.value.message


def create_job(client, file_id, **extra):
    body = {"model": "smollm2-135m-instruct", "training_file": file_id,
            "method": {"type": "reinforcement", "reinforcement": {"grader": GRADER}}, **extra}
    return client.post("/v1/fine_tuning/jobs", body, content_type="application/json")


def test_saved_grader_id_validation_file_and_locking(project_with_roles, api_client_for):
    from webapp.graders.services import grader_create

    project, users = project_with_roles
    client = api_client_for(users["editor"], project)
    train = file_create(project=project, user=users["editor"], filename="t.jsonl",
                        data=jsonl([rft_row(f"q{i}", "a") for i in range(8)]))
    valid = file_create(project=project, user=users["editor"], filename="v.jsonl", data=jsonl([rft_row("v", "a")]))
    grader = grader_create(project=project, name="Saved", spec=GRADER, user=users["editor"])
    response = create_job(client, train.id, validation_file=valid.id,
                          method={"type": "reinforcement", "reinforcement": {"grader": grader.pk}})
    assert response.status_code == 200, response.content
    run = Run.objects.get(pk=response.json()["id"])
    assert run.grader == grader and run.valid_dataset == valid.dataset and response.json()["validation_file"] == valid.id
    assert run.events.filter(message="Validated 8 training and 1 validation tasks.").exists()
    grader.refresh_from_db()
    train.dataset.refresh_from_db()
    valid.dataset.refresh_from_db()
    assert grader.is_locked and train.dataset.is_locked and valid.dataset.is_locked

    assert create_job(client, "file-missing").json()["error"]["code"] == "file_not_found"
    assert create_job(client, train.id, method={"type": "supervised"}).json()["error"]["param"] == "method.type"
    error = create_job(client, train.id, method={"type": "reinforcement", "reinforcement": {"grader": "grader-nope"}})
    assert error.json()["error"]["param"] == "method.reinforcement.grader"


def test_list_pagination_and_other_projects_jobs(project_with_roles, api_client_for, dataset):
    project, users = project_with_roles
    runs = [make_run(project, dataset, users["owner"], steps=1) for _ in range(3)]
    client = api_client_for(users["viewer"], project)
    page = client.get("/v1/fine_tuning/jobs", {"limit": 2}).json()
    assert [j["id"] for j in page["data"]] == [r.pk for r in runs[::-1][:2]] and page["has_more"]
    page2 = client.get("/v1/fine_tuning/jobs", {"limit": 2, "after": page["data"][-1]["id"]}).json()
    assert [j["id"] for j in page2["data"]] == [runs[0].pk] and not page2["has_more"]
    outsider = api_client_for(users["outsider"])
    assert outsider.get("/v1/fine_tuning/jobs").json()["data"] == []
    assert outsider.get(f"/v1/fine_tuning/jobs/{runs[0].pk}").status_code == 404
    assert outsider.post(f"/v1/fine_tuning/jobs/{runs[0].pk}/cancel").status_code == 404


def test_events_checkpoints_metrics_samples(project_with_roles, api_client_for, dataset):
    project, users = project_with_roles
    run = make_run(project, dataset, users["owner"], steps=6, status=RunStatus.SUCCEEDED)
    client = api_client_for(users["viewer"], project)
    events = client.get(f"/v1/fine_tuning/jobs/{run.pk}/events", {"limit": 3}).json()
    assert events["has_more"] and all(e["object"] == "fine_tuning.job.event" for e in events["data"])
    ids = [e["id"] for e in events["data"]]
    older = client.get(f"/v1/fine_tuning/jobs/{run.pk}/events", {"after": ids[-1]}).json()["data"]
    assert older and int(older[0]["id"].removeprefix("ftevent-")) < int(ids[-1].removeprefix("ftevent-"))
    checkpoints = client.get(f"/v1/fine_tuning/jobs/{run.pk}/checkpoints").json()["data"]
    assert checkpoints[0]["object"] == "fine_tuning.job.checkpoint" and checkpoints[0]["step_number"] >= 1
    assert checkpoints[0]["fine_tuning_job_id"] == run.pk
    metrics = client.get(f"/v1/fine_tuning/jobs/{run.pk}/metrics", {"after_step": 4}).json()
    assert [m["step"] for m in metrics["data"]] == [5, 6] and metrics["status"] == "succeeded"
    assert "train/reward_mean" in metrics["data"][0]["metrics"]
    best = client.get(f"/v1/fine_tuning/jobs/{run.pk}/samples", {"order": "best", "limit": 5}).json()["data"]
    assert [s["reward"] for s in best] == sorted((s["reward"] for s in best), reverse=True)
    late = client.get(f"/v1/fine_tuning/jobs/{run.pk}/samples", {"min_step": 5}).json()["data"]
    assert late and all(s["step"] >= 5 for s in late)
    assert client.get(f"/v1/fine_tuning/jobs/{run.pk}/samples", {"order": "random"}).status_code == 400
