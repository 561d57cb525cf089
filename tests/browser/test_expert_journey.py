"""A domain expert's whole journey, in a real browser against the real app and a real
Celery worker that trains a tiny model: log in, create a project, upload tasks, build a
two-criterion rubric and try it, launch a run from the “New run” screen, watch it go from
queued to running while the reward chart draws and grows in place, review its samples and
mark one “grader was wrong”, then launch a longer run and cancel it."""

import signal
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import mark_grader_wrong
from tests.helpers import jsonl, rft_row
from tests.trainer.engine.conftest import make_tiny_model
from tests.webapp.core.worker import running_worker

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LETTERS = "abcdefghijklmno"  # 15 tasks: 12 train, 3 held out for validation
STEPS = 12  # 12 train tasks / 2 per step × 2 passes

# Records, on every page, each status the run page shows and each step the charts reached
# (the page updates both without reloading: htmx swaps the status, runs.js the charts).
RECORDER = """
window.addEventListener("DOMContentLoaded", () => {
  window.__statuses = []; window.__steps = [];
  const push = (list, value) => { if (value != null && list[list.length - 1] !== value) list.push(value); };
  const note = () => {
    const status = document.getElementById("run-status");
    push(window.__statuses, status && status.textContent.trim());
    const charts = document.getElementById("run-charts");
    push(window.__steps, charts && charts.dataset.lastStep != null ? Number(charts.dataset.lastStep) : null);
  };
  note();
  new MutationObserver(note).observe(document.body,
    { subtree: true, childList: true, attributes: true, attributeFilter: ["data-last-step"] });
});
"""


@contextmanager
def worker_log_on_failure(worker):
    """A failed expectation also shows what the worker said."""
    try:
        yield
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- worker log (tail) ---\n{worker.log_path.read_text()[-4000:]}") from None


@contextmanager
def worker_held(worker):
    """Freeze the worker (SIGSTOP) so the page is sure to show a state that would otherwise
    pass faster than it polls: a run still queued, a run part-way."""
    worker.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        worker.send_signal(signal.SIGCONT)


def project_tab(page, tab: str) -> None:
    page.click("header nav >> text=Alphabet tutor")  # the breadcrumb back to the project
    page.click(f"nav.tabs >> text={tab}")


def wait_until(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s")
        time.sleep(0.02)


def reward_points(page) -> int:
    return page.evaluate("document.getElementById('chart-reward').data[2].x.length")  # train reward mean


def fill_launch_form(page, *, suffix: str, n_epochs: int) -> None:
    page.select_option("#id_dataset", label="Letters v1 (12 train / 3 valid)")
    page.select_option("#id_grader", label="Letter rubric v1")
    page.select_option("#id_base_model", "tiny")
    page.fill("#id_suffix", suffix)
    page.click("summary:has-text('Advanced settings')")
    page.fill("#id_max_completion_tokens", "6")
    page.fill("#id_n_epochs", str(n_epochs))
    page.fill("#id_batch_size", "2")
    page.fill("#id_group_size", "2")  # answers per task
    page.fill("#id_eval_interval", "2")
    page.locator("#id_eval_interval").press("Tab")  # `change` fires: the estimate refreshes


def test_expert_journey(page, live_server, django_user_model, settings, tmp_path, shot):
    from webapp.runs.models import LocalBaseModel, Run, RunStatus

    django_user_model.objects.create_user("expert", password="pw-expert")
    LocalBaseModel.objects.create(name="tiny", path=str(make_tiny_model(tmp_path / "tiny-model")))
    tasks = tmp_path / "letters.jsonl"
    tasks.write_bytes(jsonl([rft_row(f"Say the letter {c}.", c, id=f"letter-{c}") for c in LETTERS]))
    page.context.add_init_script(RECORDER)

    with running_worker(settings.STUDIO_DATA_DIR) as worker, worker_log_on_failure(worker):
        # --- log in, create a project, upload tasks -------------------------------------------
        page.goto(f"{live_server.url}/")
        page.fill("input[name=username]", "expert")
        page.fill("input[name=password]", "pw-expert")
        page.click("button:has-text('Log in')")
        expect(page.locator("h1")).to_have_text("Projects")
        page.click("text=New project")
        page.fill("input[name=name]", "Alphabet tutor")
        page.click("button:has-text('Create project')")
        expect(page.locator("h1")).to_have_text("Alphabet tutor")
        shot(page, "project")

        page.click("text=Upload tasks")
        page.fill("input[name=name]", "Letters")
        page.set_input_files("input[name=train_file]", str(tasks))
        page.click("button:has-text('Upload and check')")
        expect(page.locator("h1")).to_contain_text("Letters")
        expect(page.locator(".counts")).to_contain_text("12 train")
        expect(page.locator(".counts")).to_contain_text("3 validation")
        shot(page, "dataset")

        # --- a two-criterion rubric, built from form fields, then tried on an answer ----------
        project_tab(page, "Graders")
        page.click("text=Build a rubric")
        page.wait_for_load_state()  # htmx (a deferred script) must be running before the first change
        page.fill("input[name=name]", "Letter rubric")
        first = page.locator("fieldset.criterion").nth(0)
        first.locator("input[name$='-name']").fill("Says the letter")
        first.locator("select[name$='-type']").select_option("string_check")
        expect(first.locator("select[name$='-f-operation']")).to_be_visible()
        first.locator("select[name$='-f-operation']").select_option("ilike")
        reference = first.locator("input[name$='-f-reference']")
        reference.fill("")
        reference.click()
        first.locator(".field[data-field=reference] button.chip", has_text="{{item.reference_answer}}").click()
        expect(reference).to_have_value("{{item.reference_answer}}")
        page.click("#add-criterion")
        expect(page.locator("fieldset.criterion")).to_have_count(2)
        second = page.locator("fieldset.criterion").nth(1)
        second.locator("input[name$='-name']").fill("Short answer")
        second.locator("select[name$='-type']").select_option("length_bounds")
        expect(second.locator("input[name$='-f-max']")).to_be_visible()
        second.locator("input[name$='-f-max']").fill("1")
        shot(page, "rubric-builder")
        page.click("#save-grader")
        expect(page.locator("h1")).to_contain_text("Letter rubric")
        expect(page.locator("#grader-json")).to_contain_text(
            '"calculate_output": "(1 * says_the_letter + 1 * short_answer) / 2"')

        task_c = page.locator("#id_task option", has_text="Say the letter c.").get_attribute("value")
        page.select_option("#id_task", task_c)
        page.fill("#id_sample", "It is C")  # the right letter, in too many words
        page.click("button:has-text('Grade this answer')")
        expect(page.locator("#try-total")).to_have_text("0.500")
        expect(page.locator("tr[data-criterion=says_the_letter] .score")).to_have_text("1.000")
        expect(page.locator("tr[data-criterion=short_answer] .score")).to_have_text("0.000")
        shot(page, "rubric-tried")

        # --- New run: choose, see the estimate, launch ----------------------------------------
        project_tab(page, "Runs")
        page.click("a:has-text('New run')")
        expect(page.locator("h1")).to_have_text("New run")
        fill_launch_form(page, suffix="letters-v1", n_epochs=2)
        expect(page.locator("#est-steps")).to_have_text(str(STEPS))
        expect(page.locator("#estimate")).to_contain_text("2 tasks × 2 answers")
        expect(page.locator("#estimate")).to_contain_text("12 train, 3 validation")
        shot(page, "launch-estimate")

        with worker_held(worker):
            page.click("button:has-text('Launch run')")
            expect(page.locator(".messages")).to_contain_text(f"launched: {STEPS} steps")
            expect(page.locator("#run-status")).to_have_text("Queued")
            expect(page.locator("#chart-reward .main-svg").first).to_be_visible()  # empty chart: "no data yet"
            shot(page, "run-queued")
        run_url = page.url
        page.evaluate("window.__journeyMarker = 'still the same page'")

        # queued -> running; the reward chart draws its first points, then grows in place. The
        # tiny run can be faster than the page's 2 s poll, so the worker is frozen as soon as it
        # has written a first step, until the page has shown that partial curve.
        run = Run.objects.get(suffix="letters-v1")
        wait_until(lambda: run.metrics.exists())
        with worker_held(worker):
            assert run.metrics.count() < STEPS, "the run finished before it could be held mid-way"
            expect(page.locator("#run-status")).to_have_text("Running", timeout=10_000)
            expect(page.locator("#run-charts")).not_to_have_attribute("data-last-step", "0")
            expect(page.locator("#chart-reward .scatterlayer .trace").first).to_be_attached()
            partial = reward_points(page)
            assert 0 < partial < STEPS
            expect(page.locator("#run-step")).to_contain_text(f" of {STEPS} (")
            shot(page, "run-running")
        expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=90_000)
        expect(page.locator("#run-charts")).to_have_attribute("data-last-step", str(STEPS), timeout=15_000)
        assert reward_points(page) == STEPS  # grew from `partial`, in place
        steps_seen = page.evaluate("window.__steps")
        assert steps_seen[0] == 0 and partial in steps_seen and steps_seen[-1] == STEPS, steps_seen
        assert page.evaluate("window.__statuses") == ["Queued", "Running", "Succeeded"]
        assert page.url == run_url and page.evaluate("window.__journeyMarker") == "still the same page"
        expect(page.locator("#run-step")).to_contain_text(f"step {STEPS} of {STEPS}")
        expect(page.locator("#chart-reward .scatterlayer .trace")).to_have_count(6)
        expect(page.locator("#run-actions")).to_have_count(0)  # nothing left to pause or cancel
        shot(page, "run-succeeded")
        # the checkpoints listed are those still on disk (the trainer prunes all but the best
        # few and the latest), and they download
        kept = list(run.checkpoints.values_list("path", flat=True))
        assert kept and all(Path(path).is_dir() for path in kept)
        checkpoints = page.locator("#checkpoints tbody tr")
        expect(checkpoints).to_have_count(len(kept))
        with page.expect_download() as download:
            checkpoints.last.locator("a:has-text('Download')").click()
        assert download.value.suggested_filename.startswith("letters-v1-step-")
        assert download.value.failure() is None and download.value.path().stat().st_size > 0
        assert page.url == run_url and page.evaluate("window.__journeyMarker") == "still the same page"

        # --- review the samples: one is marked "grader was wrong" -----------------------------
        page.click("a.button:has-text('Samples')")
        expect(page.locator("h1")).to_contain_text("Samples")
        sample = page.locator("article.sample").first
        expect(sample).to_be_visible()
        shot(page, "samples")
        mark_grader_wrong(sample, criterion="says_the_letter", comment="Spelled out, the letter is there.",
                          label="Says the letter")
        shot(page, "sample-marked")
        page.click("text=Back to the run")
        expect(page.locator("#feedback-counts")).to_contain_text("Says the letter: 1")
        shot(page, "run-disagreements")

        # --- a second, longer run, cancelled from its page ------------------------------------
        page.click("a.button:has-text('All runs')")
        page.click("a:has-text('New run')")
        fill_launch_form(page, suffix="letters-long", n_epochs=50)
        expect(page.locator("#est-steps")).to_have_text("300")
        page.click("button:has-text('Launch run')")
        expect(page.locator(".messages")).to_contain_text("launched: 300 steps")
        expect(page.locator("#run-status")).to_have_text("Running", timeout=60_000)
        expect(page.locator("#run-charts")).not_to_have_attribute("data-last-step", "0", timeout=60_000)
        shot(page, "long-run-running")
        page.once("dialog", lambda dialog: dialog.accept())  # "Cancel this run? It cannot be resumed."
        page.click("#run-actions button:has-text('Cancel')")
        expect(page.locator("#run-status")).to_have_text("Cancelled", timeout=30_000)
        expect(page.locator(".messages")).to_have_count(0)  # no stale “Cancel requested.” banner
        expect(page.locator("#events")).to_contain_text("Cancelled at step")
        expect(page.locator("#run-actions")).to_have_count(0)
        shot(page, "long-run-cancelled")

    runs = {r.suffix: r for r in Run.objects.all()}
    assert runs["letters-v1"].status == RunStatus.SUCCEEDED and runs["letters-v1"].current_step == STEPS
    assert runs["letters-long"].status == RunStatus.CANCELLED and 0 < runs["letters-long"].current_step < 300
    assert runs["letters-v1"].samples.filter(feedback__criterion="says_the_letter").count() == 1
