import json
import os
import stat
import subprocess
import sys

from django.conf import settings
from django.contrib.staticfiles import finders
from django.views.debug import technical_500_response


def run_settings(env_extra: dict, data_dir) -> subprocess.CompletedProcess:
    """Import the settings in a fresh process with only the given variables set."""
    drop = ("SECRET_KEY", "DEBUG", "SECRET_KEY_FALLBACKS", "STUDIO_DATA_DIR")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update({"STUDIO_DATA_DIR": str(data_dir), **env_extra})
    code = ("import json, django; django.setup(); from django.conf import settings as s; "
            "print(json.dumps({'debug': s.DEBUG, 'key': s.SECRET_KEY, "
            "'secure_cookies': getattr(s, 'SESSION_COOKIE_SECURE', False)}))")
    return subprocess.run([sys.executable, "-c", code], env={**env, "DJANGO_SETTINGS_MODULE": "webapp.settings"},
                          capture_output=True, text=True, cwd=settings.BASE_DIR, timeout=60)


def settings_of(env_extra: dict, data_dir) -> dict:
    result = run_settings(env_extra, data_dir)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_without_debug_the_app_is_production_with_a_generated_persistent_key(tmp_path):
    first = settings_of({}, tmp_path)
    assert first["debug"] is False and first["secure_cookies"] is True
    key_file = tmp_path / "secret_key"
    assert key_file.read_text().strip() == first["key"] and len(first["key"]) >= 50
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600  # readable by the app's user only
    assert settings_of({}, tmp_path)["key"] == first["key"]  # kept across restarts
    assert settings_of({}, tmp_path / "elsewhere")["key"] != first["key"]
    given = settings_of({"SECRET_KEY": "k" * 50}, tmp_path / "given")
    assert given["key"] == "k" * 50 and not (tmp_path / "given" / "secret_key").exists()
    assert settings_of({"DEBUG": "1"}, tmp_path)["debug"] is True  # development mode is explicit


def test_well_known_or_short_secret_keys_are_refused(tmp_path):
    for bad in ("insecure-dev-key-change-me", "short"):
        result = run_settings({"SECRET_KEY": bad}, tmp_path)
        assert result.returncode != 0 and "SECRET_KEY is a well-known or short value" in result.stderr


def test_error_pages_never_show_setting_values(rf, settings):
    """Even DEBUG's traceback page: no settings section, no environment from request.META."""
    settings.DEBUG = True
    request = rf.get("/boom", HTTP_USER_AGENT="pytest")
    # Computed, so that the page's listing of this test's source does not contain the values.
    request.META.update({"DATABASE_URL": f"postgres://studio:db-pass-{100 + 23}@db/studio",
                         "CELERY_BROKER_URL": f"amqp://u:broker-pass-{400 + 56}@mq//"})
    try:
        raise ValueError("boom")
    except ValueError:
        response = technical_500_response(request, *sys.exc_info())
    page = response.content.decode()
    assert "boom" in page and "pytest" in page  # still a useful page
    for secret in ("db-pass-" + str(123), "broker-pass-" + str(456), settings.SECRET_KEY):
        assert secret not in page
    assert "ROOT_URLCONF" not in page and "INSTALLED_APPS" not in page  # no settings listed at all


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
