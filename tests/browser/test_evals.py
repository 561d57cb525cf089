"""The expert reads what training changed, in a real browser: the run page leads with the
before/after answer and per-criterion bars, a changed task links to the comparison page,
which sorts and filters tasks and shows both answers beside the reference."""

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import login
from tests.helpers import jsonl, rft_row
from tests.webapp.evals.factories import make_eval
from tests.webapp.runs.factories import make_run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TICKETS = ["My card was charged twice for one order", "The parcel never arrived", "App crashes on login",
           "How do I change my e-mail address?", "Refund for a cancelled plan", "Tracking number does not work"]
REFS = ["billing", "shipping", "technical", "account", "billing", "shipping"]
BEFORE = ["Thank you for reaching out! I understand how frustrating", "shipping", "I am sorry to hear that. Please",
          "account", "Hello! Refunds are", "Dear customer, we"]
AFTER = ["billing", "shipping", "technical", "account", "billing", "<script>alert(1)</script>"]


@pytest.fixture
def finished(django_user_model):
    from webapp.datasets.services import Upload, dataset_import_jsonl
    from webapp.projects.services import project_create

    user = django_user_model.objects.create_user("expert", password="pw-expert")
    project = project_create(name="Support triage", owner=user)
    data = jsonl([rft_row(t, r) for t, r in zip(TICKETS, REFS, strict=True)])
    dataset = dataset_import_jsonl(project=project, name="Tickets", user=user,
                                   train=Upload("t.jsonl", len(data), lambda: data), holdout_percent=0)
    run = make_run(project, dataset, user, steps=10, total_steps=10, status="succeeded", suffix="triage-v1")
    common = {"prompts": TICKETS, "refs": REFS,
              "task_ids": list(dataset.tasks.order_by("position").values_list("pk", flat=True))}
    base = make_eval(project, run, "run_base", [0.0, 1.0, 0.0, 1.0, 0.0, 0.3], outputs=BEFORE,
                     model_name="smollm2-135m-instruct", crit={1: 1.0, 3: 1.0}, **common)
    trained = make_eval(project, run, "run_trained", [1.0, 1.0, 1.0, 1.0, 1.0, 0.0], outputs=AFTER,
                        model_name=f"ft:smollm2-135m-instruct:triage-v1:{run.pk}:ckpt-step-10",
                        crit={0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0}, **common)
    return run, base, trained


def test_run_page_answers_then_compare_tasks(page, live_server, finished, shot):
    run, base, trained = finished
    login(page, live_server)
    page.goto(f"{live_server.url}/p/{run.project.slug}/runs/{run.pk}/")
    expect(page.locator("#eval-headline")).to_contain_text("base model 0.383 → trained model 0.833")
    expect(page.locator("#eval-headline")).to_contain_text("better on 3 tasks, worse on 1, same on 2")
    expect(page.locator("#eval-criteria-chart .bar-pair")).to_have_count(2)
    shot(page, "run-page-before-after")

    page.locator("#eval-changed a").first.click()
    expect(page.locator("#compare-headline")).to_contain_text("better on 3 tasks, worse on 1, same on 2")
    first = page.locator("#compare-rows article").first
    expect(first).to_contain_text("My card was charged twice")  # largest change first
    expect(first.locator(".reference")).to_have_text("billing")
    expect(first.locator(".answer-card")).to_have_count(2)
    shot(page, "compare-largest-change")

    page.select_option("#outcome", "worse")
    page.click("#compare-sort button")
    rows = page.locator("#compare-rows article")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Tracking number does not work")
    # the model's output is shown as text, never run
    expect(rows.first.locator(".answer-card").nth(1).locator(".output-text")).to_have_text("<script>alert(1)</script>")
    shot(page, "compare-worse-only")

    page.goto(f"{live_server.url}/p/{run.project.slug}/evals/")
    expect(page.locator("#eval-list tbody tr")).to_have_count(2)
    shot(page, "evaluations-list")
    page.click(f"#eval-list tr[data-eval='{trained.pk}'] td:nth-child(3) a")
    expect(page.locator("#eval-items tbody tr")).to_have_count(6)
    expect(page.locator("#eval-status")).to_have_text("Completed")
    expect(page.locator("#eval-reward")).to_have_text("0.833")
    shot(page, "evaluation-page")


def test_blind_ab_review_round(page, live_server, finished, shot):
    run, base, trained = finished
    login(page, live_server)
    page.goto(f"{live_server.url}/p/{run.project.slug}/runs/{run.pk}/")
    page.click("#ab-start-run")
    expect(page.locator("#ab-progress")).to_have_text("0 of 6 tasks judged.")
    body = page.locator("main").inner_text()
    assert "smollm2" not in body and "ft:" not in body and base.pk not in page.content()  # labels hidden
    shot(page, "ab-first-task")
    for i in range(6):
        pair = page.locator("#ab-pair")
        answers = [pair.locator(f"[data-answer='{n}'] .output-text").inner_text() for n in (1, 2)]
        # this expert prefers the answer that names a category; the grader disagrees on one of them
        better = next((n for n, a in zip((1, 2), answers, strict=True)
                       if a.strip() in ("billing", "shipping", "technical", "account")), None)
        if i == 0:
            page.fill("#ab-note", "The first answer is chatty <b>and</b> wrong")
        if better is None or answers[0].strip() == answers[1].strip():
            page.click("button[value=tie]")
        else:
            page.click(f"button[value={'first' if better == 1 else 'second'}]")
        expect(page.locator("#ab-progress")).to_have_text(f"{i + 1} of 6 tasks judged.")
    expect(page.locator("#ab-done")).to_be_visible()
    page.click("text=See the results")
    expect(page.locator("#ab-experts")).to_contain_text("Candidate wins")
    expect(page.locator("#ab-experts")).to_contain_text("95% confidence")
    expect(page.locator("#ab-grader")).to_contain_text("Agrees with the experts on")
    # task 6: the trained model's "<script>…" answer vs the base's "Dear customer, we": the expert
    # calls it a tie, the grader prefers the base model
    disagreements = page.locator(".disagreement")
    expect(disagreements).to_have_count(1)
    expect(disagreements.first).to_contain_text("Tracking number does not work")
    expect(disagreements.first.locator("text=Edit the task")).to_be_visible()
    shot(page, "ab-results")
