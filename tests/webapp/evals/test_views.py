"""Evaluation pages through the real URL stack: list, new, detail, compare and the run
page's before/after summary, with roles and other projects' objects."""

import pytest

from tests.webapp.evals.conftest import RUBRIC
from tests.webapp.evals.factories import make_eval
from tests.webapp.runs.factories import make_run
from webapp.evals.models import EvalPurpose, EvalStatus, Evaluation
from webapp.runs.models import RunStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def finished_run(dataset, project_with_roles):
    project, users = project_with_roles
    run = make_run(project, dataset, users["owner"], status=RunStatus.SUCCEEDED, suffix="sums")
    base = make_eval(project, run, EvalPurpose.RUN_BASE, [0.0, 0.5, 1.0, 0.5, 0.2])
    trained = make_eval(project, run, EvalPurpose.RUN_TRAINED, [1.0, 0.5, 0.5, 1.0, 0.9], crit={0: 1.0})
    return project, users, run, base, trained


def test_run_page_leads_with_before_after(finished_run, client_for):
    project, users, run, base, trained = finished_run
    html = client_for(users["viewer"]).get(f"/p/{project.slug}/runs/{run.pk}/").content.decode()
    assert "base model 0.440" in html and "trained model 0.780" in html
    assert "better on 3 tasks, worse on 1, same on 1" in html
    assert 'id="eval-criteria-chart"' in html and 'data-criterion="short"' in html
    # the task that changed most comes first and links to the comparison
    changed = html[html.index('id="eval-changed"'):]
    assert changed.index("task 1:") < changed.index("task 3:")
    assert f"?a={base.pk}&amp;b={trained.pk}#task-" in changed
    assert "<b>0</b>" not in html  # the prompt is escaped


def test_summary_shows_progress_while_evaluating(finished_run, client_for):
    project, users, run, base, trained = finished_run
    Evaluation.objects.filter(pk=trained.pk).update(status=EvalStatus.IN_PROGRESS, done_items=2)
    html = client_for(users["viewer"]).get(f"/p/{project.slug}/evals/run/{run.pk}/summary/").content.decode()
    assert "Measuring base model vs trained model" in html and "2 of 5 tasks" in html and "every 4s" in html


def test_compare_page_win_tie_loss_sorting_and_escaping(finished_run, client_for):
    project, users, run, base, trained = finished_run
    c = client_for(users["viewer"])
    html = c.get(f"/p/{project.slug}/evals/compare/?a={base.pk}&b={trained.pk}").content.decode()
    assert "better on 3 tasks, worse on 1, same on 1" in html
    assert html.count('data-outcome="better"') == 3 and html.count('data-outcome="worse"') == 1
    assert "&lt;i&gt;answer 0 of run_base&lt;/i&gt;" in html and "<i>answer" not in html
    assert "ref 0" in html and 'data-criterion="has_a"' in html
    worse_first = c.get(f"/p/{project.slug}/evals/compare/?a={base.pk}&b={trained.pk}&order=worse").content.decode()
    assert worse_first.index('data-outcome="worse"') < worse_first.index('data-outcome="better"')
    only_worse = c.get(f"/p/{project.slug}/evals/compare/?a={base.pk}&b={trained.pk}&outcome=worse").content.decode()
    assert only_worse.count("<article") == 1


def test_pages_and_roles(finished_run, client_for, tiny_model_path):
    project, users, run, base, trained = finished_run
    viewer, editor, outsider = (client_for(users[r]) for r in ("viewer", "editor", "outsider"))
    assert viewer.get(f"/p/{project.slug}/evals/").status_code == 200
    assert viewer.get(f"/p/{project.slug}/evals/{base.pk}/").status_code == 200
    assert viewer.get(f"/p/{project.slug}/evals/new/").status_code == 403
    assert outsider.get(f"/p/{project.slug}/evals/{base.pk}/").status_code == 404
    assert outsider.get(f"/p/{project.slug}/evals/compare/?a={base.pk}&b={trained.pk}").status_code == 404
    assert viewer.post(f"/p/{project.slug}/evals/{base.pk}/cancel/").status_code == 403
    page = editor.get(f"/p/{project.slug}/evals/new/").content.decode()
    assert "smollm2-135m-instruct (base model)" in page
    bad = editor.post(f"/p/{project.slug}/evals/new/", {"model": "nope"})
    assert bad.status_code == 400 and "Select a valid choice" in bad.content.decode()


def test_new_evaluation_form_queues_one(project_with_roles, dataset, client_for):
    from webapp.graders.services import grader_create

    project, users = project_with_roles
    grader = grader_create(project=project, name="rubric", spec=RUBRIC, user=users["owner"])
    c = client_for(users["editor"])
    response = c.post(f"/p/{project.slug}/evals/new/", {
        "model": "smollm2-135m-instruct", "dataset": dataset.pk, "split": "valid", "grader": grader.pk,
        "answers": 3, "variety": "0.8", "longest": 32, "name": "three tries"})
    ev = Evaluation.objects.get(name="three tries")
    assert response.status_code == 302 and response["Location"].endswith(f"/evals/{ev.pk}/")
    assert ev.sampling == {"n_samples": 3, "max_completion_tokens": 32, "temperature": 0.8}
    assert ev.status == EvalStatus.QUEUED and ev.total_items == dataset.tasks.filter(split="valid").count()
    html = c.get(response["Location"]).content.decode()
    assert "every 3s" in html and "3 answers per task" in html


def test_an_older_succeeded_run_can_be_evaluated_from_its_page(dataset, project_with_roles, client_for, tiny_model_path):
    from webapp.runs.models import LocalBaseModel

    project, users = project_with_roles
    LocalBaseModel.objects.create(name="tiny", path=str(tiny_model_path))
    run = make_run(project, dataset, users["owner"], status=RunStatus.SUCCEEDED, base_model="tiny")
    editor = client_for(users["editor"])
    page = editor.get(f"/p/{project.slug}/runs/{run.pk}/").content.decode()
    assert 'id="run-evaluate"' in page
    # the offer comes after the run's own answer (validation and trend), not before it
    assert page.index('id="run-live"') < page.index('id="run-evaluate"') < page.index('id="run-findings"')
    assert page.count('id="run-eval-summary"') == 1
    assert 'id="run-evaluate"' not in client_for(users["viewer"]).get(f"/p/{project.slug}/runs/{run.pk}/").content.decode()
    response = editor.post(f"/p/{project.slug}/evals/run/{run.pk}/evaluate/")
    assert response.status_code == 302
    assert sorted(run.evaluations.values_list("purpose", flat=True)) == ["run_base", "run_trained"]
    assert "Measuring base model vs trained model" in editor.get(f"/p/{project.slug}/runs/{run.pk}/").content.decode()


def test_answers_stream_in_while_the_evaluation_runs(finished_run, client_for):
    """The detail page's answers table polls its partial while running; new answers show
    there (escaped) without a reload, and polling stops once the evaluation is finished."""
    from webapp.evals.models import EvalItem
    from webapp.runs.hooks import task_key

    project, users, run, base, trained = finished_run
    Evaluation.objects.filter(pk=trained.pk).update(status=EvalStatus.IN_PROGRESS, total_items=7, done_items=5)
    viewer = client_for(users["viewer"])
    partial = f"/p/{project.slug}/evals/{trained.pk}/items/"
    html = viewer.get(f"/p/{project.slug}/evals/{trained.pk}/").content.decode()
    assert f'hx-get="{partial}?page=1" hx-trigger="every 3s"' in html and "New answers appear here" in html
    prompt = [{"role": "user", "content": "late task"}]
    EvalItem.objects.create(evaluation=trained, index=5, task_key=task_key(prompt), prompt=prompt, item={},
                            output_text="<img src=x onerror=alert(1)> streamed", reward=1.0)
    rows = viewer.get(partial, {"page": "1"}).content.decode()
    assert 'id="eval-answers"' in rows
    assert rows.count("<tr id=\"task-") == 6 and "&lt;img src=x onerror=alert(1)&gt; streamed" in rows
    assert 'hx-trigger="every 3s"' in rows
    Evaluation.objects.filter(pk=trained.pk).update(status=EvalStatus.COMPLETED, done_items=7)
    final = viewer.get(partial).content.decode()
    assert "hx-trigger" not in final and "New answers appear" not in final and final.count('<tr id="task-') == 6
    assert client_for(users["outsider"]).get(partial).status_code == 404
