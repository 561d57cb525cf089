"""The run page as an expert reads it, in a real browser (runs written by the ORM factory, as
the worker's hooks write them): nothing drawn before there is something to draw, a dot for a
single step, validation and the trend first, events with validation results, a cancel that
leaves no stale banner, and a page that says so when the session ends."""

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import login
from tests.helpers import jsonl, rft_row
from tests.webapp.runs.factories import add_steps, make_run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
CONFIG = {"batch_size": 2, "group_size": 4, "eval_interval": 5, "beta": 0, "device": "cpu",
          "max_completion_tokens": 64}


@pytest.fixture
def world(django_user_model):
    from webapp.datasets.services import Upload, dataset_import_jsonl
    from webapp.projects.services import project_create

    user = django_user_model.objects.create_user("expert", password="pw-expert")
    project = project_create(name="Support triage", owner=user)
    data = jsonl([rft_row(f"Ticket {i}: route it", "billing", id=f"t{i}") for i in range(6)])
    dataset = dataset_import_jsonl(project=project, name="Tickets", user=user,
                                   train=Upload("t.jsonl", len(data), lambda: data), holdout_percent=0)
    return project, dataset, user


def test_a_run_from_its_first_step_to_cancel(page, live_server, world, shot):
    project, dataset, user = world
    run = make_run(project, dataset, user, steps=0, total_steps=40, config=dict(CONFIG))
    login(page, live_server)
    page.goto(f"{live_server.url}/p/{project.slug}/runs/{run.pk}/")
    expect(page.locator("h1")).to_contain_text("rubric, ")  # no name: its grader and date, not its id

    # step 0: no axes, no grid, a word instead; no drift chart for a run without a KL penalty
    expect(page.locator("#chart-reward")).to_contain_text("appears after the first step")
    expect(page.locator("#chart-reward .xtick")).to_have_count(0)
    expect(page.locator("#chart-kl")).to_have_count(0)
    expect(page.locator("#run-valid")).to_contain_text("first check at step 5")
    shot(page, "step-0")

    add_steps(run, 1, 1)  # the first step arrives: one dot, with axes
    expect(page.locator("#run-charts")).to_have_attribute("data-last-step", "1", timeout=15_000)
    expect(page.locator("#chart-reward .scatterlayer .trace .points path").first).to_be_attached()
    expect(page.locator("#chart-reward .ytick").first).to_be_attached()
    shot(page, "step-1")

    add_steps(run, 2, 12)
    expect(page.locator("#run-charts")).to_have_attribute("data-last-step", "12", timeout=15_000)
    expect(page.locator("#run-valid strong")).not_to_have_text("—", timeout=10_000)
    expect(page.locator("#run-valid")).to_contain_text("at step 10")
    expect(page.locator("#run-trend strong")).to_contain_text("→")
    expect(page.locator("#events")).to_contain_text("Step 10: validation score")
    # the reward axis stays 0..1 and the training band never leaves it
    low = page.evaluate("Math.min(...document.getElementById('chart-reward').data[0].y)")
    assert low >= 0
    assert page.evaluate("document.getElementById('chart-reward').layout.yaxis.range") == [-0.02, 1.02]
    shot(page, "step-12")

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#run-actions button:has-text('Cancel')")
    expect(page.locator("#run-requested")).to_contain_text("Cancel requested")
    expect(page.locator(".messages")).to_have_count(0)
    shot(page, "cancel-requested")
    run.refresh_from_db()
    assert run.requested_action == "cancel"
    type(run).objects.filter(pk=run.pk).update(status="cancelled", requested_action="")  # the worker stops
    expect(page.locator("#run-status")).to_have_text("Cancelled", timeout=10_000)
    expect(page.locator("#run-requested")).to_have_count(0)
    expect(page.locator(".messages")).to_have_count(0)  # no banner left saying "Cancel requested."
    shot(page, "cancelled")


def test_the_live_page_says_when_the_session_ends(page, live_server, world, shot):
    project, dataset, user = world
    run = make_run(project, dataset, user, steps=3, total_steps=40, config=dict(CONFIG))
    login(page, live_server)
    page.goto(f"{live_server.url}/p/{project.slug}/runs/{run.pk}/")
    expect(page.locator("#run-status")).to_have_text("Running")
    page.context.clear_cookies()  # logged out elsewhere, or the session expired
    expect(page.locator("#session-ended")).to_be_visible(timeout=15_000)
    expect(page.locator("#session-ended")).to_contain_text("Your session has ended")
    expect(page.locator("input[name=password]")).to_have_count(0)  # no login form swapped into the page
    expect(page.locator("#session-ended")).to_have_count(1)
    expect(page.locator("#run-live")).to_be_visible()
    shot(page, "session-ended")
    page.click("#session-ended a")
    expect(page.locator("input[name=password]")).to_be_visible()
    assert f"next=/p/{project.slug}/runs/{run.pk}/" in page.url.replace("%2F", "/")
