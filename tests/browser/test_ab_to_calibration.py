"""Where a blind A/B verdict disagrees with the grader, one click puts both answers in the
grader's expert review queue; the queue page also takes an evaluation's answers."""

import pytest
from playwright.sync_api import expect

from tests.browser.test_expert_loop import login, world  # noqa: F401  (the fixture)
from tests.webapp.evals.factories import make_eval
from tests.webapp.reviews.calibration import make_calibration_run
from webapp.evals import ab

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_disagreement_to_the_review_queue(page, live_server, world, shot):  # noqa: F811
    user, project, dataset = world
    grader, run, _ = make_calibration_run(project, dataset, user)
    tasks = list(dataset.tasks.order_by("position")[:3])
    common = {"dataset": dataset, "prompts": [t.data["messages"][-1]["content"] for t in tasks],
              "task_ids": [t.pk for t in tasks], "refs": [t.data["reference_answer"] for t in tasks]}
    base = make_eval(project, run, "run_base", [1.0, 0.0, 0.0], outputs=["2", "5", "7"], **common)
    trained = make_eval(project, run, "run_trained", [0.0, 1.0, 1.0], outputs=["The answer is 2", "4", "6"], **common)
    review = ab.ab_review_create(project=project, user=user, baseline=base, candidate=trained)
    for key in ab.shared_tasks(review):  # the expert prefers the trained model everywhere
        pair = ab.ab_pair(review=review, task_key=key)
        ab.ab_pick_record(review=review, user=user, task_key=key,
                          pick="first" if pair["left"] == "candidate" else "second")
    login(page, live_server)
    page.goto(f"{live_server.url}/p/{project.slug}/evals/review/{review.pk}/results/")
    card = page.locator(".disagreement")
    expect(card).to_have_count(1)
    expect(card).to_contain_text("What is 1 + 1?")
    expect(card.locator("a.edit-task")).to_be_visible()
    expect(card.locator("a.open-grader")).to_be_visible()
    shot(page, "ab-disagreement")
    card.locator("button.check-with-experts").click()
    expect(page.locator("#item-progress")).to_contain_text("You have scored 0 of 2 answers")
    expect(page.locator("#review-answer")).to_have_text("The answer is 2")
    expect(page.locator("[data-grader-score]")).to_have_count(0)  # blind
    page.check("input[name=score-correct][value='1']")
    page.check("input[name=score-polite][value='0']")
    shot(page, "scoring-the-pair")
    page.click("#save-next")
    expect(page.locator("#item-progress")).to_contain_text("You have scored 1 of 2 answers")
    expect(page.locator("#review-answer")).to_have_text("2")

    # the queue page offers the evaluations themselves as a source
    page.goto(f"{live_server.url}/p/{project.slug}/reviews/graders/{grader.pk}/")
    page.click("#add-answers summary")
    page.select_option("#add-evaluation", value=base.pk)
    page.fill("#add-eval-count", "3")
    shot(page, "add-from-evaluation-form")
    page.click("#add-from-evaluation button[type=submit]")
    expect(page.locator("#review-progress")).to_contain_text("You have scored 1 of 4 answers")
    shot(page, "queue-from-evaluation")
