"""While an evaluation runs, its page shows new answers as they are graded, without a reload."""

import pytest
from playwright.sync_api import expect

from tests.browser.test_evals import finished, login  # noqa: F401  (the fixture)
from webapp.evals.models import EvalItem, EvalStatus, Evaluation
from webapp.runs.hooks import task_key

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_new_answers_appear_without_reload(page, live_server, finished, shot):  # noqa: F811
    run, base, trained = finished
    EvalItem.objects.filter(evaluation=trained, index__gte=4).delete()
    Evaluation.objects.filter(pk=trained.pk).update(status=EvalStatus.IN_PROGRESS, done_items=4, total_items=6)
    login(page, live_server)
    page.goto(f"{live_server.url}/p/{run.project.slug}/evals/{trained.pk}/")
    expect(page.locator("#eval-items tbody tr")).to_have_count(4)
    expect(page.locator("#eval-answers-live")).to_be_visible()
    page.evaluate("window.__noReload = true")
    for index, text in ((4, "billing"), (5, "<script>window.__xss = 1</script>late")):
        prompt = [{"role": "user", "content": f"late ticket {index}"}]
        EvalItem.objects.create(evaluation=trained, index=index, task_key=task_key(prompt), prompt=prompt,
                                item={"reference_answer": "shipping"}, output_text=text, reward=0.0)
    Evaluation.objects.filter(pk=trained.pk).update(done_items=6)
    expect(page.locator("#eval-items tbody tr")).to_have_count(6, timeout=15_000)
    expect(page.locator("#eval-items tbody tr").last).to_contain_text("<script>window.__xss = 1</script>late")
    assert page.evaluate("window.__noReload") is True and page.evaluate("window.__xss") is None
    shot(page, "answers-streaming")
    Evaluation.objects.filter(pk=trained.pk).update(status=EvalStatus.COMPLETED)
    expect(page.locator("#eval-status")).to_have_text("Completed", timeout=15_000)
    expect(page.locator("#eval-answers-live")).to_have_count(0, timeout=15_000)
    expect(page.locator("#eval-answers[hx-trigger]")).to_have_count(0)
