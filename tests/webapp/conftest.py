import pytest


@pytest.fixture(autouse=True)
def _isolated_data_dir(settings, tmp_path):
    """Uploads and files written by a test go to its own temp folder, never ./data."""
    settings.STUDIO_DATA_DIR = tmp_path / "studio-data"
    settings.STUDIO_DATA_DIR.mkdir()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def api_key_for(db):
    """A raw API key for a user, made through the real service."""
    from webapp.accounts.services import api_key_create

    def make(user, name="test"):
        return api_key_create(user=user, name=name)[1]

    return make


@pytest.fixture
def api_client_for(api_key_for):
    """A DRF-less plain Django client that authenticates with `Authorization: Bearer <key>`."""
    from django.test import Client

    def make(user, project=None):
        headers = {"Authorization": f"Bearer {api_key_for(user)}"}
        if project is not None:
            headers["OpenAI-Project"] = project.slug
        return Client(headers=headers)

    return make


@pytest.fixture(scope="session", autouse=True)
def _isolated_broker(tmp_path_factory):
    from tests.webapp.core.worker import isolated_broker

    with isolated_broker(tmp_path_factory.mktemp("broker")):
        yield
