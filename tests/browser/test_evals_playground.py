"""The playground in a real browser: two models side by side (the tiny base model and a trained
checkpoint, answered by the real inference engine), a task picked from a dataset, answers
streaming in, then every criterion's score from the grader."""

import pytest
from playwright.sync_api import expect

from tests.helpers import rft_row
from tests.webapp.evals.conftest import RUBRIC, make_adapter_checkpoint
from tests.webapp.evals.engine import running_engine

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def engine_url(tmp_path_factory):
    with running_engine(tmp_path_factory.mktemp("engine") / "engine.log") as url:
        yield url


@pytest.fixture
def world(django_user_model, settings, engine_url, tmp_path_factory):
    from tests.trainer.engine.conftest import make_tiny_model
    from webapp.datasets.services import dataset_create_from_rows
    from webapp.evals.exports import export_merged_execute
    from webapp.graders.services import grader_create
    from webapp.projects.services import project_create
    from webapp.runs.models import LocalBaseModel, Run, RunCheckpoint, RunStatus

    settings.STUDIO_INFERENCE_URL = engine_url
    base = make_tiny_model(tmp_path_factory.mktemp("pg-tiny") / "model")
    LocalBaseModel.objects.create(name="tiny", path=str(base))
    user = django_user_model.objects.create_user("expert", password="pw-expert")
    project = project_create(name="Support triage", owner=user)
    rows = [rft_row(f"Route this ticket: {t}", "billing") for t in ("double charge", "refund", "invoice")]
    dataset = dataset_create_from_rows(project=project, name="Tickets", user=user, train_rows=rows, valid_rows=rows[:1])
    grader_create(project=project, name="rubric", spec=RUBRIC, user=user)
    run = Run.objects.create(project=project, dataset=dataset, grader_spec=RUBRIC, base_model="tiny",
                             suffix="triage", status=RunStatus.SUCCEEDED, total_steps=4)
    folder = make_adapter_checkpoint(base, settings.STUDIO_DATA_DIR / "runs" / run.pk / "step-000004")
    ckpt = RunCheckpoint.objects.create(run=run, step=4, path=str(folder), valid_reward=0.5)
    Run.objects.filter(pk=run.pk).update(fine_tuned_model=f"ft:tiny:triage:{run.pk}")
    export_merged_execute(checkpoint_id=ckpt.pk)
    return project, run


def test_two_models_stream_side_by_side_and_are_graded(page, live_server, world, shot):
    project, run = world
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "expert")
    page.fill("input[name=password]", "pw-expert")
    page.click("button:has-text('Log in')")
    page.goto(f"{live_server.url}/p/{project.slug}/playground/")
    page.select_option("#pg-model", "tiny")
    page.select_option("#pg-compare", f"ft:tiny:triage:{run.pk}")
    page.select_option("#pg-dataset", label="Tickets v1")
    expect(page.locator("#pg-task option")).to_have_count(5)  # none + 3 train + 1 validation
    page.select_option("#pg-task", index=1)
    page.select_option("#pg-grader", label="rubric v1")
    page.click("text=System prompt and settings")
    page.fill("#pg-max", "12")
    page.click("#pg-send")
    slots = page.locator("#pg-answers [data-slot]")
    for i in range(2):
        expect(slots.nth(i)).to_have_attribute("data-graded", "1", timeout=60_000)
        expect(slots.nth(i).locator(".pill[data-criterion]")).to_have_count(2)
        expect(slots.nth(i).locator(".pg-meta")).to_contain_text("tokens")
        assert slots.nth(i).get_attribute("data-state") == "done"
    expect(slots.nth(0).locator(".pg-title")).to_have_text("tiny (base model)")
    expect(slots.nth(1).locator(".pg-title")).to_contain_text("triage: trained, best checkpoint (step 4)")
    shot(page, "playground-side-by-side-graded")

    # a typed message, one model only
    page.select_option("#pg-task", index=0)
    page.select_option("#pg-compare", "")
    page.fill("#pg-message", "Hello <b>there</b>")
    page.click("#pg-send")
    expect(slots.nth(0)).to_have_attribute("data-state", "done", timeout=60_000)
    expect(slots.nth(1)).to_be_hidden()
    expect(slots.nth(0).locator(".pg-grade")).to_be_empty()
    shot(page, "playground-typed-message")
