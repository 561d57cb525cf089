"""Start a real Celery worker process against the test database and broker."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection

from webapp.celery import app as celery_app


def test_database_url() -> str:
    """A DATABASE_URL for the database this test process is using (pytest-django's test DB)."""
    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    auth = quote(s["USER"] or "") + (f":{quote(s['PASSWORD'])}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def reset_producer_pool() -> None:
    """Drop pooled broker connections so the next send uses the current broker options."""
    from kombu import pools

    pools.reset()  # closes every pooled connection and forgets the pools
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


def filesystem_broker_options(data_dir: Path) -> dict:
    folders = {k: str(data_dir / "broker" / v) for k, v in
               [("data_folder_in", "queue"), ("data_folder_out", "queue"),
                ("processed_folder", "processed"), ("control_folder", "control")]}
    for folder in set(folders.values()):
        Path(folder).mkdir(parents=True, exist_ok=True)
    return folders


@contextlib.contextmanager
def isolated_broker(data_dir: Path):
    """Point this process's producer at a private broker folder (filesystem broker only), so
    tests never leave messages where a developer's `make run` worker would pick them up."""
    saved = dict(celery_app.conf.broker_transport_options or {})
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        celery_app.conf.broker_transport_options = {**saved, **filesystem_broker_options(data_dir)}
        reset_producer_pool()
    try:
        yield
    finally:
        celery_app.conf.broker_transport_options = saved
        reset_producer_pool()


@contextlib.contextmanager
def running_worker(data_dir: Path, *, queues: str = "default,training", timeout: float = 60,
                   env: dict | None = None):
    """A `celery worker` subprocess sharing our database; this process's producer is pointed
    at the same broker (a private folder for the filesystem broker, else CELERY_BROKER_URL)."""
    env = {**os.environ, "STUDIO_DATA_DIR": str(data_dir), "DATABASE_URL": test_database_url(),
           "PYTHONUNBUFFERED": "1", **(env or {})}
    saved = dict(celery_app.conf.broker_transport_options or {})
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        celery_app.conf.broker_transport_options = {**saved, **filesystem_broker_options(data_dir)}
    else:  # a real broker: purge what earlier runs may have left
        celery_app.control.purge()
    reset_producer_pool()
    log = (data_dir / "worker.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "webapp", "worker", "--pool", "solo", "--queues", queues,
         "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO",
         "--hostname", f"test-{os.getpid()}@%h"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=settings.BASE_DIR,
    )
    try:
        deadline = time.monotonic() + timeout
        while "ready." not in Path(log.name).read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("worker did not start:\n" + Path(log.name).read_text()[-3000:])
            time.sleep(0.2)
        proc.log_path = Path(log.name)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        celery_app.conf.broker_transport_options = saved
        reset_producer_pool()
