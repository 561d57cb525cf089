"""The sample browser and GET /v1/fine_tuning/jobs/{id}/samples are one filter and sort
(webapp.runs.review): the same query gives the same samples in the same order."""

import re

import pytest
from django.urls import reverse

from tests.webapp.runs.factories import make_run
from webapp.runs.models import RunSample

QUERIES = [
    {},
    {"order": "step"},
    {"order": "best"},
    {"order": "worst", "split": "train"},
    {"min_step": 3, "max_step": 6, "order": "best"},
    {"split": "valid"},
    {"min_reward": 0.6, "max_reward": 0.85},
    {"criterion": "polite", "min_score": 0.5, "order": "worst"},
    {"criterion": "correct", "max_score": 0.5},
    {"errors": 1},
    {"feedback": 1, "order": "step"},
]


@pytest.fixture
def run(project_with_roles, dataset):
    project, users = project_with_roles
    run = make_run(project, dataset, users["owner"], steps=8, samples_per_step=2, eval_interval=4)
    RunSample.objects.filter(pk=run.samples.order_by("id").first().pk).update(errors={"other_error": True})
    sample = run.samples.order_by("-id").first()
    sample.feedback.create(user=users["editor"], criterion="polite")
    return run


def page_ids(client, run, query):
    url = reverse("runs:samples", args=[run.project.slug, run.pk])
    body = client.get(url, query).content.decode()
    return [int(x) for x in re.findall(r'<article class="card sample" id="sample-(\d+)"', body)]


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: "&".join(f"{k}={v}" for k, v in q.items()) or "default")
def test_page_and_api_return_the_same_samples_in_the_same_order(run, project_with_roles, client_for,
                                                               api_client_for, query):
    _, users = project_with_roles
    page = page_ids(client_for(users["viewer"]), run, query)
    api = api_client_for(users["viewer"], run.project).get(f"/v1/fine_tuning/jobs/{run.pk}/samples",
                                                          {**query, "limit": 20})
    assert api.status_code == 200, api.content
    assert page and [s["id"] for s in api.json()["data"]] == page


@pytest.mark.parametrize(("query", "param"), [
    ({"min_step": "x"}, "min_step"), ({"max_reward": "nan"}, "max_reward"), ({"order": "random"}, "order"),
    ({"split": "test"}, "split"), ({"criterion": "nonexistent"}, "criterion"),
])
def test_what_the_page_ignores_and_says_the_api_refuses_naming_the_parameter(run, project_with_roles, client_for,
                                                                            api_client_for, query, param):
    _, users = project_with_roles
    page = client_for(users["viewer"]).get(reverse("runs:samples", args=[run.project.slug, run.pk]), query)
    assert page.status_code == 200 and 'class="notice"' in page.content.decode()
    api = api_client_for(users["viewer"], run.project).get(f"/v1/fine_tuning/jobs/{run.pk}/samples", query)
    assert api.status_code == 400 and api.json()["error"]["param"] == param
