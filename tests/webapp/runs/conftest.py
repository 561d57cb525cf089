import pytest

from tests.trainer.engine.conftest import make_tiny_model


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    """A tiny random Llama on disk, registered per test as the base model "tiny"."""
    return make_tiny_model(tmp_path_factory.mktemp("runs-tiny") / "model")
