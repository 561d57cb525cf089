"""A newcomer's tour, in a real browser, of every screen met once a run has finished: the
project, its datasets, the grader and its “Try it”, reviews, the difficulty profile, New run,
the run page (before/after, findings, charts, events), samples, compare, evaluations (list,
detail, comparison), a blind A/B review, the playground, API keys and System — at desktop
width and at 390 px. On each: no JavaScript or htmx errors, no server errors, nothing wider
than a phone, and no code names, “None”/“nan” or server paths in what the page shows.

The run and its evaluations are written straight to the database (as the trainer and the
evaluation worker leave them): this test is about what the screens show, not about training.
"""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS
from tests.helpers import jsonl, rft_row
from tests.webapp.evals.factories import make_eval
from tests.webapp.runs.factories import GRADER_SPEC, make_run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

QUESTIONS = ["My card was charged twice", "The parcel never arrived", "App crashes on login",
             "How do I change my e-mail?", "Refund for a cancelled plan", "Tracking number fails",
             "Invoice shows the wrong address", "Password reset mail never comes"]
REFS = ["billing", "shipping", "technical", "account", "billing", "shipping", "billing", "account"]

# What a visitor must never read: code names, Python's None/nan, server paths.
FORBIDDEN = [
    (re.compile(r"\b(string_check|text_similarity|score_model|label_model|python_grader|multi)\b"), "a grader type's code name"),
    (re.compile(r"\b\w*reward_(mean|std)\b|\btrain/|\bvalid/"), "a metric's code name"),
    (re.compile(r"\w__\w|^__|\s__"), "a double underscore"),
    (re.compile(r"\bNone\b"), "Python's None"),
    (re.compile(r"\bnan\b|\bNaN\b"), "not-a-number"),
    (re.compile(r"/work/|STUDIO_DATA_DIR|/tmp/|pytest-of"), "a server path"),
    (re.compile(r"Traceback|Exception:"), "a traceback"),
]

# Visible text, leaving out what is code on purpose (the grader's JSON, API examples).
VISIBLE_TEXT = """() => {
  const skip = "pre, code, textarea, script, style, template, kbd, samp, .code, #grader-json, option";
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode, el = node.parentElement;
    if (!el || !node.textContent.trim() || el.closest(skip)) continue;
    if (!el.checkVisibility({checkOpacity: true, checkVisibilityCSS: true})) continue;
    out.push(node.textContent.trim());
  }
  return out.join("\\n");
}"""

# The innermost elements that stick out past the right edge of the screen.
TOO_WIDE = """() => [...document.querySelectorAll("body *")]
  .filter(el => el.getBoundingClientRect().right > document.documentElement.clientWidth + 1
                && ![...el.children].some(c => c.getBoundingClientRect().right > document.documentElement.clientWidth + 1))
  .slice(0, 5).map(el => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + "." + [...el.classList].join("."))"""

HTMX_ERRORS = """
window.__htmxErrors = [];
for (const name of ["htmx:responseError", "htmx:sendError", "htmx:swapError", "htmx:targetError"]) {
  document.addEventListener(name, (e) => window.__htmxErrors.push(name + " " + ((e.detail.xhr || {}).status || "")));
}
"""


@pytest.fixture
def world(django_user_model):
    from webapp.datasets.services import Upload, dataset_import_jsonl
    from webapp.graders.services import grader_create
    from webapp.projects.services import project_create

    user = django_user_model.objects.create_user("newcomer", password="pw-newcomer", is_staff=True)  # sees System
    project = project_create(name="Support triage", owner=user)
    data = jsonl([rft_row(q, r) for q, r in zip(QUESTIONS, REFS, strict=True)])
    dataset = dataset_import_jsonl(project=project, name="Tickets", user=user,
                                   train=Upload("t.jsonl", len(data), lambda: data), holdout_percent=25)
    grader = grader_create(project=project, name="Triage rubric", spec=GRADER_SPEC, user=user, dataset=dataset)
    run = make_run(project, dataset, user, steps=20, total_steps=20, status="succeeded", suffix="triage-v1",
                   grader=grader)
    other = make_run(project, dataset, user, steps=12, total_steps=12, status="succeeded", suffix="triage-v0",
                     grader=grader)
    for metric in other.metrics.all():  # most task groups scored alike: the findings panel has a finding
        metric.data["train/frac_zero_std_groups"] = 0.8
        metric.save(update_fields=["data"])
    valid = list(dataset.tasks.order_by("position").values_list("pk", flat=True))[:4]
    common = {"prompts": QUESTIONS[:4], "refs": REFS[:4], "task_ids": valid}
    base = make_eval(project, run, "run_base", [0.0, 1.0, 0.0, 0.5], outputs=["Hello!", "shipping", "Sorry", "acc"],
                     model_name="tiny-test-model", **common)
    trained = make_eval(project, run, "run_trained", [1.0, 1.0, 1.0, 0.0], outputs=["billing", "shipping",
                        "technical", "Dear customer"], model_name=f"ft:tiny-test-model:triage-v1:{run.pk}:ckpt-step-20",
                        **common)
    return project, dataset, grader, run, other, base, trained


def screens(project, dataset, grader, run, other, base, trained, ab_pk):
    p = f"/p/{project.slug}"
    return {
        "projects": "/p/",
        "project": f"{p}/",
        "dataset": f"{p}/datasets/{dataset.pk}/",
        "graders": f"{p}/graders/",
        "grader": f"{p}/graders/{grader.pk}/",
        "reviews": f"{p}/reviews/",
        "grader-reviews": f"{p}/reviews/graders/{grader.pk}/",
        "difficulty": f"{p}/insights/datasets/{dataset.pk}/difficulty/",
        "runs": f"{p}/runs/",
        "new-run": f"{p}/runs/new/",
        "run": f"{p}/runs/{run.pk}/",
        "run-with-finding": f"{p}/runs/{other.pk}/",
        "samples": f"{p}/runs/{run.pk}/samples/",
        "compare-runs": f"{p}/runs/compare/?run={run.pk}&run={other.pk}",
        "evaluations": f"{p}/evals/",
        "new-evaluation": f"{p}/evals/new/",
        "evaluation": f"{p}/evals/{trained.pk}/",
        "evaluation-compare": f"{p}/evals/compare/?a={base.pk}&b={trained.pk}",
        "ab-review": f"{p}/evals/review/{ab_pk}/",
        "ab-results": f"{p}/evals/review/{ab_pk}/results/",
        "playground": f"{p}/playground/",
        "members": f"{p}/members/",
        "api-keys": "/accounts/api-keys/",
        "system": "/system/",
    }


def check_text(name: str, text: str) -> list[str]:
    problems = []
    for pattern, what in FORBIDDEN:
        for line in text.splitlines():
            if pattern.search(line):
                problems.append(f"{name}: {what} in {line[:160]!r}")
    return problems


@pytest.mark.parametrize("width", [1280, 390])
def test_newcomer_tour(browser, live_server, world, shot, width):
    from webapp.evals import ab

    project, dataset, grader, run, other, base, trained = world
    review = ab.ab_review_create(project=project, user=run.created_by, baseline=base, candidate=trained)
    context = browser.new_context(viewport={"width": width, "height": 900 if width > 500 else 844},
                                  is_mobile=width < 500)
    context.add_init_script(HTMX_ERRORS)
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors, server_errors = [], []
    page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
    page.on("console", lambda m: errors.append(f"{page.url}: console {m.type}: {m.text}")
            if m.type == "error" else None)
    page.on("response", lambda r: server_errors.append(f"{r.status} {r.url}") if r.status >= 500 else None)
    problems = []
    try:
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("input[name=username]", "newcomer")
        page.fill("input[name=password]", "pw-newcomer")
        page.click("button:has-text('Log in')")
        expect(page.locator("h1")).to_have_text("Projects")
        for name, path in screens(project, dataset, grader, run, other, base, trained, review.pk).items():
            response = page.goto(live_server.url + path)
            assert response.status == 200, (name, response.status)
            page.wait_for_load_state("load")
            page.wait_for_timeout(300)  # deferred scripts and charts draw
            wide = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            if wide > 0:
                problems.append(f"{name}: scrolls sideways by {wide} px, because of {page.evaluate(TOO_WIDE)}")
            problems += check_text(name, page.evaluate(VISIBLE_TEXT))
            problems += [f"{name}: {e}" for e in page.evaluate("window.__htmxErrors")]
            shot(page, f"{width}-{name}")
            if name == "run-with-finding":
                expect(page.locator("#finding-no_signal")).to_contain_text("Little to learn from")
                expect(page.locator("#run-eval-summary #run-evaluate")).to_be_visible()  # offered, below the run's numbers
                expect(page.locator("#regrade-none")).to_be_visible()  # its own grader is the only one: nothing to re-grade with
            if name == "run":  # leads with the answer: before/after, then the run's own numbers, then findings
                order = page.evaluate("""() => ["run-eval-summary", "run-live", "run-findings", "run-charts"]
                  .map(id => document.getElementById(id)).map(el => el ? el.getBoundingClientRect().top : null)""")
                assert None not in order and order == sorted(order), order
            if width < 500 and name == "run":  # long: also in screen-high pieces, to read
                height = page.evaluate("document.documentElement.scrollHeight")
                for i, top in enumerate(range(0, height, 1400)):
                    page.screenshot(path=str(ARTIFACTS / f"tour-390-run-part{i}.png"), full_page=True,
                                    clip={"x": 0, "y": top, "width": 390, "height": min(1400, height - top)})

        # the grader's "Try it" on an answer
        page.goto(f"{live_server.url}/p/{project.slug}/graders/{grader.pk}/")
        if page.locator("#id_sample").count():
            page.fill("#id_sample", "billing, please")
            page.click("button:has-text('Grade this answer')")
            expect(page.locator("#try-total")).to_be_visible()
            problems += check_text("grader tried", page.evaluate(VISIBLE_TEXT))
            shot(page, f"{width}-grader-tried")
    finally:
        context.close()
    assert not server_errors, server_errors
    assert not errors, errors
    assert not problems, "\n".join(problems)
