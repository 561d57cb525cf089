"""Shared fixtures: users with roles in a project, API keys, and isolated data folders."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads; see webapp/celery.py

import pytest  # noqa: E402

from tests.helpers import jsonl, rft_row  # noqa: E402


@pytest.fixture
def make_user(db, django_user_model):
    def make(username: str, **extra):
        return django_user_model.objects.create_user(username=username, password="pw-" + username, **extra)

    return make


@pytest.fixture
def project_with_roles(db, make_user):
    """A project with an owner, an editor, a viewer, plus an outsider who is in another project."""
    from webapp.projects.models import Membership, Role
    from webapp.projects.services import project_create

    owner = make_user("olivia")
    project = project_create(name="Tax advice", owner=owner)
    users = {"owner": owner}
    for role in (Role.EDITOR, Role.VIEWER):
        user = make_user(f"{role}-user")
        Membership.objects.create(project=project, user=user, role=role)
        users[role] = user
    outsider = make_user("outsider")
    project_create(name="Other team", owner=outsider)
    users["outsider"] = outsider
    return project, users


@pytest.fixture
def client_for(client):
    """A logged-in test client for a user (a fresh Client per call)."""
    from django.test import Client

    def make(user):
        c = Client()
        c.force_login(user)
        return c

    return make


@pytest.fixture
def sample_rows():
    return [rft_row(f"What is {i} + {i}?", str(2 * i), id=f"t{i}") for i in range(10)]


@pytest.fixture
def dataset(project_with_roles, sample_rows):
    from webapp.datasets.services import Upload, dataset_import_jsonl

    project, users = project_with_roles
    data = jsonl(sample_rows)
    return dataset_import_jsonl(
        project=project, name="Sums", user=users["owner"],
        train=Upload(name="sums.jsonl", size=len(data), read=lambda: data), holdout_percent=20, seed=0,
    )
