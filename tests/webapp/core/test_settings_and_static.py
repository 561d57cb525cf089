import os
import subprocess
import sys

from django.conf import settings
from django.contrib.staticfiles import finders


def run_settings(env_extra: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG")}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", "import django; django.setup(); print('ok')"],
                          env={**env, "DJANGO_SETTINGS_MODULE": "webapp.settings"},
                          capture_output=True, text=True, cwd=settings.BASE_DIR, timeout=60)


def test_debug_off_refuses_default_secret_key():
    result = run_settings({"DEBUG": "0"})
    assert result.returncode != 0 and "SECRET_KEY is the built-in development key" in result.stderr
    assert run_settings({"DEBUG": "0", "SECRET_KEY": "x" * 50}).stdout.strip() == "ok"


def test_sqlite_runs_in_wal_mode_with_busy_timeout(db):
    from django.db import connection

    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
    assert settings.DATABASES["default"]["OPTIONS"]["timeout"] >= 5


def test_vendored_htmx_and_plotly_from_package_are_served(client):
    assert finders.find("vendor/htmx.min.js")
    plotly = finders.find("vendor/plotly.min.js")
    assert plotly and "site-packages/plotly/package_data" in plotly
    response = client.get("/static/vendor/plotly.min.js")
    assert response.status_code == 200
    head = b"".join(response.streaming_content)[:2000]
    assert b"plotly.js" in head


def test_embedded_defaults_need_no_server():
    if os.environ.get("DATABASE_URL") or os.environ.get("CELERY_BROKER_URL"):
        return  # the production-stack pass
    assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
    assert settings.CELERY_BROKER_URL == "filesystem://"
