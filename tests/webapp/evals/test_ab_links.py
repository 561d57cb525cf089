"""A/B disagreements on real evaluation items: "Edit the task" and "Open the grader" lead to
pages that open, for the run's evaluations (grader known through the run) and for manual ones;
"Score both answers for the grader" puts the pair in the grader's calibration queue."""

import re

import pytest

from tests.webapp.evals.conftest import RUBRIC
from tests.webapp.evals.factories import make_eval
from tests.webapp.runs.factories import make_run
from webapp.evals import ab
from webapp.graders.services import grader_create
from webapp.reviews.models import ReviewItem, Source
from webapp.runs.models import RunStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def disagreeing(dataset, project_with_roles):
    """Run evaluations (grader only through the run) on 4 dataset tasks; the expert prefers the
    candidate everywhere, the grader prefers the baseline on tasks 2 and 3."""
    project, users = project_with_roles
    grader = grader_create(project=project, name="Short rubric", spec=RUBRIC, user=users["owner"], dataset=dataset)
    run = make_run(project, dataset, users["owner"], status=RunStatus.SUCCEEDED, grader=grader)
    tasks = list(dataset.tasks.order_by("position")[:4])
    prompts = [t.data["messages"][-1]["content"] for t in tasks]
    kwargs = {"prompts": prompts, "task_ids": [t.pk for t in tasks], "dataset": dataset}
    base = make_eval(project, run, "run_base", [0.0, 0.0, 1.0, 1.0], **kwargs)
    trained = make_eval(project, run, "run_trained", [1.0, 1.0, 0.0, 0.0], **kwargs)
    assert base.grader_id is None and trained.grader_id is None  # as run evaluations are made
    review = ab.ab_review_create(project=project, user=users["editor"], baseline=base, candidate=trained)
    for key in ab.shared_tasks(review):
        pair = ab.ab_pair(review=review, task_key=key)
        ab.ab_pick_record(review=review, user=users["viewer"], task_key=key,
                          pick="first" if pair["left"] == "candidate" else "second")
    return project, users, grader, review, tasks


def links(html: str, cls: str) -> list[str]:
    return re.findall(rf'<a class="{cls}" href="([^"]+)"', html)


def test_disagreement_links_open_the_task_and_the_grader(disagreeing, client_for):
    project, users, grader, review, tasks = disagreeing
    viewer = client_for(users["viewer"])
    html = viewer.get(f"/p/{project.slug}/evals/review/{review.pk}/results/").content.decode()
    assert html.count('class="card disagreement"') == 2
    task_links = links(html, "edit-task")
    assert sorted(task_links) == sorted(f"/p/{project.slug}/datasets/{t.dataset_id}/tasks/{t.pk}/" for t in tasks[2:])
    for task in tasks[2:]:
        page = viewer.get(f"/p/{project.slug}/datasets/{task.dataset_id}/tasks/{task.pk}/")
        assert page.status_code == 200 and f"&quot;id&quot;: &quot;{task.data['id']}&quot;" in page.content.decode()
    grader_links = links(html, "open-grader")
    assert grader_links == [f"/p/{project.slug}/graders/{grader.pk}/"] * 2
    assert viewer.get(grader_links[0]).status_code == 200
    assert "Score both answers for the grader" not in html  # viewers cannot add to the queue
    # a deleted task loses its link rather than leading to a 404
    tasks[2].delete()
    html = viewer.get(f"/p/{project.slug}/evals/review/{review.pk}/results/").content.decode()
    assert links(html, "edit-task") == [f"/p/{project.slug}/datasets/{tasks[3].dataset_id}/tasks/{tasks[3].pk}/"]


def test_a_disagreement_goes_to_the_graders_calibration_queue(disagreeing, client_for):
    project, users, grader, review, tasks = disagreeing
    editor = client_for(users["editor"])
    url = f"/p/{project.slug}/evals/review/{review.pk}/results/"
    assert "Score both answers for the grader" in editor.get(url).content.decode()
    key = next(d["pick"].task_key for d in ab.ab_results(review=review).disagreements)
    calibrate = f"/p/{project.slug}/evals/review/{review.pk}/calibrate/"
    assert client_for(users["viewer"]).post(calibrate, {"task_key": key}).status_code == 403
    r = editor.post(calibrate, {"task_key": key})
    assert r.status_code == 302 and f"/reviews/graders/{grader.pk}/items/" in r.url
    items = ReviewItem.objects.filter(grader_name=grader.name).order_by("pk")
    cand = review.candidate.items.get(task_key=key)
    assert [i.eval_item_id for i in items] == [cand.pk, review.baseline.items.get(task_key=key).pk]
    assert {i.source for i in items} == {Source.EVALUATION} and items[0].task_id == cand.task_id
    page = editor.get(r.url).content.decode()
    assert cand.output_text.replace("<", "&lt;").replace(">", "&gt;") in page  # escaped, blind
    editor.post(calibrate, {"task_key": key})  # again: no duplicates
    assert items.count() == 2
    bad = editor.post(calibrate, {"task_key": "nope"}, follow=True)
    assert "not part of the review" in bad.content.decode() and items.count() == 2
    assert client_for(users["outsider"]).post(calibrate, {"task_key": key}).status_code == 404
