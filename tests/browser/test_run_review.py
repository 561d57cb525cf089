"""An expert watches a run and reviews its samples, in a real browser (runs built by the ORM
factory, no training): the reward chart draws, grows in place when new steps arrive, the
samples filter with htmx, and a “grader was wrong” mark shows up on the run page."""

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import login, mark_grader_wrong
from tests.helpers import jsonl, rft_row
from tests.webapp.runs.factories import add_steps, make_run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def run(django_user_model):
    from webapp.datasets.services import Upload, dataset_import_jsonl
    from webapp.projects.services import project_create

    user = django_user_model.objects.create_user("expert", password="pw-expert")
    project = project_create(name="Support triage", owner=user)
    data = jsonl([rft_row(f"Ticket {i}: route it", "billing", id=f"t{i}") for i in range(6)])
    dataset = dataset_import_jsonl(project=project, name="Tickets", user=user,
                                   train=Upload("t.jsonl", len(data), lambda: data), holdout_percent=0)
    make_run(project, dataset, user, steps=8, total_steps=8, status="succeeded", suffix="triage-v0",
             config={"learning_rate": 3e-5, "group_size": 4, "batch_size": 2})
    return make_run(project, dataset, user, steps=10, total_steps=40, suffix="triage-v1")


def trace_points(page, chart: str, index: int) -> int:
    return page.evaluate(f"document.getElementById('{chart}').data[{index}].x.length")


def test_watch_the_run_and_review_samples(page, live_server, run, shot):
    login(page, live_server)
    page.goto(f"{live_server.url}/p/{run.project.slug}/runs/")
    expect(page.locator("#run-list svg.sparkline polyline")).to_have_count(2)
    shot(page, "runs-list")
    page.check("input[aria-label='compare triage-v0']")
    page.check("input[aria-label='compare triage-v1']")
    page.click("#compare-button")
    expect(page.locator("#compare-chart .scatterlayer .trace")).to_have_count(4)  # train + valid each
    expect(page.locator("#config-diff tr.differs").first).to_be_visible()
    expect(page.locator("#config-diff")).to_contain_text("Learning speed")  # the form's words, differences only
    shot(page, "compare")
    page.go_back()
    page.click("text=triage-v1")

    expect(page.locator("#run-status")).to_have_text("Running")
    expect(page.locator("#run-step")).to_contain_text("step 10 of 40")
    expect(page.locator("#chart-reward .main-svg").first).to_be_visible()
    expect(page.locator("#chart-reward .scatterlayer .trace")).to_have_count(6)
    expect(page.locator("#chart-time .scatterlayer .trace")).to_have_count(3)
    assert trace_points(page, "chart-reward", 2) == 10  # train reward mean, one point per step
    shot(page, "run-page")

    page.evaluate("window.__noReload = true")
    add_steps(run, 11, 15)  # the worker writes a batch of steps
    expect(page.locator("#run-charts")).to_have_attribute("data-last-step", "15", timeout=15_000)
    assert trace_points(page, "chart-reward", 2) == 15
    assert trace_points(page, "chart-reward", 5) == 3  # validation at steps 5, 10, 15
    assert page.evaluate("window.__noReload") is True  # extended in place, not reloaded
    expect(page.locator("#run-step")).to_contain_text("step 15 of 40")
    shot(page, "run-page-extended")

    page.click("a.button:has-text('Samples')")
    expect(page.locator("#sample-count")).to_contain_text("33 matching samples")
    page.select_option("select[name=split]", "valid")
    expect(page.locator("#sample-count")).to_contain_text("3 matching samples")
    expect(page.locator("article.sample")).to_have_count(3)
    page.select_option("select[name=split]", "")
    page.select_option("select[name=order]", "worst")
    expect(page.locator("#sample-count")).to_contain_text("33 matching samples")
    first = page.locator("article.sample").first
    expect(first).to_contain_text("step 1 ")
    shot(page, "samples")

    mark_grader_wrong(first, criterion="polite", comment="Polite enough for a support reply.")
    shot(page, "sample-marked")

    page.click("text=Back to the run")
    expect(page.locator("#feedback-counts")).to_contain_text("polite: 1")
    shot(page, "run-page-disagreements")
