from tests.webapp.runs.conftest import tiny_model_path  # noqa: F401 - a tiny random model on disk
