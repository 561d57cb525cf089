"""The expert's loop in a real browser: an expert scores 10 answers of a run blind, reads the
agreement report, opens the criterion it points to, fixes it, and sees agreement rise; a run
whose grader is broken shows the matching finding with its evidence."""

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import login
from tests.helpers import jsonl, rft_row
from tests.webapp.reviews.calibration import answers, make_calibration_run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def world(django_user_model):
    from webapp.datasets.services import Upload, dataset_import_jsonl
    from webapp.projects.services import project_create

    user = django_user_model.objects.create_user("expert", password="pw-expert")
    project = project_create(name="Sums", owner=user)
    data = jsonl([rft_row(f"What is {i} + {i}?", str(2 * i)) for i in range(1, 13)])
    dataset = dataset_import_jsonl(project=project, name="Sums", user=user,
                                   train=Upload("s.jsonl", len(data), lambda: data), holdout_percent=0)
    return user, project, dataset


def test_review_ten_answers_fix_the_criterion_and_agreement_rises(page, live_server, world, shot):
    user, project, dataset = world
    grader, run, _ = make_calibration_run(project, dataset, user)
    rows = [t.data for t in dataset.tasks.order_by("position")]
    verdict_of = {text: verdict for _, text, verdict in answers(rows)}

    login(page, live_server)
    page.goto(f"{live_server.url}/p/{project.slug}/")
    page.click("nav.tabs >> text=Reviews")
    expect(page.locator("#review-graders")).to_contain_text("not measured yet")
    page.click("#review-graders >> text=Sums rubric")
    expect(page.locator("#review-progress")).to_contain_text("The queue is empty")
    page.select_option("#add-run", label=f"sums-1 · {run.created_at:%Y-%m-%d %H:%M}")
    page.fill("#add-count", "10")
    page.click("#add-from-run button[type=submit]")
    expect(page.locator("#review-progress")).to_contain_text("You have scored 0 of 10 answers")
    shot(page, "queue")

    page.click("#start-review")
    for n in range(10):
        expect(page.locator("#item-progress")).to_contain_text(f"You have scored {n} of 10 answers")
        expect(page.locator("[data-grader-score]")).to_have_count(0)  # blind until the expert has scored
        verdict = verdict_of[page.locator("#review-answer").inner_text()]
        for criterion, value in verdict.items():
            page.check(f"input[name=score-{criterion}][value='{value}']")
        if n == 4:
            shot(page, "reviewing")
        page.click("#save-next")

    # The queue is done: the report says where the grader and the expert part ways.
    expect(page.locator("#overall-agreement")).to_have_text("80 %")
    expect(page.locator("#agreement-criteria tr[data-criterion=correct]")).to_contain_text("60 %")
    expect(page.locator("#agreement-criteria tr[data-criterion=polite]")).to_contain_text("100 %")
    expect(page.locator("#disagreements tbody tr")).to_have_count(4)
    expect(page.locator("#disagreements tbody tr").first).to_contain_text("The answer is")
    shot(page, "agreement-before")

    # One click to the criterion; the run uses this grader, so saving makes version 2.
    page.set_viewport_size({"width": 1280, "height": 420})  # short: the criterion starts below the fold
    page.locator("#disagreements a.edit-criterion").first.click()
    expect(page.locator("h1")).to_contain_text("Sums rubric")
    row = page.locator("fieldset.criterion", has=page.locator("input[name$='-name'][value=correct]"))
    # the builder brings the criterion the report pointed to into view, highlighted, its name focused
    expect(row).to_have_class("criterion card focused")
    expect(page.locator("fieldset.criterion.focused")).to_have_count(1)
    expect(row.locator(".focus-note")).to_be_visible()
    expect(row).to_be_in_viewport()
    expect(row.locator("input[name$='-name']")).to_be_focused()
    assert page.evaluate("window.scrollY") > 0
    shot(page, "edit-criterion-focused")
    page.set_viewport_size({"width": 1280, "height": 900})
    row.locator("select[name$='-f-operation']").select_option("like")
    shot(page, "edit-criterion")
    page.click("#save-grader")
    expect(page.locator("h1")).to_contain_text("v2")

    # The reviewed answers are scored by v2 as the report opens; agreement before and after.
    page.click("#grader-agreement-link a")
    expect(page.locator("#overall-agreement")).to_have_text("100 %")
    expect(page.locator("#before-agreement")).to_have_text("80 %")
    expect(page.locator("#after-agreement")).to_have_text("100 %")
    expect(page.locator("#agreement-criteria tr[data-criterion=correct]")).to_contain_text("100 %")
    expect(page.locator("#disagreements")).to_have_count(0)
    shot(page, "agreement-after")


def test_a_run_with_a_broken_grader_shows_the_finding(page, live_server, world, shot):
    from trainer.grading import run_grader
    from webapp.runs.hooks import DbHooks
    from webapp.runs.models import Run

    user, project, dataset = world
    # The grader reads {{item.answer}}, but the tasks call it reference_answer: every grade errors.
    broken = {"type": "multi", "name": "rubric", "calculate_output": "correct", "graders": {
        "correct": {"type": "string_check", "name": "correct", "input": "{{sample.output_text}}",
                    "reference": "{{item.answer}}", "operation": "eq"}}}
    run = Run.objects.create(project=project, dataset=dataset, created_by=user, grader_spec=broken,
                             base_model="tiny", status="running", total_steps=20, suffix="broken",
                             config={"max_completion_tokens": 64, "group_size": 4})
    hooks = DbHooks(run, flush_seconds=0, diagnose_seconds=0)
    rows = [t.data for t in dataset.tasks.order_by("position")]
    for step in range(1, 9):  # as the trainer reports it, from real grades of the broken grader
        items = rows[(step % 3) * 4:(step % 3) * 4 + 4]
        grades = [(row, text, run_grader(broken, text, row)) for row in items for text in
                  (row["reference_answer"], f"It is {row['reference_answer']}")]
        metrics = {"train/reward_mean": sum(g.reward for *_, g in grades) / len(grades), "train/reward_std": 0.0,
                   "train/grader_error_frac": sum(bool(g.errors) for *_, g in grades) / len(grades),
                   "train/frac_zero_std_groups": 1.0, "train/grader/correct_mean": 0.0,
                   "train/completion_tokens_mean": 12.0, "train/truncated_frac": 0.0, "train/entropy": 1.1}
        samples = [{"prompt": row["messages"], "item": {k: v for k, v in row.items() if k != "messages"},
                    "output_text": text, "reward": g.reward, "sub_rewards": g.sub_rewards, "errors": g.errors,
                    "completion_tokens": 5} for row, text, g in grades[:2]]
        hooks.on_step(step, metrics, samples)
    hooks.flush()

    login(page, live_server)
    page.goto(f"{live_server.url}/p/{project.slug}/runs/{run.pk}/")
    finding = page.locator("#finding-grader_errors")
    expect(finding).to_contain_text("The grader fails on many answers")
    expect(finding).to_contain_text("100 %")
    expect(page.locator("#finding-no_signal")).to_be_visible()
    expect(page.locator("#run-logs")).to_contain_text("The grader fails on many answers")  # announced as an event
    shot(page, "broken-grader-finding")
    finding.locator("text=What to try").click()
    expect(finding).to_contain_text("Fix the criterion")
    finding.locator("text=see the answers").click()
    expect(page.locator("h1")).to_contain_text("broken")
    expect(page.locator("body")).to_contain_text("invalid variable error")
    shot(page, "broken-grader-samples")


def test_difficulty_profile_then_bands_and_regrade_on_the_run_page(page, live_server, world, shot, tmp_path):
    from tests.trainer.engine.conftest import make_tiny_model
    from tests.webapp.runs.factories import make_run
    from webapp.graders.services import grader_create
    from webapp.insights.models import DifficultyProfile, Regrade
    from webapp.insights.services import difficulty_execute, regrade_execute
    from webapp.runs.hooks import task_key
    from webapp.runs.models import LocalBaseModel, RunSample

    user, project, dataset = world
    LocalBaseModel.objects.create(name="tiny", path=str(make_tiny_model(tmp_path / "tiny")))
    exact = {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}",
             "reference": "{{item.reference_answer}}", "operation": "eq"}
    grader = grader_create(project=project, name="Exact", spec=exact, user=user, dataset=dataset)
    lenient = grader_create(project=project, name="Contains", spec={**exact, "operation": "like"}, user=user)

    login(page, live_server)
    page.goto(f"{live_server.url}/p/{project.slug}/datasets/{dataset.pk}/")
    page.click("#difficulty-link a")
    page.select_option("#d-model", "tiny")
    page.fill("#d-k", "3")
    page.locator("#d-k").dispatch_event("change")
    expect(page.locator("#difficulty-estimate")).to_contain_text("12 tasks × 3 answers = 36 answers")
    page.click("#difficulty-start button[type=submit]")
    expect(page.locator("#difficulty-profile")).to_contain_text("Waiting for a worker")
    difficulty_execute(profile_id=DifficultyProfile.objects.get().pk)  # what the worker's task calls
    expect(page.locator("#difficulty-summary")).to_contain_text("12 never solved")  # the page polls
    shot(page, "difficulty")
    # The launch page's estimate says the same, next to the grader's (unmeasured) agreement.
    page.goto(f"{live_server.url}/p/{project.slug}/runs/new/")
    page.select_option("#id_dataset", label="Sums v1 (12 train / 0 valid)")
    page.select_option("#id_grader", label="Exact v1")
    expect(page.locator("#launch-difficulty")).to_contain_text("nothing to learn from")
    expect(page.locator("#agreement-warning")).to_contain_text("Nobody has checked this grader")
    page.locator("#estimate").scroll_into_view_if_needed()
    shot(page, "launch-warnings")
    page.go_back()
    page.click("#difficulty-apply button[value=to_valid]")
    expect(page.locator("h1")).to_contain_text("v2")
    expect(page.locator("body")).to_contain_text("12 validation")

    # A finished run on the first version: the tasks it learned are "never solved" ones.
    run = make_run(project, dataset, user, steps=0, total_steps=9, status="succeeded", grader=grader, suffix="sums")
    rows = list(dataset.tasks.order_by("position"))
    for step in range(1, 10):
        for task in rows[:4]:
            ref = task.data["reference_answer"]
            text = ref if step > 6 else f"about {ref}"
            RunSample.objects.create(run=run, step=step, split="train", task_key=task_key(task.data["messages"]),
                                     prompt=task.data["messages"], item={"reference_answer": ref},
                                     output_text=text, reward=1.0 if step > 6 else 0.0)
    run.current_step = 9
    run.save()
    page.goto(f"{live_server.url}/p/{project.slug}/runs/{run.pk}/")
    expect(page.locator("#band-progress tr[data-band=never]")).to_contain_text("100 %")
    page.select_option("#regrade-grader", label="Contains v1")
    page.click("#regrade-form button[type=submit]")
    regrade_execute(regrade_id=Regrade.objects.get().pk)
    page.reload()
    expect(page.locator("#regrade")).to_contain_text("Contains v1: mean score 1.00")
    expect(page.locator(".regrade-chart .scatterlayer .trace")).to_have_count(2)
    page.locator("#run-findings").scroll_into_view_if_needed()
    shot(page, "run-bands-regrade")
    assert lenient.pk


def test_builder_scrolls_to_the_criterion_named_in_the_link(page, live_server, world, shot):
    """?criterion=<key> (the agreement report's link) scrolls the builder to that row and
    highlights it; a key the version no longer has says so."""
    user, project, dataset = world
    grader, _, _ = make_calibration_run(project, dataset, user)
    login(page, live_server)
    page.set_viewport_size({"width": 1280, "height": 420})
    page.goto(f"{live_server.url}/p/{project.slug}/graders/{grader.pk}/edit/?criterion=polite")
    polite = page.locator("fieldset.criterion[data-key=polite]")
    expect(polite).to_have_class("criterion card focused")
    expect(polite).to_be_in_viewport()
    expect(page.locator("fieldset.criterion[data-key=correct]")).not_to_have_class("criterion card focused")
    assert page.evaluate("window.scrollY") > 0
    shot(page, "builder-focus-polite")
    page.goto(f"{live_server.url}/p/{project.slug}/graders/{grader.pk}/edit/?criterion=%3Cb%3Egone")
    expect(page.locator("#focus-missing")).to_contain_text("no criterion “<b>gone”")
    expect(page.locator("fieldset.criterion.focused")).to_have_count(0)
    assert page.evaluate("window.scrollY") == 0
