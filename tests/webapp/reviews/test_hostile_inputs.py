"""Hostile inputs to the review API and forms: a clear 400 naming the field, never a 500."""

import json

import pytest
from django.urls import reverse

from tests.webapp.reviews.calibration import make_calibration_run
from webapp.reviews.models import Review, ReviewItem

pytestmark = pytest.mark.django_db


@pytest.fixture
def calibration(project_with_roles, dataset):
    project, users = project_with_roles
    grader, run, verdicts = make_calibration_run(project, dataset, users["owner"])
    return project, users, grader, run


def test_reviews_api_hostile_bodies(calibration, api_client_for):
    project, users, grader, run = calibration
    api = api_client_for(users["owner"], project)
    sample = run.samples.first()

    def post(raw=None, **body):
        data = raw if raw is not None else json.dumps({"grader_id": grader.pk, **body})
        return api.post("/v1/reviews", data, content_type="application/json")

    for bad in ("inf", "-inf", "1e400", "nan", "x" * 10_000, [1], {"a": 1}, True, 10**30):
        r = post(sample_id=sample.pk, score=bad)
        assert r.status_code == 400 and r.json()["error"]["param"] == "score", bad
    r = post(sample_id=sample.pk, criterion="c" * 100_000, score=1)
    assert r.status_code == 400 and r.json()["error"]["param"] == "criterion"
    assert len(r.json()["error"]["message"]) < 1000  # the name is not echoed whole
    r = post(sample_id=sample.pk, criterion="x" * 150, score=1)
    assert r.status_code == 400 and r.json()["error"]["param"] == "criterion"
    assert len(r.json()["error"]["message"]) < 300
    r = post(sample_id=sample.pk, score=1, reviewer_note="n" * 2_000_000)
    assert r.status_code == 400 and r.json()["error"]["param"] == "reviewer_note"
    assert not Review.objects.exists()
    messages = [{"role": "user", "content": "What is 1 + 1?"}]
    r = post(item={"messages": messages, "reference_answer": "r" * 2_000_000}, output_text="2", score=1)
    assert r.status_code == 400 and r.json()["error"]["param"] == "item"
    nested: dict = {}
    for _ in range(60):
        nested = {"a": nested}
    r = post(item={"messages": messages, "deep": nested}, output_text="2", score=1)
    assert r.status_code == 400 and r.json()["error"]["param"] == "item"
    r = post(item={"messages": messages}, output_text="o" * 200_000, score=1)
    assert r.status_code == 400 and r.json()["error"]["param"] == "output_text"
    deep = '{"grader_id": "' + grader.pk + '", "item": ' + "[" * 5000 + "]" * 5000 + "}"
    assert post(raw=deep).status_code == 400
    assert not ReviewItem.objects.filter(source="pasted").exists()


def test_review_form_hostile_scores(calibration, client_for):
    project, users, grader, run = calibration
    owner = client_for(users["owner"])
    from webapp.reviews import services

    item = services.review_items_add_from_run(grader=grader, run=run, count=1, user=users["owner"])[0]
    url = reverse("reviews:item", args=[project.slug, grader.pk, item.pk])
    for bad in ("inf", "nan", "1e999", "9" * 5000, "abc"):
        r = owner.post(url, {"score-correct": bad})
        assert r.status_code == 400 and "“correct”" in r.content.decode(), bad
    r = owner.post(url, {"score-correct": "1", "note": "n" * 200_000})
    assert r.status_code == 400 and "note" in r.content.decode()
    assert not Review.objects.exists()


def test_paste_form_hostile(calibration, client_for):
    project, users, grader, run = calibration
    owner = client_for(users["owner"])
    url = reverse("reviews:add", args=[project.slug, grader.pk])
    task = grader.dataset.tasks.first()
    for data in ({"task": str(task.pk), "output_text": "o" * 200_000},
                 {"task": "9" * 40, "output_text": "x"},
                 {"source": "run", "run": run.pk, "count": "9" * 5000},
                 {"source": "run", "run": run.pk, "count": "-5"}):
        r = owner.post(url, data, follow=True)
        assert r.status_code in (200, 404), data
    assert not ReviewItem.objects.filter(source="pasted").exists()
