"""An evaluation's answers as review sources: through `POST /v1/reviews` (eval_item_id) and the
queue page's "From an evaluation" form; the agreement is measured on them like run answers."""

import pytest
from django.urls import reverse
from django.utils.html import escape

from tests.webapp.reviews.calibration import STRICT, answers
from trainer.grading import run_grader
from webapp.evals.models import EvalItem, EvalStatus, Evaluation
from webapp.graders.services import grader_create
from webapp.projects.models import Project
from webapp.reviews.models import ItemGrade, ReviewItem, Source
from webapp.runs.hooks import task_key

pytestmark = pytest.mark.django_db


def make_evaluation(project, dataset, grader, user):
    """A finished evaluation whose first answers are the 10 calibration answers."""
    tasks = list(dataset.tasks.order_by("position")[:10])
    ev = Evaluation.objects.create(project=project, name="Base model on sums", model_name="tiny", base_model="tiny",
                                   dataset=dataset, grader=grader, grader_spec=grader.spec,
                                   status=EvalStatus.COMPLETED, total_items=10, done_items=10, created_by=user)
    for i, (task, (row, text, _)) in enumerate(zip(tasks, answers([t.data for t in tasks]), strict=True)):
        grade = run_grader(grader.spec, text, row)
        EvalItem.objects.create(
            evaluation=ev, index=i, task_key=task_key(row["messages"]), task_id=task.pk, prompt=row["messages"],
            item={k: v for k, v in row.items() if k != "messages"}, output_text=text, reward=grade.reward,
            sub_rewards=grade.sub_rewards,
            samples=[{"output_text": text, "reward": grade.reward, "sub_rewards": grade.sub_rewards},
                     {"output_text": "second answer", "reward": 0.0, "sub_rewards": {}}])
    return ev


@pytest.fixture
def setup(project_with_roles, dataset):
    project, users = project_with_roles
    grader = grader_create(project=project, name="Sums rubric", spec=STRICT, user=users["owner"], dataset=dataset)
    ev = make_evaluation(project, dataset, grader, users["owner"])
    return project, users, grader, ev


def test_reviews_api_accepts_an_evaluation_item(setup, api_client_for):
    project, users, grader, ev = setup
    api = api_client_for(users["viewer"], project)
    verdicts = [v for _, _, v in answers([t.data for t in ev.dataset.tasks.order_by("position")[:10]])]
    for it, verdict in zip(ev.items.order_by("index"), verdicts, strict=True):
        for criterion, score in verdict.items():
            r = api.post("/v1/reviews", {"grader_id": grader.pk, "eval_item_id": it.pk, "criterion": criterion,
                                         "score": score}, content_type="application/json")
            assert r.status_code == 200, r.content
            assert r.json()["eval_item_id"] == it.pk and r.json()["sample_id"] is None
    items = ReviewItem.objects.filter(grader_name=grader.name)
    assert items.count() == 10 and {i.source for i in items} == {Source.EVALUATION}
    first = items.get(eval_item__index=0)
    # the first answer, its task (reference editable) and the evaluation grader's score of it
    assert first.output_text == ev.items.get(index=0).output_text and first.task.dataset_id == ev.dataset_id
    assert ItemGrade.objects.get(item=first).reward == ev.items.get(index=0).samples[0]["reward"]
    body = api.get(f"/v1/graders/{grader.pk}/agreement").json()
    # same 10 answers and verdicts as the run-based calibration: 80 % overall, "correct" at 60 %
    assert body["overall"]["agreement"] == 0.8 and body["overall"]["items"] == 10
    assert body["criteria"]["correct"]["agreement"] == 0.6
    # deleting the evaluation keeps the experts' scores and the answers they scored
    ev.delete()
    assert ReviewItem.objects.filter(grader_name=grader.name, eval_item__isnull=True).count() == 10
    assert api.get(f"/v1/graders/{grader.pk}/agreement").json()["overall"]["agreement"] == 0.8


def test_reviews_api_refuses_another_projects_evaluation_item(setup, api_client_for, sample_rows):
    project, users, grader, ev = setup
    other = Project.objects.get(name="Other team")
    foreign = Evaluation.objects.create(project=other, model_name="tiny", base_model="tiny", grader_spec=STRICT,
                                        status=EvalStatus.COMPLETED)
    prompt = [{"role": "user", "content": "hi"}]
    foreign_item = EvalItem.objects.create(evaluation=foreign, index=0, task_key=task_key(prompt), prompt=prompt,
                                           item={}, output_text="secret", reward=1)
    for user, item_id in ((users["viewer"], foreign_item.pk), (users["outsider"], ev.items.first().pk)):
        r = api_client_for(user).post("/v1/reviews", {"grader_id": grader.pk, "eval_item_id": item_id, "score": 1},
                                      content_type="application/json")
        assert r.status_code == 404, r.content
    r = api_client_for(users["viewer"], project).post(
        "/v1/reviews", {"grader_id": grader.pk, "eval_item_id": "x1", "score": 1}, content_type="application/json")
    assert r.status_code == 400 and r.json()["error"]["param"] == "eval_item_id"
    assert not ReviewItem.objects.exists()


def test_queue_page_adds_an_evaluations_answers(setup, client_for):
    project, users, grader, ev = setup
    named, ev.name = ev.name, ""  # unnamed: the page names it as the Evaluations pages do, never by a raw model path
    ev.save(update_fields=["name"])
    page = client_for(users["editor"]).get(reverse("reviews:grader", args=[project.slug, grader.pk])).content.decode()
    assert 'id="add-from-evaluation"' in page and f'value="{ev.pk}"' in page
    assert f'value="{ev.pk}">{escape(ev.label)} · ' in page and ev.model_name not in page
    ev.name = named
    ev.save(update_fields=["name"])
    url = reverse("reviews:add", args=[project.slug, grader.pk])
    r = client_for(users["viewer"]).post(url, {"source": "evaluation", "evaluation": ev.pk, "count": "4"})
    assert r.status_code == 403 and not ReviewItem.objects.exists()
    editor = client_for(users["editor"])
    r = editor.post(url, {"source": "evaluation", "evaluation": ev.pk, "count": "4"}, follow=True)
    assert "Added 4 answers of evaluation “Base model on sums”" in r.content.decode()
    assert sorted(ReviewItem.objects.values_list("eval_item__index", flat=True)) == [0, 2, 5, 7]
    editor.post(url, {"source": "evaluation", "evaluation": ev.pk, "count": "200"})
    assert ReviewItem.objects.count() == 10  # new ones only, no duplicates
    r = editor.post(url, {"source": "evaluation", "evaluation": ev.pk, "count": "5"}, follow=True)
    assert "no answers left" in r.content.decode()
    # the queue now serves them to experts, blind
    nxt = editor.get(reverse("reviews:next", args=[project.slug, grader.pk]))
    page = editor.get(nxt.url).content.decode()
    assert "/items/" in nxt.url and "grader:" not in page
    # the answer names the evaluation it came from, linked to that task on its page
    assert f'href="/p/{project.slug}/evals/{ev.pk}/#task-' in page and "Base model on sums</a>" in page
