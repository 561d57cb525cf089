"""Headless Debian chromium driven by Playwright against the live test server.

Playwright never downloads a browser here: it launches the system `chromium` binary.
Screenshots go to $ARTIFACTS_DIR (default: ./artifacts/browser) for a reviewer to look at.
"""

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs a loop

ARTIFACTS = Path(os.environ.get("ARTIFACTS_DIR", Path(__file__).resolve().parents[2] / "artifacts" / "browser"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(autouse=True)
def _isolated_data_dir(settings, tmp_path):
    settings.STUDIO_DATA_DIR = tmp_path / "studio-data"
    settings.STUDIO_DATA_DIR.mkdir()
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.fail("Debian's chromium is not installed; `make test` installs it (make browser-deps).")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def shot(request):
    """shot(page, "name") saves a full-page screenshot as <test>-<n>-<name>.png."""
    folder = ARTIFACTS
    folder.mkdir(parents=True, exist_ok=True)
    counter = iter(range(1, 100))

    def take(page, name: str) -> Path:
        path = folder / f"{request.node.name}-{next(counter):02d}-{name}.png"
        # After a full-page screenshot Chromium's scroll offset seen by the page and the one
        # used to hit-test clicks can differ, so the next click may miss its button: put the
        # scroll position back.
        xy = page.evaluate("[scrollX, scrollY]")
        page.screenshot(path=str(path), full_page=True)
        page.evaluate("([x, y]) => window.scrollTo(x, y)", xy)
        return path

    return take


@pytest.fixture(scope="session", autouse=True)
def _isolated_broker(tmp_path_factory):
    from tests.webapp.core.worker import isolated_broker

    with isolated_broker(tmp_path_factory.mktemp("broker")):
        yield
