"""Hostile bodies to /v1/chat/completions and the Evals API: each is a 400 naming the field,
never a server error or unbounded work."""

from __future__ import annotations

import copy
import json

import pytest
from django.test import Client
from django.urls import reverse

from tests.webapp.test_permissions import EVAL_BODY, make_objects

pytestmark = pytest.mark.django_db


def nested(depth: int, leaf):
    for _ in range(depth):
        leaf = {"a": leaf}
    return leaf


@pytest.fixture
def api(project_with_roles, make_user, api_key_for):
    project, users = project_with_roles
    objs = make_objects(project, users, make_user)
    client = Client(headers={"Authorization": f"Bearer {api_key_for(users['owner'])}",
                             "OpenAI-Project": project.slug}, raise_request_exception=False)

    def post(name, body, **kwargs):
        return client.post(reverse(name, kwargs=kwargs), json.dumps(body), content_type="application/json")
    return post, objs


def bad(response, param_part: str | None):
    assert response.status_code == 400, (response.status_code, response.content[:300])
    error = response.json()["error"]
    assert error["message"]
    if param_part is None:  # refused by the JSON parser (nested over its depth limit)
        assert error["code"] == "parse_error", error
    else:
        assert param_part in (error.get("param") or ""), error


CHAT = {"model": "ft:x:ftjob-none", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("change, param", [
    ({"messages": [{"role": "user", "content": "hi"}] * 100_000}, "messages"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": nested(900, "x")}]}]}, None),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": nested(20, "x")}]}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}] * 200_001}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": 12}]}, "messages[0].content"),
    ({"messages": [{"role": ["user"], "content": "hi"}]}, "messages[0].role"),
    ({"n": 10_000}, "n"), ({"n": "2"}, "n"), ({"max_tokens": 10**30}, "max_tokens"),
    ({"max_tokens": 2.5}, "max_tokens"), ({"temperature": 1e308}, "temperature"),
    ({"temperature": "hot"}, "temperature"), ({"top_p": 0}, "top_p"),
    ({"stop": ["x" * 1_000_000]}, "stop"), ({"stop": ["a"] * 1000}, "stop"),
])
def test_chat_hostile_fields_are_400s_naming_the_field(api, change, param):
    post, _ = api
    bad(post("api_chat_completions", {**CHAT, **change}), param)


def test_chat_total_conversation_size_is_bounded(api):
    post, _ = api
    body = {**CHAT, "messages": [{"role": "user", "content": "x" * 100_000}] * 60}  # 6 MB in all
    bad(post("api_chat_completions", body), "messages")


def eval_body(**change):
    body = copy.deepcopy(EVAL_BODY)
    body.update(change)
    return body


def test_evals_hostile_definitions(api):
    post, _ = api
    deep_schema = {"type": "object"}
    for _ in range(25):  # deep, yet within the JSON parser's depth limit
        deep_schema = {"type": "object", "properties": {"a": deep_schema}}
    deep = post("api_evals", eval_body(data_source_config={"type": "custom", "item_schema": deep_schema}))
    assert deep.status_code == 200, deep.content[:300]  # a deep schema the parser takes is a fine schema
    wide = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(200_000)}}
    bad(post("api_evals", eval_body(data_source_config={"type": "custom", "item_schema": wide})), "item_schema")
    bad(post("api_evals", eval_body(testing_criteria=[EVAL_BODY["testing_criteria"][0]] * 5000)),
        "testing_criteria")


def test_eval_runs_hostile_items_and_templates(api):
    post, objs = api
    url = {"eval_id": objs["eval"]}
    many = {"name": "r", "data_source": {"type": "jsonl", "source": {"type": "file_content",
                                                                       "content": [{"item": {}}] * 600_000}}}
    response = post("api_eval_runs", many, **url)
    assert response.status_code in (400, 413), response.status_code
    deep = {"name": "r", "data_source": {"type": "jsonl", "source": {"type": "file_content", "content": [
        {"item": nested(900, "x"), "sample": {"output_text": "a"}}]}}}
    bad(post("api_eval_runs", deep, **url), None)
    bomb = "{{" * 50_000 + "item.q" + "}}" * 50_000
    body = {"name": "r", "data_source": {
        "type": "completions", "model": "smollm2-135m-instruct",
        "source": {"type": "file_content", "content": [{"item": {"q": "b"}}]},
        "input_messages": {"type": "template", "template": [{"role": "user", "content": bomb}]}}}
    bad(post("api_eval_runs", body, **url), "input_messages.template[0].content")
    body["data_source"]["input_messages"]["template"] = [{"role": "user", "content": "{{item.q}}"}] * 100_000
    bad(post("api_eval_runs", body, **url), "input_messages.template")


@pytest.mark.parametrize("item_id", ["outputitem_²", "outputitem_١", "outputitem_" + "9" * 40])
def test_output_item_ids_that_are_no_row_id_are_404s(api, project_with_roles, api_key_for, item_id):
    _, objs = api
    project, users = project_with_roles
    client = Client(headers={"Authorization": f"Bearer {api_key_for(users['owner'])}",
                             "OpenAI-Project": project.slug}, raise_request_exception=False)
    r = client.get(reverse("api_eval_run_output_item_detail", kwargs={
        "eval_id": objs["eval"], "run_id": objs["evaluation"], "output_item_id": item_id}))
    assert r.status_code == 404 and r.json()["error"]["param"] == "output_item_id"
    r = client.get(reverse("api_eval_run_output_items", kwargs={"eval_id": objs["eval"], "run_id": objs["evaluation"]}),
                   {"after": item_id})
    assert r.status_code == 400 and r.json()["error"]["param"] == "after"
