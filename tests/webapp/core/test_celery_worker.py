"""The task queue for real: a worker process on the configured broker answers a ping by
writing to the database (the embedded filesystem broker by default, Redis in CI's 2nd pass)."""

import os
import time

import pytest
from django.urls import reverse

from tests.webapp.core.worker import running_worker
from webapp.core.models import WorkerPing
from webapp.core.services import worker_ping_send


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.django_db(transaction=True)
def test_worker_process_consumes_task_and_writes_row(tmp_path):
    with running_worker(tmp_path) as worker:
        ping = worker_ping_send()  # enqueued on commit, like every service
        answered = wait_for(lambda: WorkerPing.objects.get(pk=ping.pk).answered_at is not None)
        assert answered, worker.log_path.read_text()[-3000:]
    ping.refresh_from_db()
    assert ping.worker_hostname.startswith("test-")


@pytest.mark.django_db(transaction=True)
def test_system_page_checks_the_default_and_the_training_queue(tmp_path, client, django_user_model):
    staff = django_user_model.objects.create_user("ops", password="x", is_staff=True)
    client.force_login(staff)
    hx = {"HX-Request": "true"}
    with running_worker(tmp_path, queues="default"):  # no training worker yet
        response = client.post(reverse("system_ping"), headers=hx)
        body = response.content.decode()
        assert response["HX-Trigger"] == "ping-sent"  # the recent list refreshes at once
        assert "Default queue (checks, pre-flight)" in body and "Training queue (runs)" in body and "waiting for a worker" in body
        default, training = WorkerPing.objects.get(queue="default"), WorkerPing.objects.get(queue="training")
        default_url = reverse("system_ping_status", args=[default.pk])
        assert wait_for(lambda: "answered" in client.get(default_url, headers=hx).content.decode())
        recent = client.get(reverse("system_recent_pings"), headers=hx).content.decode()
        assert "answered by test-" in recent and "no answer yet" in recent and "none yet" not in recent
    training_url = reverse("system_ping_status", args=[training.pk])
    assert "waiting for a worker" in client.get(training_url, headers=hx).content.decode()
    with running_worker(tmp_path, queues="training"):  # the trainer worker picks it up
        assert wait_for(lambda: "answered" in client.get(training_url, headers=hx).content.decode())
    answer = client.get(training_url, headers=hx).content.decode()
    expected_user = "dedicated uid" if os.geteuid() == 0 else "user namespace"
    assert "Python graders: ready" in answer and expected_user in answer  # the worker's own sandbox
    assert WorkerPing.objects.get(pk=training.pk).sandbox["available"] is True


def test_admin_is_branded(admin_client):
    page = admin_client.get("/admin/").content.decode()
    assert "RFT Studio administration" in page and "Django administration" not in page


@pytest.mark.django_db
def test_system_page_says_when_python_graders_cannot_run(client, django_user_model, monkeypatch):
    from trainer.grading import isolation

    staff = django_user_model.objects.create_user("ops", password="x", is_staff=True)
    client.force_login(staff)
    assert "Python graders: ready" in client.get(reverse("system_status")).content.decode()
    monkeypatch.setenv("PATH", "/nonexistent")
    isolation._tools.cache_clear()
    try:
        page = client.get(reverse("system_status")).content.decode()
    finally:
        monkeypatch.undo()
        isolation._tools.cache_clear()
    assert "Python graders cannot run" in page and "apt-get install bubblewrap" in page
