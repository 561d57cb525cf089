"""The New run screen as an expert meets it, in a real browser: the pre-flight checks run on
a real worker and their result appears (the panel polls itself, it never loses its target);
problems show under their field; an empty project shows what is missing, not red errors."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import login
from tests.helpers import rft_row
from tests.trainer.engine.conftest import make_tiny_model
from tests.webapp.core.worker import running_worker

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

GRADER = {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}",
          "reference": "{{item.reference_answer}}", "operation": "eq"}


@pytest.fixture
def expert(django_user_model):
    from webapp.projects.services import project_create

    user = django_user_model.objects.create_user("expert", password="pw-expert")
    return user, project_create(name="Alphabet tutor", owner=user)


@pytest.fixture
def launchable(expert, tmp_path):
    from webapp.datasets.services import dataset_create_from_rows
    from webapp.graders.services import grader_create
    from webapp.runs.models import LocalBaseModel

    user, project = expert
    LocalBaseModel.objects.create(name="tiny", path=str(make_tiny_model(tmp_path / "tiny-model")))
    rows = [rft_row(f"Say the letter {c}.", c) for c in "abcdefghijkl"]
    dataset = dataset_create_from_rows(project=project, name="Letters", user=user, train_rows=rows[:10],
                                       valid_rows=rows[10:])
    grader_create(project=project, name="Exact letter", spec=GRADER, user=user, dataset=dataset)
    return project


def console_errors(page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    return errors


def test_preflight_result_appears_and_the_estimate_stays(page, live_server, launchable, settings, shot):
    errors = console_errors(page)
    login(page, live_server)
    page.goto(f"{live_server.url}/p/{launchable.slug}/runs/new/")
    page.wait_for_load_state()
    page.select_option("#id_base_model", "tiny")
    page.click("summary:has-text('Advanced settings')")
    page.fill("#id_group_size", "2")
    page.locator("#id_group_size").press("Tab")
    expect(page.locator("#est-per-step")).to_contain_text("× 2 answers")

    with running_worker(settings.STUDIO_DATA_DIR, queues="default") as worker:
        page.click("#run-checks")
        expect(page.locator("#preflight h3")).to_have_text("Pre-flight checks")
        shot(page, "preflight-waiting")
        try:  # the worker loads the tiny model, grades the references, samples first answers
            expect(page.locator("#check-rollouts")).to_be_visible(timeout=90_000)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- worker log ---\n{worker.log_path.read_text()[-3000:]}") from None
    expect(page.locator("#check-references")).to_contain_text("All 10 reference answers get full marks")
    expect(page.locator("#check-prompts")).to_contain_text("Every prompt fits")
    expect(page.locator("#preflight")).not_to_have_attribute("hx-get", re.compile(".*"))  # done: it stopped polling
    expect(page.locator("#est-steps")).to_be_visible()  # the estimate is still there, beside it
    shot(page, "preflight-done")
    page.wait_for_timeout(1500)  # a poll that had lost its target would log errors every second
    assert not [e for e in errors if "targetError" in e or "htmx" in e], errors


def test_an_empty_project_says_what_is_missing_without_red_errors(page, live_server, expert, shot):
    _, project = expert
    login(page, live_server)
    page.goto(f"{live_server.url}/p/{project.slug}/runs/new/")
    page.wait_for_load_state()
    expect(page.locator(".notice")).to_contain_text("A run needs a dataset with training tasks")
    expect(page.locator("#estimate")).to_contain_text("Choose a dataset and a grader")
    page.wait_for_timeout(500)
    expect(page.locator(".error")).to_have_count(0)
    expect(page.locator("button:has-text('Launch run')")).to_be_disabled()
    expect(page.locator("#run-checks")).to_be_disabled()
    shot(page, "empty-project")


def test_problems_show_under_their_field_and_auto_says_what_it_means(page, live_server, launchable, shot):
    login(page, live_server)
    page.goto(f"{live_server.url}/p/{launchable.slug}/runs/new/")
    page.wait_for_load_state()
    expect(page.locator("#est-steps")).to_be_visible()
    # on a CPU worker "auto" answers per task is 4, and the estimate says the same 4
    expect(page.locator("#auto-group_size")).to_have_text("= 4")
    expect(page.locator("#est-per-step")).to_contain_text("× 4 answers of up to 64 tokens")
    expect(page.locator("#auto-max_completion_tokens")).to_have_text("= 64")
    page.select_option("#id_worker_type", "gpu")
    expect(page.locator("#auto-group_size")).to_have_text("= 8")
    expect(page.locator("#est-per-step")).to_contain_text("× 8 answers of up to 128 tokens")
    page.select_option("#id_worker_type", "cpu")

    page.fill("#id_group_size", "1")
    page.locator("#id_group_size").press("Tab")
    field = page.locator(".field[data-field=group_size]")
    expect(field.locator(".error")).to_have_text("Must be between 2 and 64.")
    expect(page.locator("#estimate")).to_contain_text("Fix the settings marked in red")
    expect(page.locator("#estimate .error")).to_have_count(0)  # the problem is by the box, not in the estimate
    field.scroll_into_view_if_needed()
    shot(page, "field-error")
    page.fill("#id_group_size", "3")
    page.locator("#id_group_size").press("Tab")
    expect(field.locator(".error")).to_have_count(0)
    expect(page.locator("#est-per-step")).to_contain_text("× 3 answers")
    labels = page.locator("form#launch-form label").all_inner_texts()
    assert labels and not [label for label in labels if "_" in label]  # no raw setting names
    assert not page.locator("#id_base_model").inner_text().count("/")  # no server paths

