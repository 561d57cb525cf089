"""Reviewing samples as an expert with a viewer account, in a real browser: each card says
which text is the model's answer and which is the task's reference, scores are named, the
viewer flags “grader was wrong” (reviewers are the experts, whatever their role) and takes the
flag back."""

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import mark_grader_wrong
from tests.helpers import jsonl, rft_row
from tests.webapp.runs.factories import make_run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def run(django_user_model):
    from webapp.datasets.services import Upload, dataset_import_jsonl
    from webapp.projects.models import Membership, Role
    from webapp.projects.services import project_create

    owner = django_user_model.objects.create_user("lead", password="pw-lead")
    reviewer = django_user_model.objects.create_user("reviewer", password="pw-reviewer")
    project = project_create(name="Support triage", owner=owner)
    Membership.objects.create(project=project, user=reviewer, role=Role.VIEWER)
    data = jsonl([rft_row(f"Ticket {i}: route it", "billing", id=f"t{i}") for i in range(6)])
    dataset = dataset_import_jsonl(project=project, name="Tickets", user=owner,
                                   train=Upload("t.jsonl", len(data), lambda: data), holdout_percent=0)
    return make_run(project, dataset, owner, steps=4, total_steps=4, status="succeeded", suffix="triage-v1")


def test_a_viewer_reviews_flags_and_takes_the_flag_back(page, live_server, run, shot):
    from webapp.runs.models import SampleFeedback

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "reviewer")
    page.fill("input[name=password]", "pw-reviewer")
    page.click("button:has-text('Log in')")
    page.goto(f"{live_server.url}/p/{run.project.slug}/runs/{run.pk}/samples/")
    page.wait_for_load_state()
    card = page.locator("article.sample").first
    expect(card.locator(".answer-block .block-label")).to_have_text("The model's answer")
    expect(card.locator(".reference-block .block-label")).to_contain_text("Reference answer")
    expect(card.locator(".reference-text")).to_have_text("2")  # newest first: "What is 1 + 1?" -> "2"
    expect(card.locator("header .reward")).to_contain_text("Score ")
    expect(card.locator(".criteria li[data-criterion=polite]")).to_contain_text("polite")
    expect(page.locator("#sample-filters")).to_contain_text("Score on that criterion")
    shot(page, "samples-as-viewer")

    mark_grader_wrong(card, criterion="polite", comment="Polite enough for a support reply.")
    expect(card.locator(".feedback-note")).to_contain_text("— you")
    shot(page, "flagged")
    assert SampleFeedback.objects.filter(user__username="reviewer").count() == 1

    card.locator("button.undo-flag").click()
    expect(card.locator(".feedback-note")).to_have_count(0)
    expect(card.locator("a:has-text('Grader was wrong')")).to_be_visible()
    shot(page, "flag-taken-back")
    assert not SampleFeedback.objects.exists()
