import re

from django.core.management import call_command
from django.urls import reverse

from webapp.accounts.models import ApiKey
from webapp.accounts.services import hash_key


def test_key_is_shown_once_stored_hashed_and_revocable(make_user, client_for):
    user = make_user("scripter")
    client = client_for(user)
    page = client.post(reverse("accounts:api_keys"), {"name": "laptop"}).content.decode()
    raw = re.search(r'<pre class="key"[^>]*>(sk-rft-[\w-]+)</pre>', page).group(1)
    key = ApiKey.objects.get(user=user)
    assert key.key_hash == hash_key(raw) and raw not in key.key_hash and key.prefix == raw[:12]
    assert raw not in client.get(reverse("accounts:api_keys")).content.decode()  # never again

    from django.test import Client

    api = Client(headers={"Authorization": f"Bearer {raw}"})
    assert api.get("/v1/files").status_code == 200
    key.refresh_from_db()
    assert key.last_used_at is not None

    client.post(reverse("accounts:api_key_revoke", args=[key.pk]))
    assert api.get("/v1/files").status_code == 401


def test_users_cannot_revoke_others_keys(make_user, client_for, api_key_for):
    alice, bob = make_user("alice"), make_user("bob")
    api_key_for(alice)
    key = ApiKey.objects.get(user=alice)
    assert client_for(bob).post(reverse("accounts:api_key_revoke", args=[key.pk])).status_code == 404
    key.refresh_from_db()
    assert key.is_active


def test_deactivated_users_keys_stop_working(make_user, api_key_for):
    from django.test import Client

    user = make_user("leaver")
    raw = api_key_for(user)
    user.is_active = False
    user.save()
    assert Client(headers={"Authorization": f"Bearer {raw}"}).get("/v1/files").status_code == 401


def test_create_api_key_command(make_user, capsys):
    import pytest
    from django.core.management.base import CommandError

    user = make_user("ci-bot")
    call_command("create_api_key", "ci-bot", "--name", "ci")
    raw = capsys.readouterr().out.strip()
    assert raw.startswith("sk-rft-") and ApiKey.objects.get(user=user, name="ci").key_hash == hash_key(raw)
    with pytest.raises(CommandError, match="No user called 'nobody'"):
        call_command("create_api_key", "nobody")


def test_ensure_admin_creates_once_with_env_password(db, monkeypatch, capsys, django_user_model):
    monkeypatch.setenv("STUDIO_ADMIN_PASSWORD", "s3cret-pass-123")
    call_command("ensure_admin")
    admin = django_user_model.objects.get(username="admin")
    assert admin.is_superuser and admin.check_password("s3cret-pass-123")
    assert "s3cret" not in capsys.readouterr().out  # not echoed when it came from the env
    call_command("ensure_admin")
    assert "exists" in capsys.readouterr().out and django_user_model.objects.count() == 1


def test_ensure_admin_generates_and_prints_password(db, monkeypatch, capsys, django_user_model):
    monkeypatch.delenv("STUDIO_ADMIN_PASSWORD", raising=False)
    call_command("ensure_admin")
    password = re.search(r"password (\S+) \(printed only this once\)", capsys.readouterr().out).group(1)
    assert django_user_model.objects.get(username="admin").check_password(password)


def test_page_shows_the_project_header_and_ready_examples(make_user, client_for):
    from webapp.projects.services import project_create

    user = make_user("scripter")
    project = project_create(name="Claims triage", owner=user)
    page = client_for(user).get(reverse("accounts:api_keys")).content.decode()
    assert f"<code>{project.slug}</code>" in page and "OpenAI-Project" in page
    assert f'project="{project.slug}"' in page and "http://testserver/v1" in page
    assert f'-H "OpenAI-Project: {project.slug}"' in page and "curl http://testserver/v1/fine_tuning/jobs" in page
