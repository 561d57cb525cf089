"""The run page: progress, ETA, control buttons per status, live partial, metrics.json
(incremental, downsampled, status), checkpoint download."""

import io
import json
import zipfile

import pytest
from django.urls import reverse

from tests.webapp.runs.factories import add_steps, make_run
from webapp.runs.charts import downsample, run_series
from webapp.runs.models import Run, RunEvent, RunMetric, RunStatus


@pytest.fixture
def world(project_with_roles, dataset):
    project, users = project_with_roles
    return project, users, dataset


def url(name, run, **kw):
    return reverse(f"runs:{name}", kwargs={"slug": run.project.slug, "pk": run.pk, **kw})


def test_running_run_page_shows_progress_eta_charts_and_buttons(world, client_for):
    project, users, dataset = world
    run = make_run(project, dataset, users["owner"], steps=10, total_steps=40)
    body = client_for(users["editor"]).get(url("detail", run)).content.decode()
    assert 'class="status running"' in body
    assert "step 10 of 40 (25%)" in body and 'value="25"' in body
    assert 'id="run-eta"' in body and "left" in body
    assert 'hx-trigger="every 3s"' in body  # the live part polls while active
    assert reverse("runs:pause", kwargs={"slug": project.slug, "pk": run.pk}) in body
    assert reverse("runs:cancel", kwargs={"slug": project.slug, "pk": run.pk}) in body
    assert reverse("runs:resume", kwargs={"slug": project.slug, "pk": run.pk}) not in body
    assert 'id="run-chart-data" type="application/json"' in body
    assert "vendor/plotly-cartesian.min.js" in body and "js/runs.js" in body
    for chart in ("chart-reward", "chart-criteria", "chart-kl", "chart-entropy", "chart-length", "chart-time"):
        assert f'id="{chart}"' in body
    assert "Validated" in body  # the events log
    assert "Download" in body  # the checkpoint table


def test_viewer_sees_no_buttons(world, client_for):
    project, users, dataset = world
    run = make_run(project, dataset, users["owner"], steps=3)
    body = client_for(users["viewer"]).get(url("detail", run)).content.decode()
    assert 'id="run-actions"' not in body


@pytest.mark.parametrize("status,shown,hidden", [
    (RunStatus.QUEUED, ["pause", "cancel"], ["resume"]),
    (RunStatus.PAUSED, ["resume", "cancel"], ["pause"]),
    (RunStatus.SUCCEEDED, [], ["pause", "cancel", "resume"]),
    (RunStatus.CANCELLED, [], ["pause", "cancel", "resume"]),
])
def test_buttons_follow_status(world, client_for, status, shown, hidden):
    project, users, dataset = world
    run = make_run(project, dataset, users["owner"], steps=2, status=status)
    body = client_for(users["editor"]).get(url("detail", run)).content.decode()
    for action in shown:
        assert url(action, run) in body
    for action in hidden:
        assert url(action, run) not in body
    assert ('hx-trigger="every 3s"' in body) == (status == RunStatus.QUEUED)


def test_failed_run_shows_error_and_worker_lost_is_resumable(world, client_for):
    project, users, dataset = world
    failed = make_run(project, dataset, users["owner"], steps=2, status=RunStatus.FAILED,
                      error={"code": "training_error", "message": "CUDA out of memory <b>"})
    body = client_for(users["editor"]).get(url("detail", failed)).content.decode()
    assert "CUDA out of memory &lt;b&gt;" in body and "resumable" not in body
    assert url("resume", failed) not in body
    lost = make_run(project, dataset, users["owner"], steps=2, status=RunStatus.FAILED,
                    error={"code": "worker_lost", "message": "worker lost: no heartbeat."})
    body = client_for(users["editor"]).get(url("detail", lost)).content.decode()
    assert "Worker lost." in body and "resumable" in body and url("resume", lost) in body


def test_controls_call_the_services_and_show_their_refusals(world, client_for):
    project, users, dataset = world
    run = make_run(project, dataset, users["owner"], steps=2, status=RunStatus.QUEUED)
    client = client_for(users["editor"])
    response = client.post(url("pause", run), follow=True)
    assert Run.objects.get(pk=run.pk).status == RunStatus.PAUSED
    body = response.content.decode()  # the status says it; no message that would go stale
    assert 'id="run-status">Paused<' in body and 'class="messages"' not in body
    response = client.post(url("pause", run), follow=True)  # a paused run cannot pause
    assert "Cannot pause a run that is paused." in response.content.decode()
    client.post(url("cancel", run))
    assert Run.objects.get(pk=run.pk).status == RunStatus.CANCELLED
    running = make_run(project, dataset, users["owner"], steps=2)
    body = client.post(url("cancel", running), follow=True).content.decode()
    assert Run.objects.get(pk=running.pk).requested_action == "cancel"
    assert "Cancel requested: the run stops after its current step." in " ".join(body.split())
    Run.objects.filter(pk=running.pk).update(status=RunStatus.CANCELLED)  # the worker stopped
    body = client.get(url("detail", running)).content.decode()
    assert "id=\"run-requested\"" not in body and 'id="run-status">Cancelled<' in body


def test_live_partial_stops_polling_when_finished(world, client_for):
    project, users, dataset = world
    run = make_run(project, dataset, users["owner"], steps=2)
    client = client_for(users["viewer"])
    body = client.get(url("live", run), headers={"HX-Request": "true"}).content.decode()
    assert 'hx-trigger="every 3s"' in body and 'hx-swap-oob="true"' in body
    RunEvent.objects.create(run=run, level="warning", message="Grader slow: 3 s per sample")
    Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
    body = client.get(url("live", run), headers={"HX-Request": "true"}).content.decode()
    assert "every 3s" not in body and "Succeeded" in body and "Grader slow" in body


def test_metrics_json_incremental_and_status(world, client_for):
    project, users, dataset = world
    run = make_run(project, dataset, users["owner"], steps=10, total_steps=20, eval_interval=5)
    client = client_for(users["viewer"])
    data = client.get(url("metrics", run)).json()
    assert data["status"] == "running" and data["active"] is True and data["last_step"] == 10
    assert data["series"]["train/reward_mean"]["x"] == list(range(1, 11))
    assert data["series"]["valid/reward_mean"]["x"] == [5, 10]  # eval steps only, no nulls
    lo, hi, mean = (data["series"][k]["y"][0] for k in ("train/reward_lo", "train/reward_hi", "train/reward_mean"))
    assert lo == pytest.approx(mean - 0.1) and hi == pytest.approx(mean + 0.1)
    assert "train/grader/correct_mean" in data["series"] and "time/sampling" in data["series"]

    assert client.get(url("metrics", run) + "?after=10").json()["series"] == {}
    add_steps(run, 11, 12)
    RunMetric.objects.create(run=run, step=13, data={"train/reward_mean": None, "train/kl": 0.5})
    new = client.get(url("metrics", run) + "?after=10").json()
    assert new["series"]["train/reward_mean"]["x"] == [11, 12]  # the null at 13 is left out
    assert new["series"]["train/kl"]["x"] == [11, 12, 13]
    assert new["last_step"] == 13 and new["current_step"] == 12
    Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
    done = client.get(url("metrics", run) + "?after=13").json()
    assert done["active"] is False and done["status"] == "succeeded" and done["last_step"] == 13
    assert client.get(url("metrics", run) + "?after=x").status_code == 400


def test_metrics_json_resets_after_a_resume_rewinds(world, client_for):
    project, users, dataset = world
    run = make_run(project, dataset, users["owner"], steps=10)
    RunMetric.objects.filter(run=run, step__gt=6).delete()
    Run.objects.filter(pk=run.pk).update(current_step=6)
    data = client_for(users["viewer"]).get(url("metrics", run) + "?after=10").json()
    assert data["reset"] is True and data["series"]["train/reward_mean"]["x"] == list(range(1, 7))


def test_thousands_of_steps_are_downsampled_for_display_only(world, client_for):
    project, users, dataset = world
    run = make_run(project, dataset, users["owner"], steps=0, total_steps=5000, checkpoint=False)
    RunMetric.objects.bulk_create([RunMetric(run=run, step=s, data={"train/reward_mean": s / 5000})
                                   for s in range(1, 2501)])
    data = client_for(users["viewer"]).get(url("metrics", run)).json()
    xs, ys = data["series"]["train/reward_mean"]["x"], data["series"]["train/reward_mean"]["y"]
    assert len(xs) == 1000 and data["last_step"] == 2500
    assert xs[0] == pytest.approx(1.5) and ys[0] == pytest.approx(1.5 / 5000)  # bucket means
    assert RunMetric.objects.filter(run=run).count() == 2500  # all kept
    assert len(run_series(run, after=2400)[0]["train/reward_mean"]["x"]) == 100


def test_downsample_keeps_short_series_and_means_long_ones():
    assert downsample([1, 2, 3], [0.1, 0.2, 0.3], 5) == ([1, 2, 3], [0.1, 0.2, 0.3])
    xs, ys = downsample(list(range(10)), [float(i) for i in range(10)], 5)
    assert xs == [0.5, 2.5, 4.5, 6.5, 8.5] and ys == [0.5, 2.5, 4.5, 6.5, 8.5]


def test_initial_chart_data_is_json_script_not_concatenated(world, client_for):
    project, users, dataset = world
    run = make_run(project, dataset, users["owner"], steps=2)
    RunMetric.objects.create(run=run, step=3, data={"train/grader/</script><script>alert(1)</script>_mean": 0.5})
    body = client_for(users["viewer"]).get(url("detail", run)).content.decode()
    assert "</script><script>alert(1)" not in body
    payload = body.split('id="run-chart-data" type="application/json">')[1].split("</script>")[0]
    assert json.loads(payload)["last_step"] == 3


def test_checkpoint_download_is_a_zip_of_the_folder(world, client_for):
    project, users, dataset = world
    run = make_run(project, dataset, users["owner"], steps=4)
    ckpt = run.checkpoints.get()
    response = client_for(users["viewer"]).get(url("checkpoint_download", run, ckpt=ckpt.pk))
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    # a full fine-tuning checkpoint: the complete model, a model card, no optimizer state or server config
    assert "attachment" in response["Content-Disposition"] and "step-4-merged.zip" in response["Content-Disposition"]
    names = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))).namelist()
    root = f"{run.pk}-step-4-merged"
    assert sorted(names) == [f"{root}/README.md", f"{root}/config.json", f"{root}/model.safetensors"]
    import shutil

    shutil.rmtree(ckpt.path)
    assert client_for(users["viewer"]).get(url("checkpoint_download", run, ckpt=ckpt.pk)).status_code == 404


def test_run_page_reads_the_metrics_once_and_agrees_with_the_separate_reads(world, client_for):
    """The charts, the reward headline, the time left and the findings share one read of the
    run's metrics; what they show is what reading them apart gives."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from webapp.runs import charts, timing

    project, users, dataset = world
    run = make_run(project, dataset, users["owner"], steps=10, total_steps=40)
    client = client_for(users["editor"])
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url("detail", run)).status_code == 200
    reads = [q["sql"] for q in queries.captured_queries if 'FROM "runs_runmetric"' in q["sql"]
             and "valid/reward_mean" not in q["sql"]]  # the timeline's own narrow read of the checks
    assert len(reads) == 1, reads

    fresh = Run.objects.get(pk=run.pk)
    separate = charts.reward_curves([fresh])[fresh.pk], timing.run_time_left(run=fresh)
    charts.run_series(fresh)  # leaves the rows on the run, as the page does
    assert (charts.run_reward_curve(fresh), timing.run_time_left(run=fresh)) == separate
