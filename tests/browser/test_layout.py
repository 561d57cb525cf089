"""Phone width and long names: no screen scrolls sideways at 390 px, a long project name
neither wraps the navigation nor makes a long URL, and the browser finds the favicon."""

import pytest
from playwright.sync_api import expect

from tests.helpers import jsonl, rft_row
from tests.webapp.runs.factories import add_steps, make_run  # noqa: F401 - add_steps used by make_run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LONG_NAME = ("Regional tax advice for small businesses and self-employed people in the "
             "north-western provinces, second attempt")


@pytest.fixture
def world(django_user_model):
    from webapp.datasets.services import Upload, dataset_import_jsonl
    from webapp.projects.services import project_create

    user = django_user_model.objects.create_user("phone-user", password="pw-phone")
    project = project_create(name=LONG_NAME, owner=user)
    data = jsonl([rft_row(f"Question {i}: which form do I file?", "form B", id=f"q{i}") for i in range(6)])
    dataset = dataset_import_jsonl(project=project, name="Questions about filing deadlines and forms",
                                   user=user, train=Upload("q.jsonl", len(data), lambda: data),
                                   holdout_percent=0)
    run = make_run(project, dataset, user, steps=6, total_steps=20, suffix="tax-forms-first-try")
    return project, dataset, run


def scrolls_sideways(page) -> int:
    """How many pixels the page is wider than the screen (0 when it fits)."""
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


def test_every_screen_fits_a_phone(browser, live_server, world, shot):
    project, dataset, run = world
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    icons = []
    page.on("response", lambda r: icons.append(r.status) if "favicon" in r.url else None)
    try:
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("input[name=username]", "phone-user")
        page.fill("input[name=password]", "pw-phone")
        page.click("button:has-text('Log in')")
        expect(page.locator("h1")).to_have_text("Projects")
        assert len(project.slug) <= 32, project.slug
        screens = {
            "projects": "/p/",
            "project": f"/p/{project.slug}/",
            "dataset": f"/p/{project.slug}/datasets/{dataset.pk}/",
            "graders": f"/p/{project.slug}/graders/",
            "runs": f"/p/{project.slug}/runs/",
            "run": f"/p/{project.slug}/runs/{run.pk}/",
            "samples": f"/p/{project.slug}/runs/{run.pk}/samples/",
            "api keys": "/accounts/api-keys/",
        }
        for name, path in screens.items():
            response = page.goto(live_server.url + path)
            assert response.status == 200, (name, response.status)
            page.wait_for_load_state("load")
            assert scrolls_sideways(page) <= 0, f"{name} scrolls sideways by {scrolls_sideways(page)} px"
            nav = page.locator("header.topbar")
            assert nav.bounding_box()["height"] < 140, f"{name}: the navigation takes too much room"
            shot(page, name.replace(" ", "-"))
        assert icons and all(status in (200, 301, 302, 304) for status in icons), icons

        # a new API key: shown once, with a Copy button that really copies it
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
        page.goto(f"{live_server.url}/accounts/api-keys/")
        page.fill("input[name=name]", "phone")
        page.click("button:has-text('Create key')")
        key = page.locator("#new-key-value").inner_text()
        page.click("#new-key button[data-copy]")
        expect(page.locator("#new-key .copy-status")).to_have_text("Copied.")
        assert page.evaluate("navigator.clipboard.readText()") == key and key.startswith("sk-rft-")
        assert scrolls_sideways(page) <= 0
        shot(page, "api-key-copied")
    finally:
        context.close()
