"""Admin → Local base models: an admin registers a model folder, checked when saved, and the
New run form offers it by name (never by its path)."""

import pytest
from django.urls import reverse

from webapp.runs.models import LocalBaseModel


@pytest.fixture
def admin_client(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="pw-root-123")
    client.force_login(admin)
    return client


def add(client, **data):
    return client.post(reverse("admin:runs_localbasemodel_add"),
                       {"name": "tiny", "path": "", "description": "A tiny test model", **data})


def test_admin_registers_a_checked_model_folder(admin_client, tiny_model_path, project_with_roles, client_for):
    assert admin_client.get(reverse("admin:index")).content.decode().count("Local base models") == 1
    response = add(admin_client, path=str(tiny_model_path))
    assert response.status_code == 302, response.content.decode()[:2000]
    model = LocalBaseModel.objects.get()
    assert model.path == str(tiny_model_path)
    listing = admin_client.get(reverse("admin:runs_localbasemodel_changelist")).content.decode()
    assert "tiny" in listing and "ready" in listing
    project, users = project_with_roles
    form = client_for(users["editor"]).get(reverse("runs:launch", args=[project.slug])).content.decode()
    assert '<option value="tiny">tiny (A tiny test model)</option>' in form and str(tiny_model_path) not in form


@pytest.mark.parametrize(("data", "message"), [
    ({"path": "models/tiny"}, "Give the full path from the root"),
    ({"path": "/nowhere/at/all"}, "There is no folder /nowhere/at/all on this machine"),
    ({"name": "smollm2-135m-instruct"}, "is a built-in model"),
    ({"name": "my model!"}, "Use letters, digits"),
])
def test_bad_entries_are_refused_next_to_the_field(admin_client, tiny_model_path, data, message):
    response = add(admin_client, **{"path": str(tiny_model_path), **data})
    assert response.status_code == 200 and message in response.content.decode()
    assert not LocalBaseModel.objects.exists()


def test_a_folder_without_a_model_is_refused(admin_client, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert "has no tokenizer" in add(admin_client, path=str(tmp_path)).content.decode()
    (tmp_path / "tokenizer.json").write_text("{}")
    assert "has no weights" in add(admin_client, path=str(tmp_path)).content.decode()
