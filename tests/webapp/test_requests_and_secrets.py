"""Requests that cannot hurt the server, and secrets kept as secrets (README: Security model)."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.urls import reverse

from tests.helpers import jsonl, rft_row
from webapp.core import crypto
from webapp.datasets.importers import ImportProblems, parse_jsonl
from webapp.graders.models import CheckStatus, GraderCheck, JudgeEndpoint
from webapp.graders.services import grader_create

# --- task files and JSON bodies --------------------------------------------------------------


@pytest.mark.parametrize("line,problem", [
    ('{"messages": [{"role": "user", "content": "q"}], "score": NaN}', "NaN is not allowed"),
    ('{"messages": [{"role": "user", "content": "q"}], "score": Infinity}', "Infinity is not allowed"),
    ('{"messages": [{"role": "user", "content": "q"}], "score": 1e400}', "too large"),
    ('{"messages": [{"role": "user", "content": "q\\u0000"}]}', "NUL"),
    ('{"messages": [{"role": "user", "content": "q"}], "x": ' + "[" * 100 + "]" * 100 + "}", "nested"),
    ('{"messages": [{"role": "user", "content": "q"}], "x": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested"),
])
def test_task_files_refuse_values_nothing_can_store(line, problem):
    text = jsonl([rft_row("fine", "a")]).decode() + line + "\n"
    with pytest.raises(ImportProblems) as info:
        parse_jsonl(text, source="t.jsonl")
    assert any("line 2:" in p and problem in p for p in info.value.problems), info.value.problems


def test_api_json_body_problems_are_400s_naming_the_problem(project_with_roles, api_client_for):
    project, users = project_with_roles
    client = api_client_for(users["viewer"], project)
    for body, words in ((b'{"grader": NaN}', "NaN"), (b"[" * 100_000 + b"]" * 100_000, "nested"),
                        (b'{"grader": {"type": "string_check", "x": 1e999}}', "too large")):
        response = client.post("/v1/fine_tuning/alpha/graders/validate", body, content_type="application/json")
        assert response.status_code == 400 and words in response.json()["error"]["message"]


def test_api_json_bodies_are_size_limited(project_with_roles, api_client_for, settings):
    project, users = project_with_roles
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
    body = b'{"grader": {"name": "' + b"x" * (2 * 1024 * 1024) + b'"}}'
    response = api_client_for(users["viewer"], project).post(
        "/v1/fine_tuning/alpha/graders/validate", body, content_type="application/json")
    assert response.status_code == 413 and "larger than 1 MB" in response.json()["error"]["message"]


# --- job metadata and seeds ------------------------------------------------------------------


@pytest.fixture
def jobs(project_with_roles):
    from tests.webapp.runs.factories import make_run
    from webapp.datasets.services import Upload, dataset_import_jsonl

    project, users = project_with_roles
    data = jsonl([rft_row("q", "a")])
    dataset = dataset_import_jsonl(project=project, name="D", user=users["owner"],
                                   train=Upload("d.jsonl", len(data), lambda: data))
    tax = make_run(project, dataset, users["owner"], steps=1, metadata={"team": "tax", "a.b": "dots"})
    other = make_run(project, dataset, users["owner"], steps=1, metadata={"team": "audit"})
    return project, users, tax, other


def test_metadata_filters_are_plain_key_equality(jobs, api_client_for):
    project, users, tax, other = jobs
    client = api_client_for(users["viewer"], project)

    def ids(query):
        return [j["id"] for j in client.get("/v1/fine_tuning/jobs", query).json()["data"]]

    assert ids({"metadata[team]": "tax"}) == [tax.pk]
    assert ids({"metadata[a.b]": "dots"}) == [tax.pk]  # the key is taken literally
    assert ids({"metadata[team]": "t.*"}) == []
    for lookup in ("metadata[team__regex]", "metadata[team__contains]", "metadata[team__isnull]", "metadata"):
        response = client.get("/v1/fine_tuning/jobs", {lookup: ".*"})
        assert response.status_code == 400 and response.json()["error"]["param"] == lookup


def test_job_create_refuses_out_of_range_seeds_and_odd_metadata(jobs, api_client_for):
    project, users, _, _ = jobs
    client = api_client_for(users["owner"], project)
    grader = {"type": "string_check", "name": "e", "input": "{{sample.output_text}}",
              "reference": "{{item.reference_answer}}", "operation": "eq"}
    base = {"model": "smollm2-135m-instruct", "training_file": "file-x",
            "method": {"type": "reinforcement", "reinforcement": {"grader": grader}}}
    for extra, param in (({"seed": 2**63}, "seed"), ({"seed": -1}, "seed"), ({"seed": True}, "seed"),
                         ({"metadata": {"k__regex": "x"}}, "metadata"), ({"metadata": {"k": 1}}, "metadata.k"),
                         ({"method": "reinforcement"}, "method"), ({"model": ["x"]}, "model")):
        response = client.post("/v1/fine_tuning/jobs", {**base, **extra}, content_type="application/json")
        assert response.status_code == 400 and response.json()["error"]["param"] == param, response.content


# --- judges: only known names ----------------------------------------------------------------


def test_judge_model_must_be_a_known_judge(project_with_roles, api_client_for, tmp_path):
    project, users = project_with_roles
    client = api_client_for(users["editor"], project)
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    judge = {"type": "score_model", "name": "j", "input": "Rate {{sample.output_text}}"}
    nested = {"type": "multi", "name": "m", "calculate_output": "j", "graders": {"j": judge}}
    messages = set()
    for model in (str(folder), "/etc", "/no/such/dir", "HuggingFaceTB/SmolLM2-360M"):
        for spec, param in (({**judge, "model": model}, "grader.model"),
                            ({**nested, "graders": {"j": {**judge, "model": model}}}, "grader.graders.j.model")):
            for url in ("/v1/fine_tuning/alpha/graders/validate", "/v1/graders"):
                response = client.post(url, {"grader": spec, "name": "g"}, content_type="application/json")
                error = response.json()["error"]
                assert response.status_code == 400 and error["param"] == param, response.content
                messages.add(error["message"].replace(model, "<m>"))
    assert len(messages) == 2  # validate and save word it alike; existence of files never shows
    JudgeEndpoint.objects.create(name="house-judge", base_url="http://127.0.0.1:9/v1", api_key="k")
    ok = client.post("/v1/fine_tuning/alpha/graders/validate", {"grader": {**judge, "model": "house-judge"}},
                     content_type="application/json")
    assert ok.status_code == 200
    from webapp.runs.models import LocalBaseModel

    LocalBaseModel.objects.create(name="house-local", path=str(folder))
    ok = client.post("/v1/fine_tuning/alpha/graders/validate", {"grader": {**judge, "model": "house-local"}},
                     content_type="application/json")
    assert ok.status_code == 200
    builtin = {**judge, "model": "smollm2-135m-instruct"}
    assert client.post("/v1/fine_tuning/alpha/graders/validate", {"grader": builtin},
                       content_type="application/json").status_code == 200


# --- judge endpoint keys at rest ----------------------------------------------------------------


def _stored_row(pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM graders_judgeendpoint WHERE id = %s", [pk])
        return repr(cursor.fetchone())


def test_judge_api_keys_are_encrypted_at_rest(db, settings):
    endpoint = JudgeEndpoint.objects.create(name="j", base_url="http://127.0.0.1:9/v1", api_key="sk-plain-777")
    assert "sk-plain-777" not in _stored_row(endpoint.pk)
    assert endpoint.api_key_encrypted.startswith(crypto.PREFIX)
    assert JudgeEndpoint.objects.get(pk=endpoint.pk).api_key == "sk-plain-777"
    old_key = settings.SECRET_KEY
    settings.SECRET_KEY = "n" * 50  # rotated without keeping the old key: unreadable, clearly
    with pytest.raises(crypto.DecryptionError, match="SECRET_KEY_FALLBACKS"):
        JudgeEndpoint.objects.get(pk=endpoint.pk).api_key  # noqa: B018
    settings.SECRET_KEY_FALLBACKS = [old_key]  # ... kept as a fallback: readable again
    assert JudgeEndpoint.objects.get(pk=endpoint.pk).api_key == "sk-plain-777"
    assert crypto.needs_rotation(JudgeEndpoint.objects.get(pk=endpoint.pk).api_key_encrypted)


@pytest.mark.django_db(transaction=True)
def test_migration_encrypts_existing_plaintext_keys():
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate([("graders", "0001_initial")])
    old_apps = executor.loader.project_state([("graders", "0001_initial")]).apps
    old = old_apps.get_model("graders", "JudgeEndpoint").objects.create(
        name="legacy", base_url="http://127.0.0.1:9/v1", api_key="sk-legacy-555")
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert "sk-legacy-555" not in _stored_row(old.pk)
    assert JudgeEndpoint.objects.get(pk=old.pk).api_key == "sk-legacy-555"


# --- login throttling ------------------------------------------------------------------------


def test_failed_logins_are_throttled(make_user):
    make_user("ann")
    make_user("bob")
    client = Client(raise_request_exception=False)
    url = reverse("login")
    for _ in range(4):
        assert client.post(url, {"username": "ann", "password": "wrong"}).status_code == 200
    assert client.post(url, {"username": "ann", "password": "wrong"}).status_code == 429  # the 5th
    locked = client.post(url, {"username": "ann", "password": "pw-ann"})  # even the right password
    assert locked.status_code == 429 and "Too many failed log-ins" in locked.content.decode()
    assert "15 minutes" in locked.content.decode()
    assert client.post(url, {"username": "bob", "password": "pw-bob"}).status_code == 302  # others unaffected
    other_address = Client(REMOTE_ADDR="10.1.2.3")
    assert other_address.post(url, {"username": "ann", "password": "pw-ann"}).status_code == 302


def test_wrong_api_keys_are_throttled_per_address(project_with_roles, api_key_for):
    project, users = project_with_roles
    good = api_key_for(users["viewer"])
    attacker = Client(headers={"Authorization": "Bearer sk-rft-guess"}, REMOTE_ADDR="10.9.9.9")
    for _ in range(4):
        assert attacker.get("/v1/files").status_code == 401
    assert attacker.get("/v1/files").status_code == 429  # the 5th wrong key
    blocked = Client(headers={"Authorization": f"Bearer {good}"}, REMOTE_ADDR="10.9.9.9").get("/v1/files")
    assert blocked.status_code == 429 and "try again in 15 minutes" in blocked.json()["error"]["message"]
    assert Client(headers={"Authorization": f"Bearer {good}"}).get("/v1/files").status_code == 200


# --- grading inside a request has a time budget ----------------------------------------------

# Instant on "b"; on "aaa…a!" the regex engine backtracks until its timeout.
SLOW = {"type": "regex_match", "name": "slow", "input": "{{sample.output_text}}", "pattern": "^b$|(a|aa)+$"}
SLOW_ANSWER = "a" * 40 + "!"


def test_try_it_and_run_api_stop_at_the_time_budget(project_with_roles, client_for, api_client_for, settings):
    project, users = project_with_roles
    settings.STUDIO_GRADE_REQUEST_SECONDS = 1
    many = {"type": "multi", "name": "m", "calculate_output": "+".join(f"c{i}" for i in range(12)) + " / 12",
            "graders": {f"c{i}": SLOW for i in range(12)}}  # 12 s of regex timeouts without a budget
    grader = grader_create(project=project, name="Slow", spec=many, user=users["owner"])
    start = time.monotonic()
    response = client_for(users["viewer"]).post(reverse("graders:try", args=[project.slug, grader.pk]),
                                                {"sample": SLOW_ANSWER}, headers={"HX-Request": "true"})
    assert response.status_code == 200 and time.monotonic() - start < 5
    assert "ran out of the time this request may take" in response.content.decode()  # the reason, in words
    start = time.monotonic()
    body = api_client_for(users["viewer"], project).post(
        "/v1/fine_tuning/alpha/graders/run", {"grader": many, "model_sample": SLOW_ANSWER},
        content_type="application/json").json()
    assert time.monotonic() - start < 5 and body["reward"] == 0 and body["metadata"]["errors"]["other_error"]


def test_reference_check_hands_over_to_a_worker_when_the_budget_runs_out(
        project_with_roles, client_for, monkeypatch, django_capture_on_commit_callbacks):
    from trainer.grading import text_types
    from webapp.datasets.services import Upload, dataset_import_jsonl
    from webapp.graders import tasks, views

    project, users = project_with_roles
    rows = [rft_row(f"q{i}", "b") for i in range(40)] + [rft_row(f"s{i}", SLOW_ANSWER) for i in range(6)]
    data = jsonl(rows)
    dataset = dataset_import_jsonl(project=project, name="Mixed", user=users["owner"],
                                   train=Upload("m.jsonl", len(data), lambda: data))
    spec = {**SLOW, "input": "{{sample.output_text}}"}
    grader = grader_create(project=project, name="Pattern", spec=spec, user=users["owner"], dataset=dataset)
    monkeypatch.setattr(views, "INLINE_CHECK_SECONDS", 1.5)
    monkeypatch.setattr(text_types, "REGEX_TIMEOUT_S", 0.4)
    queued = []
    monkeypatch.setattr(tasks.grader_check_task, "delay", queued.append)
    start = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        body = client_for(users["editor"]).post(reverse("graders:check", args=[project.slug, grader.pk]),
                                                headers={"HX-Request": "true"}).content.decode()
    assert time.monotonic() - start < 4  # 6 slow answers x 0.4 s, and then some, without a budget
    check = GraderCheck.objects.get()
    assert queued == [check.pk] and check.status == CheckStatus.QUEUED and 0 < check.checked < 46
    assert "a worker is checking the rest" in body and 'hx-trigger="every 1s"' in body
    tasks.grader_check_task(check.pk)  # what the worker runs: continues where the request stopped
    check.refresh_from_db()
    assert check.status == CheckStatus.DONE and check.total == 46 and len(check.rewards) == 46
    assert check.full_marks == 40 and len(check.failing) == 6


@override_settings(DEBUG=False)
def test_nul_in_urls_is_a_400(project_with_roles, api_client_for):
    project, users = project_with_roles
    client = api_client_for(users["viewer"], project)
    assert client.get("/v1/files/%00").status_code == 400
    assert client.get("/v1/fine_tuning/jobs", {"after": "\x00"}).status_code == 400


@override_settings(DEBUG=False)
def test_nul_in_form_fields_is_a_400(project_with_roles, client_for):
    """A browser form's field reaches lookups and writes (a 500 on PostgreSQL): refused first."""
    project, users = project_with_roles
    client = client_for(users["editor"])
    url = reverse("playground:stream", args=[project.slug])
    form = "application/x-www-form-urlencoded"
    response = client.post(url, urlencode({"model": "smollm2\x00", "message": "hi"}), content_type=form)
    assert response.status_code == 400 and b"NUL character" in response.content
    assert client.post(url, urlencode({"model": "x", "message": "hi\x00"}), content_type=form).status_code == 400
    assert client.post(url, urlencode({"mo\x00del": "x"}), content_type=form).status_code == 400
    upload = reverse("datasets:upload", args=[project.slug])
    assert client.post(upload, {"name": "n\x00"}).status_code == 400  # multipart too
    clean = client.post(url, urlencode({"model": "nope", "message": "hi"}), content_type=form)
    assert clean.streaming  # the same form without a NUL reaches the view (which streams its answer)
