"""Reads detect runs whose worker stopped heart-beating (fast: no worker, rows only)."""

from datetime import timedelta

from django.utils import timezone

from tests.webapp.runs.factories import make_run
from webapp.datasets.services import dataset_create_from_rows
from webapp.projects.models import Membership
from webapp.runs.models import Run, RunStatus


def test_listing_marks_stale_runs_lost_and_leaves_fresh_and_foreign_ones(project_with_roles, api_client_for, dataset,
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

    jobs = {j["id"]: j for j in api_client_for(users["viewer"], project).get("/v1/fine_tuning/jobs").json()["data"]}
    assert jobs[stale.pk]["status"] == "failed" and jobs[stale.pk]["error"]["code"] == "worker_lost"
    assert "no heartbeat from trainer@gpu1" in jobs[stale.pk]["error"]["message"]
    assert jobs[fresh.pk]["status"] == "running"
    assert Run.objects.get(pk=foreign.pk).status == RunStatus.RUNNING  # not this caller's to touch

    # the run page and the detail endpoint detect it too
    foreign_page = api_client_for(users["outsider"]).get(f"/v1/fine_tuning/jobs/{foreign.pk}").json()
    assert foreign_page["status"] == "failed" and foreign_page["error"]["code"] == "worker_lost"
