"""Runs whose worker stopped heart-beating are failed by the periodic service, never by a read
(fast: no worker, rows only; the Celery beat that sends it is tested in test_lost_worker_beat)."""

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from tests.webapp.runs.factories import make_run
from webapp.datasets.services import dataset_create_from_rows
from webapp.projects.models import Membership
from webapp.runs.models import Run, RunStatus
from webapp.runs.services import runs_detect_lost
from webapp.runs.tasks import runs_detect_lost_task


def test_the_sweep_fails_stale_runs_and_reads_never_write(project_with_roles, api_client_for, client_for, dataset,
                                                          settings):
    project, users = project_with_roles
    settings.STUDIO_WORKER_LOST_SECONDS = 60
    now = timezone.now()
    stale = make_run(project, dataset, users["owner"], steps=2, worker_hostname="trainer@gpu1")
    fresh = make_run(project, dataset, users["owner"], steps=2)
    other = Membership.objects.get(user=users["outsider"]).project
    other_ds = dataset_create_from_rows(project=other, name="o", user=users["outsider"],
                                        train_rows=[{"messages": [{"role": "user", "content": "q"}]}], valid_rows=[])
    foreign = make_run(other, other_ds, users["outsider"], steps=2)
    Run.objects.filter(pk__in=[stale.pk, foreign.pk]).update(heartbeat_at=now - timedelta(minutes=5))

    # reading the list, a job and the run page changes nothing
    api = api_client_for(users["viewer"], project)
    assert {j["id"]: j["status"] for j in api.get("/v1/fine_tuning/jobs").json()["data"]}[stale.pk] == "running"
    assert api.get(f"/v1/fine_tuning/jobs/{stale.pk}").json()["status"] == "running"
    assert client_for(users["viewer"]).get(reverse("runs:detail", args=[project.slug, stale.pk])).status_code == 200
    assert Run.objects.get(pk=stale.pk).status == RunStatus.RUNNING

    assert runs_detect_lost() == 2  # every stale run, whoever's it is
    jobs = {j["id"]: j for j in api.get("/v1/fine_tuning/jobs").json()["data"]}
    assert jobs[stale.pk]["status"] == "failed" and jobs[stale.pk]["error"]["code"] == "worker_lost"
    assert "no heartbeat from trainer@gpu1" in jobs[stale.pk]["error"]["message"]
    assert "Resume continues from the checkpoint at step 2" in jobs[stale.pk]["error"]["message"]
    assert jobs[fresh.pk]["status"] == "running"
    foreign_job = api_client_for(users["outsider"]).get(f"/v1/fine_tuning/jobs/{foreign.pk}").json()
    assert foreign_job["status"] == "failed" and foreign_job["error"]["code"] == "worker_lost"
    assert runs_detect_lost() == 0  # already failed: nothing to do twice


def test_a_beat_that_arrives_in_time_wins(project_with_roles, dataset, settings):
    project, users = project_with_roles
    settings.STUDIO_WORKER_LOST_SECONDS = 60
    run = make_run(project, dataset, users["owner"], steps=1)
    Run.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=59))
    runs_detect_lost_task()  # what beat sends, run inline
    assert Run.objects.get(pk=run.pk).status == RunStatus.RUNNING
    Run.objects.filter(pk=run.pk).update(heartbeat_at=None)  # never beat at all since it started
    runs_detect_lost_task()
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and "since its start" in run.error["message"]
