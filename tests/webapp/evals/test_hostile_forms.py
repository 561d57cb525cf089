"""Hostile form posts to the playground and the blind A/B review: a clear refusal (or the
value cleaned), never a server error."""

import pytest

from tests.webapp.evals.test_ab import review  # noqa: F401 - the fixture
from webapp.evals import ab
from webapp.evals.models import AbPick

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("task", ["9" * 40, "²", "١٢"])
def test_playground_task_ids_that_are_no_row_id(project_with_roles, client_for, task):
    project, users = project_with_roles
    client = client_for(users["viewer"])
    base = f"/p/{project.slug}/playground/"
    assert client.get(base, {"task": task}).status_code in (200, 404)
    assert client.post(base + "grade/", {"task": task, "grader": "x", "answer": "a"}).status_code in (200, 404)
    stream = client.post(base + "stream/", {"model": "smollm2-135m-instruct", "task": task})
    assert stream.status_code in (200, 400, 404)


@pytest.mark.parametrize("field, value", [("temperature", "nan"), ("temperature", "inf"), ("max_tokens", "1e5"),
                                          ("max_tokens", "9" * 5000)])
def test_playground_numbers_that_are_no_numbers(project_with_roles, client_for, field, value):
    project, users = project_with_roles
    r = client_for(users["viewer"]).post(f"/p/{project.slug}/playground/stream/",
                                         {"model": "smollm2-135m-instruct", "message": "hi", field: value})
    assert r.status_code == 400
    assert b"must be numbers" in b"".join(r.streaming_content)


def test_ab_pick_note_with_nul_and_bad_fields(review, client_for):  # noqa: F811
    rv, users = review
    client = client_for(users["viewer"])
    url = f"/p/{rv.project.slug}/evals/review/{rv.pk}/"
    key = ab.shared_tasks(rv)[0]
    assert client.post(url, {"task_key": "x" * 100_000, "pick": "first"}).status_code == 400
    assert client.post(url, {"task_key": key, "pick": "left" * 1000}).status_code == 400
    # a NUL is refused for every form by the middleware, before anything is stored
    assert client.post(url, {"task_key": key, "pick": "first", "note": "a\x00b"}).status_code == 400
    assert not AbPick.objects.filter(review=rv, task_key=key).exists()
    assert client.post(url, {"task_key": key, "pick": "first", "note": "ab" + "n" * 100_000}).status_code == 302
    note = AbPick.objects.get(review=rv, task_key=key).note
    assert "\x00" not in note and note.startswith("ab") and len(note) <= ab.MAX_NOTE
