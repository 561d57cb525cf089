"""Whatever an API client sends, the answer is never a 5xx: every /v1 endpoint, every method.

For each endpoint: raw bodies no JSON parser should choke on (100,000-deep nesting, NaN,
1e400, invalid UTF-8, NUL characters), a valid body with every field and sub-field
replaced in turn by values of the wrong type or out of range (a seed above 2^63, lists,
objects, huge numbers), and odd query parameters. A new /v1 URL without an entry in
`ENDPOINTS` fails `test_every_api_endpoint_is_fuzzed`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests.helpers import jsonl, rft_row
from tests.webapp.test_permissions import EVAL_BODY, GRADER_SPEC, make_objects

WRONG: list[Any] = [None, 0, -1, 2**64, 2**63, 1.5, 1e300, "", "x" * 5_000, "\u0000", [], {}, True,
                    [[[]]], {"a": {"b": [1, {"c": None}]}}, ["a", 1, None]]
RAW_BODIES: list[bytes] = [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    b'{"grader": ' + b"[" * 500 + b"]" * 500 + b"}",
    b"NaN", b'{"seed": NaN, "model": Infinity}', b'{"x": 1e400}', b'{"seed": -Infinity}',
    b'{"seed": 99999999999999999999999999999}', b"\xff\xfe\x00garbage", b"", b"null", b'"text"',
    b"123", b"[]", b"{", b'{"a": "\\u0000"}', b'{"name": "\\ud800"}',
]
BAD_QUERIES: list[dict[str, str]] = [
    {"limit": "abc"}, {"limit": "-1"}, {"limit": "1e999"}, {"limit": "99999999999999999999999"},
    {"after": "x" * 500}, {"after": "\u0000"}, {"after": "ftevent-99999999999999999999999"},
    {"order": "sideways"}, {"purpose": "x" * 300}, {"metadata[k__regex]": ".*"},
    {"metadata[a]": "x" * 600}, {"metadata": "x"}, {"metadata[]": "x"},
    {"after_step": "99999999999999999999999"}, {"after_step": "NaN"}, {"min_step": "1e400"},
    {"max_step": "-99999999999999999999999"}, {"split": "\u0000"}, {"name": "\u0000"},
]
WEIRD_IDS = ["x" * 300, "\u0000", "ftjob-%00", "grader-" + "9" * 40, "file-..", " "]


def job_body(objs) -> dict:
    return {"model": "smollm2-135m-instruct", "training_file": objs["file"], "seed": 1, "suffix": "s",
            "metadata": {"team": "tax"},
            "method": {"type": "reinforcement", "reinforcement": {
                "grader": copy.deepcopy(GRADER_SPEC), "hyperparameters": {"n_epochs": 1, "batch_size": 2}}}}


def grader_run_body(objs) -> dict:
    return {"grader": copy.deepcopy(GRADER_SPEC), "model_sample": "a", "item": {"reference_answer": "a"},
            "reference_answer": "a"}


def grader_save_body(objs) -> dict:
    return {"name": "g", "grader": copy.deepcopy(GRADER_SPEC), "dataset_id": objs["dataset"],
            "description": "d"}


def eval_run_body(objs) -> dict:
    """A completions run; every field of it is mutated (valid ones are queued, no worker runs here)."""
    return {"name": "r", "metadata": {"k": "v"}, "data_source": {
        "type": "completions", "model": "smollm2-135m-instruct",
        "source": {"type": "file_content", "content": [{"item": {"reference_answer": "a", "q": "b"},
                                                        "sample": {"output_text": "a"}}]},
        "input_messages": {"type": "template", "template": [{"role": "user", "content": "{{item.q}}"}]},
        "sampling_params": {"max_completion_tokens": 5, "temperature": 0.5, "top_p": 0.9, "seed": 1}}}


# url name -> (url kwargs from the objects, {method: valid JSON body factory, or None for GET/DELETE})
ENDPOINTS: dict[str, tuple[Callable[[dict], dict], dict[str, Callable[[dict], dict] | None]]] = {
    "api_files": (lambda o: {}, {"get": None, "post": "multipart"}),
    "api_file_detail": (lambda o: {"file_id": o["file"]}, {"get": None, "delete": None}),
    "api_file_content": (lambda o: {"file_id": o["file"]}, {"get": None}),
    "api_grader_validate": (lambda o: {}, {"post": lambda o: {"grader": copy.deepcopy(GRADER_SPEC)}}),
    "api_grader_run": (lambda o: {}, {"post": grader_run_body}),
    "api_graders": (lambda o: {}, {"get": None, "post": grader_save_body}),
    "api_grader_detail": (lambda o: {"grader_id": o["grader"]},
                          {"get": None, "post": grader_save_body, "delete": None}),
    "api_jobs": (lambda o: {}, {"get": None, "post": job_body}),
    "api_job_detail": (lambda o: {"job_id": o["run"]}, {"get": None}),
    "api_job_cancel": (lambda o: {"job_id": o["run"]}, {"post": lambda o: {}}),
    "api_job_pause": (lambda o: {"job_id": o["run"]}, {"post": lambda o: {}}),
    "api_job_resume": (lambda o: {"job_id": o["run"]}, {"post": lambda o: {}}),
    "api_job_events": (lambda o: {"job_id": o["run"]}, {"get": None}),
    "api_job_checkpoints": (lambda o: {"job_id": o["run"]}, {"get": None}),
    "api_job_metrics": (lambda o: {"job_id": o["run"]}, {"get": None}),
    "api_job_samples": (lambda o: {"job_id": o["run"]}, {"get": None}),
    "api_job_diagnosis": (lambda o: {"job_id": o["run"]}, {"get": None}),
    "api_dataset_difficulty": (lambda o: {"dataset_id": o["dataset"]}, {"get": None}),
    "api_reviews": (lambda o: {}, {"post": lambda o: {"grader_id": o["grader"], "sample_id": o["sample"],
                                                      "criterion": "", "score": 1, "reviewer_note": "n"}}),
    "api_grader_agreement": (lambda o: {"grader_id": o["grader"]}, {"get": None}),
    "api_grader_rescore": (lambda o: {"grader_id": o["grader"]}, {"post": lambda o: {}}),
    "api_checkpoint_download": (lambda o: {"job_id": o["run"], "checkpoint_id": o["checkpoint"]}, {"get": None}),
    # a model that does not exist: every field is checked before the model (and the engine) is reached
    "api_chat_completions": (lambda o: {}, {"post": lambda o: {
        "model": "ft:x:ftjob-none", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5,
        "temperature": 0.5, "top_p": 0.9, "n": 1, "seed": 1, "stop": ["x"], "stream": False}}),
    "api_models": (lambda o: {}, {"get": None}),
    "api_model_detail": (lambda o: {"model_id": "smollm2-135m-instruct"}, {"get": None}),
    "api_evals": (lambda o: {}, {"get": None, "post": lambda o: copy.deepcopy(EVAL_BODY)}),
    "api_eval_detail": (lambda o: {"eval_id": o["eval"]}, {"get": None, "post": lambda o: {
        "name": "n", "metadata": {"k": "v"}}}),
    "api_eval_runs": (lambda o: {"eval_id": o["eval"]}, {"get": None, "post": eval_run_body}),
    "api_eval_run_detail": (lambda o: {"eval_id": o["eval"], "run_id": o["evaluation"]}, {"get": None}),
    "api_eval_run_cancel": (lambda o: {"eval_id": o["eval"], "run_id": o["evaluation"]}, {"post": lambda o: {}}),
    "api_eval_run_output_items": (lambda o: {"eval_id": o["eval"], "run_id": o["evaluation"]}, {"get": None}),
    "api_eval_run_output_item_detail": (lambda o: {"eval_id": o["eval"], "run_id": o["evaluation"],
                                                   "output_item_id": o["output_item"]}, {"get": None}),
}


def api_url_names(patterns=None, prefix: str = "") -> Iterator[str]:
    for p in patterns if patterns is not None else get_resolver().url_patterns:
        route = prefix + str(p.pattern)
        if isinstance(p, URLResolver):
            yield from api_url_names(p.url_patterns, route)
        elif isinstance(p, URLPattern) and route.startswith("v1/"):
            yield p.name


def test_every_api_endpoint_is_fuzzed():
    names = set(api_url_names())
    assert names == set(ENDPOINTS), "add new /v1 endpoints to ENDPOINTS (and remove stale ones)"


def mutations(body: Any, path: tuple = ()) -> Iterator[tuple[str, Any]]:
    """(where, body with one field replaced) for every field and sub-field, every WRONG value;
    plus each object with one extra unknown key and each field removed."""
    if isinstance(body, dict):
        for key in list(body):
            for wrong in WRONG:
                changed = copy.deepcopy(body)
                changed[key] = wrong
                yield ".".join((*path, key)), changed
            removed = {k: v for k, v in body.items() if k != key}
            yield ".".join((*path, key)) + " (removed)", removed
            for where, inner in mutations(body[key], (*path, key)):
                changed = copy.deepcopy(body)
                changed[key] = inner
                yield where, changed
        yield ".".join(path) + ".<unknown>", {**body, "unknown_field_\u00e9": [1]}


def multipart_bodies() -> Iterator[tuple[str, dict]]:
    good = jsonl([rft_row("q", "a")])
    lines = [b'{"messages": [{"role": "user", "content": "q"}], "x": NaN}',
             b'{"messages": [{"role": "user", "content": "q"}], "x": 1e400}',
             b'{"messages": [{"role": "user", "content": "q"}], "x": "\\u0000"}',
             b"[" * 50_000 + b"]" * 50_000, b"\xff\xfe\xfa", b"{}" * 1000, b"\x00" * 100]
    for i, line in enumerate(lines):
        yield f"file line {i}", {"purpose": "fine-tune", "file": SimpleUploadedFile("t.jsonl", line + b"\n")}
    yield "no file", {"purpose": "fine-tune"}
    yield "purpose list", {"purpose": ["fine-tune", "x"], "file": SimpleUploadedFile("t.jsonl", good)}
    yield "no purpose", {"file": SimpleUploadedFile("t.jsonl", good)}
    yield "file as text", {"purpose": "fine-tune", "file": "not a file"}
    yield "two files", {"purpose": "fine-tune", "file": [SimpleUploadedFile("a.jsonl", good),
                                                        SimpleUploadedFile("b.jsonl", b"\xff")]}


@pytest.fixture
def fuzz_world(project_with_roles, make_user):
    project, users = project_with_roles
    objs = make_objects(project, users, make_user)
    return project, users, objs


def api_client(api_key_for, user, project) -> Client:
    headers = {"Authorization": f"Bearer {api_key_for(user)}", "OpenAI-Project": project.slug}
    return Client(headers=headers, raise_request_exception=False)


def send(client: Client, method: str, url: str, body: Any = None, raw: bytes | None = None,
         query: dict | None = None):
    if method in ("get", "delete"):
        return getattr(client, method)(url, query or {})
    if raw is not None:
        return client.generic(method.upper(), url, raw, content_type="application/json")
    return getattr(client, method)(url, json.dumps(body), content_type="application/json")


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_malformed_requests_never_get_a_server_error(name, fuzz_world, api_key_for):
    project, users, objs = fuzz_world
    client = api_client(api_key_for, users["owner"], project)
    kwargs_of, methods = ENDPOINTS[name]
    url = reverse(name, kwargs=kwargs_of(objs))
    failures: list[str] = []

    def check(label: str, response) -> None:
        if response.status_code >= 500:
            failures.append(f"{label}: HTTP {response.status_code} {response.content[:200]!r}")
        elif response.status_code == 400 and response.get("Content-Type", "").startswith("application/json"):
            error = response.json().get("error")
            if not (isinstance(error, dict) and error.get("message")):
                failures.append(f"{label}: a 400 without an error message: {response.content[:200]!r}")

    for method, valid in methods.items():
        if valid == "multipart":
            for label, data in multipart_bodies():
                check(f"POST multipart {label}", client.post(url, data))
            continue
        if valid is None:
            for query in BAD_QUERIES:
                check(f"{method.upper()} ?{query}", send(client, method, url, query=query))
        else:
            for raw in RAW_BODIES:
                check(f"{method.upper()} raw {raw[:40]!r}", send(client, method, url, raw=raw))
            for where, body in mutations(valid(objs)):
                check(f"{method.upper()} {where}={json.dumps(body)[:160]}", send(client, method, url, body))
    for weird in WEIRD_IDS:
        kwargs = {k: weird for k in kwargs_of(objs)}
        if kwargs:
            for method in methods:
                check(f"{method.upper()} id {weird[:20]!r}", send(client, method, reverse(name, kwargs=kwargs),
                                                                 body={} if method == "post" else None))
    assert not failures, f"{len(failures)} requests got a server error:\n" + "\n".join(failures[:40])
