"""OpenAI-compatible /v1/files: shapes, errors in OpenAI's error shape, project scoping."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.helpers import jsonl, rft_row
from webapp.datasets.models import Dataset, File
from webapp.datasets.services import file_path


def post_file(client, data: bytes, filename="train.jsonl", purpose="fine-tune"):
    return client.post("/v1/files", {"file": SimpleUploadedFile(filename, data), "purpose": purpose})


def test_upload_list_retrieve_content_delete(project_with_roles, api_client_for, django_capture_on_commit_callbacks):
    project, users = project_with_roles
    client = api_client_for(users["editor"], project)
    raw = jsonl([rft_row("Capital of Chile?", "Santiago", id="q1"), rft_row("2+2?", "4", id="q2")])
    response = post_file(client, raw)
    assert response.status_code == 200, response.content
    obj = response.json()
    assert obj["id"].startswith("file-") and obj["object"] == "file" and obj["purpose"] == "fine-tune"
    assert obj["bytes"] == len(raw) and obj["filename"] == "train.jsonl" and obj["status"] == "processed"
    file = File.objects.get(pk=obj["id"])
    assert file.project == project and file.dataset.tasks.count() == 2

    listing = client.get("/v1/files").json()
    assert listing["object"] == "list" and [f["id"] for f in listing["data"]] == [obj["id"]]
    assert client.get(f"/v1/files/{obj['id']}").json() == obj
    content = client.get(f"/v1/files/{obj['id']}/content")
    assert b"".join(content.streaming_content) == raw  # byte for byte

    with django_capture_on_commit_callbacks(execute=True):
        deleted = client.delete(f"/v1/files/{obj['id']}").json()
    assert deleted == {"id": obj["id"], "object": "file", "deleted": True}
    assert not File.objects.exists() and not Dataset.objects.exists()
    assert not file_path(file).exists()


def test_invalid_file_gets_openai_error_with_line_numbers_and_nothing_saved(project_with_roles, api_client_for):
    project, users = project_with_roles
    response = post_file(api_client_for(users["editor"], project), b'{"messages": []}\nnot json\n', "bad.jsonl")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "file" and error["code"] == "invalid_file" and error["type"] == "invalid_request_error"
    assert "bad.jsonl: line 1: `messages` must be a non-empty list" in error["message"]
    assert "bad.jsonl: line 2: invalid JSON" in error["message"]
    assert not File.objects.exists() and not Dataset.objects.exists()


def test_wrong_purpose_and_missing_file(project_with_roles, api_client_for):
    project, users = project_with_roles
    client = api_client_for(users["editor"], project)
    error = post_file(client, jsonl([rft_row("a", "b")]), purpose="assistants").json()["error"]
    assert error["param"] == "purpose"
    error = client.post("/v1/files", {"purpose": "fine-tune"}).json()["error"]
    assert error["param"] == "file"


def test_oversize_upload_is_413(project_with_roles, api_client_for, settings):
    project, users = project_with_roles
    settings.STUDIO_MAX_UPLOAD_BYTES = 10
    response = post_file(api_client_for(users["editor"], project), b"x" * 100_000)
    assert response.status_code == 413 and response.json()["error"]["code"] == "file_too_large"


def test_auth_errors_use_openai_shape(db):
    from django.test import Client

    response = Client().get("/v1/files")
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    response = Client(headers={"Authorization": "Bearer sk-rft-wrong"}).get("/v1/files")
    assert response.status_code == 401 and "Incorrect API key" in response.json()["error"]["message"]
    assert Client().get("/v1/nope").json()["error"]["code"] == "unknown_url"


def test_project_is_required_when_ambiguous(project_with_roles, api_client_for):
    from webapp.projects.services import project_create

    project, users = project_with_roles
    project_create(name="Second", owner=users["editor"])
    error = post_file(api_client_for(users["editor"]), jsonl([rft_row("a", "b")])).json()["error"]
    assert error["param"] == "OpenAI-Project" and "several projects" in error["message"]


def test_single_project_user_needs_no_header(project_with_roles, api_client_for):
    project, users = project_with_roles
    response = post_file(api_client_for(users["outsider"]), jsonl([rft_row("a", "b")]))
    assert response.status_code == 200
    assert File.objects.get().project.slug == "other-team"


def test_pagination_after_and_limit(project_with_roles, api_client_for):
    project, users = project_with_roles
    client = api_client_for(users["editor"], project)
    ids = [post_file(client, jsonl([rft_row(f"q{i}", "a")])).json()["id"] for i in range(5)]
    page = client.get("/v1/files", {"limit": 2}).json()
    assert [f["id"] for f in page["data"]] == ids[::-1][:2] and page["has_more"]
    page2 = client.get("/v1/files", {"limit": 2, "after": page["last_id"]}).json()
    assert [f["id"] for f in page2["data"]] == ids[::-1][2:4]
    asc = client.get("/v1/files", {"order": "asc"}).json()
    assert [f["id"] for f in asc["data"]] == ids and not asc["has_more"]
    assert client.get("/v1/files", {"limit": 0}).json()["error"]["param"] == "limit"


@pytest.mark.django_db(transaction=True)
def test_openai_sdk_files_against_live_server(live_server, project_with_roles, api_key_for, tmp_path):
    """The official SDK, unchanged but for base_url, uploads, lists, reads and deletes."""
    from openai import BadRequestError, NotFoundError, OpenAI

    project, users = project_with_roles
    client = OpenAI(base_url=f"{live_server.url}/v1", api_key=api_key_for(users["editor"]),
                    project=project.slug, max_retries=0)
    path = tmp_path / "train.jsonl"
    path.write_bytes(jsonl([rft_row("Translate 'cat' to French", "chat", id="fr-1")]))
    with path.open("rb") as fh:
        created = client.files.create(file=fh, purpose="fine-tune")
    assert created.id.startswith("file-") and created.filename == "train.jsonl" and created.bytes == path.stat().st_size
    assert [f.id for f in client.files.list()] == [created.id]
    assert client.files.retrieve(created.id).id == created.id
    assert json.loads(client.files.content(created.id).text)["reference_answer"] == "chat"

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": ""}]}\n')
    with pytest.raises(BadRequestError) as info, bad.open("rb") as fh:
        client.files.create(file=fh, purpose="fine-tune")
    assert "line 1: the prompt (last user message) is empty" in info.value.message

    assert client.files.delete(created.id).deleted is True
    with pytest.raises(NotFoundError):
        client.files.retrieve(created.id)


def test_evals_file_upload_is_checked_line_by_line(project_with_roles, api_client_for, settings,
                                                    django_capture_on_commit_callbacks):
    """purpose=evals: OpenAI's {"item", "sample"?} lines, kept as a file (no dataset)."""
    project, users = project_with_roles
    client = api_client_for(users["editor"], project)
    raw = jsonl([{"item": {"question": "2+2?", "answer": "4"}, "sample": {"output_text": "4"}},
                 {"item": {"question": "3+3?", "answer": "6"}}])
    response = post_file(client, raw, "items.jsonl", purpose="evals")
    assert response.status_code == 200, response.content
    obj = response.json()
    assert obj["purpose"] == "evals" and obj["dataset_id"] is None and obj["bytes"] == len(raw)
    assert not Dataset.objects.exists()
    assert [f["id"] for f in client.get("/v1/files", {"purpose": "evals"}).json()["data"]] == [obj["id"]]
    assert client.get("/v1/files", {"purpose": "fine-tune"}).json()["data"] == []
    assert client.get(f"/v1/files/{obj['id']}").json() == obj
    assert b"".join(client.get(f"/v1/files/{obj['id']}/content").streaming_content) == raw

    bad = b"\n".join([
        b'{"item": {"q": "a"}}',
        b'{"question": "2+2?", "answer": "4"}',   # fields not under "item"
        b'{"item": "2+2?"}',
        b'{"item": {"q": "b"}, "sample": "4"}',
        b'{"item": {"q": "c"}, "sample": {"output_text": 4}}',
        b'[1, 2]',
        b'{"item": ',
    ])
    error = post_file(client, bad, "bad-items.jsonl", purpose="evals").json()["error"]
    assert error["param"] == "file" and error["code"] == "invalid_file"
    message = error["message"]
    assert "bad-items.jsonl: line 1" not in message
    assert "bad-items.jsonl: line 2: unknown fields 'answer', 'question'" in message
    assert 'bad-items.jsonl: line 2: "item" is missing' in message
    assert 'bad-items.jsonl: line 3: "item" must be an object, not str' in message
    assert 'bad-items.jsonl: line 4: "sample" must be an object' in message
    assert 'bad-items.jsonl: line 5: "sample.output_text" must be a text' in message
    assert "bad-items.jsonl: line 6: each line must be an object" in message
    assert "bad-items.jsonl: line 7: invalid JSON" in message
    assert "empty.jsonl: the file is empty" in post_file(client, b"\n \n", "empty.jsonl",
                                                         purpose="evals").json()["error"]["message"]
    settings.STUDIO_MAX_UPLOAD_BYTES = 10
    too_big = post_file(client, raw, "items.jsonl", purpose="evals")
    assert too_big.status_code == 400 and "the limit is" in too_big.json()["error"]["message"]
    assert post_file(client, b"x" * 100_000, "items.jsonl", purpose="evals").status_code == 413
    assert File.objects.count() == 1  # nothing half-written

    # a fine-tuning job is told it is the wrong kind of file
    job = client.post("/v1/fine_tuning/jobs", {"model": "tiny", "training_file": obj["id"],
                                               "method": {"type": "reinforcement", "reinforcement": {
                                                   "grader": {"type": "string_check", "name": "x",
                                                              "input": "{{sample.output_text}}",
                                                              "reference": "{{item.answer}}", "operation": "eq"}}}},
                      content_type="application/json").json()["error"]
    assert job["param"] == "training_file" and "evals file" in job["message"]

    viewer = api_client_for(users["viewer"], project)
    assert viewer.delete(f"/v1/files/{obj['id']}").status_code == 403
    assert api_client_for(users["outsider"]).get(f"/v1/files/{obj['id']}").status_code == 404
    path = file_path(File.objects.get())
    with django_capture_on_commit_callbacks(execute=True):
        assert client.delete(f"/v1/files/{obj['id']}").json()["deleted"] is True
    assert not File.objects.exists() and not path.exists()


@pytest.mark.parametrize("raw, expected", [
    (b'{"item": {"q": NaN}}\n', "line 1: NaN is not allowed"),
    (b'{"item": {"q": 1}}\n{"item": {"q": 1e400}}\n', "line 2: the number 1e400 is too large"),
    (b'{"item": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n", "line 1: the JSON is nested more than 64 levels"),
    (b'{"item": {"q": "a\\u0000b"}}\n', "line 1: text may not contain NUL characters"),
    (b'{"item": {"q": "\\ud800"}}\n', "line 1: text may not contain lone surrogates"),
    (b'{"item": {"q": 1}}\n' * 50_001, "the file has 50,001 items; the limit is 50,000"),
])
def test_hostile_evals_file_is_a_400_naming_the_line(project_with_roles, api_client_for, raw, expected):
    project, users = project_with_roles
    response = post_file(api_client_for(users["editor"], project), raw, "items.jsonl", purpose="evals")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "file" and f"items.jsonl: {expected}" in error["message"]
    assert not File.objects.exists()
