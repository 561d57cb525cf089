"""An eval run made through the Evals API with the openai SDK is an evaluation the expert
reads in the browser: listed on the Evaluations page, its answers (escaped) on its page."""

import pytest
from openai import OpenAI
from playwright.sync_api import expect

from webapp.evals.openai_evals import eval_run_execute

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_sdk_run_shows_on_the_evaluation_pages(page, live_server, shot, django_user_model):
    from webapp.accounts.services import api_key_create
    from webapp.projects.services import project_create

    user = django_user_model.objects.create_user("expert", password="pw-expert")
    project = project_create(name="Support triage", owner=user)
    client = OpenAI(base_url=f"{live_server.url}/v1", api_key=api_key_create(user=user, name="k")[1],
                    max_retries=0, project=project.slug)
    ev = client.evals.create(
        name="ticket categories", data_source_config={"type": "custom", "item_schema": {"type": "object"}},
        testing_criteria=[{"type": "string_check", "name": "exact", "operation": "eq",
                           "input": "{{sample.output_text}}", "reference": "{{item.answer}}"}])
    rows = [("My card was charged twice", "billing", "billing"),
            ("The parcel never arrived", "shipping", "<script>alert(1)</script>"),
            ("App crashes on login", "technical", "technical")]
    content = [{"item": {"answer": a, "messages": [{"role": "user", "content": q}]},
                "sample": {"output_text": s}} for q, a, s in rows]
    run = client.evals.runs.create(ev.id, name="answers from the old system",
                                   data_source={"type": "jsonl", "source": {"type": "file_content",
                                                                            "content": content}})
    eval_run_execute(evaluation_id=run.id)
    run = client.evals.runs.retrieve(run.id, eval_id=ev.id)
    assert run.result_counts.passed == 2 and run.result_counts.failed == 1

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "expert")
    page.fill("input[name=password]", "pw-expert")
    page.click("button:has-text('Log in')")
    page.goto(f"{live_server.url}/p/{project.slug}/evals/")
    expect(page.locator("body")).to_contain_text("answers from the old system")
    shot(page, "evaluations-list")
    page.goto(run.report_url)
    expect(page.locator("body")).to_contain_text("My card was charged twice")
    expect(page.locator("body")).to_contain_text("<script>alert(1)</script>")  # shown as text, never run
    shot(page, "evaluation-detail")
