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


def test_vendored_htmx_and_plotly_are_served(client):
    assert finders.find("vendor/htmx.min.js")
    assert finders.find("vendor/plotly-cartesian.min.js")
    response = client.get("/static/vendor/plotly-cartesian.min.js")
    assert response.status_code == 200
    head = b"".join(response.streaming_content)[:2000]
    assert b"plotly.js" in head


def test_embedded_defaults_need_no_server():
    if os.environ.get("DATABASE_URL") or os.environ.get("CELERY_BROKER_URL"):
        return  # the production-stack pass
    assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
    assert settings.CELERY_BROKER_URL == "filesystem://"


def test_collected_static_files_are_hashed_compressed_and_cached_for_good(settings, tmp_path, db):
    """What `make run` serves: hashed names in pages, brotli bodies, `immutable` caching."""
    import re

    from django.core.management import call_command
    from django.test import Client

    settings.STATIC_ROOT = tmp_path / "static"
    # plotly takes the same path as htmx; leaving it out keeps this test fast
    call_command("collectstatic", "--noinput", "--ignore", "plotly*", verbosity=0)
    page = Client().get("/accounts/login/").content.decode()
    match = re.search(r"/static/vendor/htmx\.min\.([0-9a-f]{12})\.js", page)
    assert match, page[:500]
    response = Client().get(match.group(0), headers={"Accept-Encoding": "br, gzip"})
    assert response.status_code == 200 and response["Content-Encoding"] == "br"
    assert "immutable" in response["Cache-Control"]
    body = b"".join(response.streaming_content)
    assert len(body) < (tmp_path / "static/vendor/htmx.min.js").stat().st_size / 2
    # a second collectstatic does not compress again (hashed names never change content)
    stamp = (tmp_path / "static/vendor" / f"htmx.min.{match.group(1)}.js.br").stat().st_mtime_ns
    call_command("collectstatic", "--noinput", "--ignore", "plotly*", verbosity=0)
    assert (tmp_path / "static/vendor" / f"htmx.min.{match.group(1)}.js.br").stat().st_mtime_ns == stamp
