"""Dataset screens through the real URL stack: upload, CSV mapping, browsing, inline editing."""

import json

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.helpers import jsonl, rft_row
from webapp.datasets.models import Dataset, Split
from webapp.datasets.services import dataset_lock


def upload(client, project, *, name="Data", train: bytes, filename="tasks.jsonl", valid=None,
           holdout=20, htmx=False):
    data = {"name": name, "train_file": SimpleUploadedFile(filename, train), "holdout_percent": holdout, "seed": 0}
    if valid is not None:
        data["valid_file"] = SimpleUploadedFile("valid" + filename[-6:], valid)
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post(reverse("datasets:upload", args=[project.slug]), data, headers=headers)


def test_jsonl_upload_creates_dataset_with_holdout(project_with_roles, client_for):
    project, users = project_with_roles
    rows = [rft_row(f"q{i}", f"a{i}", id=i, extra={"k": i}) for i in range(50)]
    response = upload(client_for(users["editor"]), project, train=jsonl(rows), htmx=True)
    dataset = Dataset.objects.get(project=project)
    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse("datasets:detail", args=[project.slug, dataset.pk])
    assert dataset.tasks.filter(split=Split.TRAIN).count() == 40
    assert dataset.tasks.filter(split=Split.VALID).count() == 10
    kept = {t.data["id"]: t.data for t in dataset.tasks.all()}
    assert kept[7] == rows[7]  # verbatim, nested keys included


def test_separate_validation_file(project_with_roles, client_for):
    project, users = project_with_roles
    upload(client_for(users["owner"]), project, train=jsonl([rft_row("a", "1"), rft_row("b", "2")]),
           valid=jsonl([rft_row("c", "3")]))
    dataset = Dataset.objects.get(project=project)
    assert [t.split for t in dataset.tasks.order_by("position")] == ["train", "train", "valid"]


def test_broken_file_is_rejected_whole_with_line_numbers(project_with_roles, client_for):
    project, users = project_with_roles
    good = json.dumps(rft_row("fine", "1"))
    bad = "\n".join([good, good, "{oops", json.dumps({"messages": [{"role": "assistant", "content": "x"}]})])
    response = upload(client_for(users["editor"]), project, train=bad.encode(), filename="broken.jsonl")
    assert response.status_code == 400
    body = response.content.decode()
    assert "Nothing was imported: the file has 2 problems" in body
    assert "broken.jsonl: line 3: invalid JSON" in body
    assert "broken.jsonl: line 4: `messages` must end with a user message" in body
    assert not Dataset.objects.exists()


def test_problems_in_both_files_are_reported_together(project_with_roles, client_for):
    project, users = project_with_roles
    response = upload(client_for(users["editor"]), project, train=b"{", valid=b"[]", htmx=True)
    assert response.status_code == 200 and "HX-Redirect" not in response  # htmx swaps the error box
    body = response.content.decode()
    assert "tasks.jsonl: line 1: invalid JSON" in body and "valid.jsonl: line 1: each line must be" in body
    assert not Dataset.objects.exists()


def test_oversize_file_is_refused_before_reading(project_with_roles, client_for, settings):
    project, users = project_with_roles
    settings.STUDIO_MAX_UPLOAD_BYTES = 1000
    response = upload(client_for(users["editor"]), project, train=b"x" * 5000)
    assert "the file is 0.0 MB; the limit is 0 MB" in response.content.decode()
    assert not Dataset.objects.exists()


def test_model_output_and_user_text_are_escaped(project_with_roles, client_for):
    project, users = project_with_roles
    evil = "<script>alert(1)</script>"
    upload(client_for(users["editor"]), project, train=jsonl([rft_row(evil, evil, note=evil)]), holdout=0)
    dataset = Dataset.objects.get()
    task = dataset.tasks.get()
    for url in (reverse("datasets:detail", args=[project.slug, dataset.pk]),
                reverse("datasets:task_detail", args=[project.slug, dataset.pk, task.pk])):
        body = client_for(users["viewer"]).get(url).content.decode()
        assert evil not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_csv_upload_then_mapping(project_with_roles, client_for):
    project, users = project_with_roles
    client = client_for(users["editor"])
    csv_bytes = b"\xef\xbb\xbfquestion,answer,topic\n" + b"".join(
        f"What is {i}*3?,{i * 3},math\n".encode() for i in range(10))
    response = upload(client, project, train=csv_bytes, filename="sheet.csv", holdout=30)
    assert response.status_code == 302 and "/new/csv/" in response.url
    page = client.get(response.url)
    assert page.status_code == 200
    assert 'value="question" selected' in page.content.decode()  # prompt column guessed
    response = client.post(response.url, {"prompt_column": "question", "reference_column": "answer",
                                          "extra_columns": ["topic"], "system_prompt": "Only the number."})
    dataset = Dataset.objects.get()
    assert response.status_code == 302 and response.url.endswith(f"/datasets/{dataset.pk}/")
    assert dataset.tasks.filter(split="valid").count() == 3
    first = dataset.tasks.order_by("position").first().data
    assert first["messages"][0] == {"role": "system", "content": "Only the number."}
    assert set(first) == {"messages", "reference_answer", "topic"}
    assert not list((project_with_roles[0] and __import__("django.conf").conf.settings.STUDIO_DATA_DIR
                     / "staging").glob("*.csv"))  # staging cleaned up


def test_csv_mapping_errors_name_rows_and_save_nothing(project_with_roles, client_for):
    project, users = project_with_roles
    client = client_for(users["editor"])
    response = upload(client, project, train=b"q,a\nhello,1\n,2\n", filename="s.csv")
    response = client.post(response.url, {"prompt_column": "q", "reference_column": "a"})
    assert response.status_code == 400
    assert "s.csv: row 3: the prompt column &#x27;q&#x27; is empty" in response.content.decode()
    assert not Dataset.objects.exists()


def test_csv_token_of_another_project_is_404(project_with_roles, client_for):
    project, users = project_with_roles
    client = client_for(users["owner"])
    url = upload(client, project, train=b"q,a\nx,1\n", filename="s.csv").url
    other = __import__("webapp.projects.services", fromlist=["x"]).project_create(name="Mine", owner=users["owner"])
    assert client.get(url.replace(project.slug, other.slug, 1)).status_code == 404


def test_a_staged_csv_belongs_to_its_uploader_and_expires(project_with_roles, client_for, settings):
    """Staging is the services' (csv_stage / dataset_import_staged_csv): the view keeps no
    state of its own, and only the uploader can map the file, until it expires."""
    project, users = project_with_roles
    url = upload(client_for(users["editor"]), project, train=b"q,a\nx,1\n", filename="s.csv").url
    assert client_for(users["editor"]).get(url).status_code == 200
    assert client_for(users["owner"]).get(url).status_code == 404  # same project, another user
    token = url.rstrip("/").rsplit("/", 1)[1]
    assert client_for(users["editor"]).get(url.replace(token, "../../etc")).status_code == 404
    (settings.STUDIO_DATA_DIR / "staging" / f"{token}-train.csv").unlink()  # swept after a day
    assert client_for(users["editor"]).get(url).status_code == 404


def test_csv_with_a_validation_file_maps_both(project_with_roles, client_for, settings):
    project, users = project_with_roles
    client = client_for(users["editor"])
    response = upload(client, project, train=b"q,a\nx,1\ny,2\n", filename="s.csv", valid=b"q,a\nz,3\n")
    response = client.post(response.url, {"prompt_column": "q", "reference_column": "a"})
    dataset = Dataset.objects.get()
    assert response.status_code == 302 and dataset.source.startswith("s.csv + valid")
    assert [t.split for t in dataset.tasks.order_by("position")] == ["train", "train", "valid"]
    assert not list((settings.STUDIO_DATA_DIR / "staging").iterdir())  # every staged file removed


def test_search_split_filter_and_pagination(dataset, project_with_roles, client_for):
    project, users = project_with_roles
    client = client_for(users["viewer"])
    url = reverse("datasets:detail", args=[project.slug, dataset.pk])
    body = client.get(url, {"q": "7 + 7"}).content.decode()
    assert "What is 7 + 7?" in body and "What is 3 + 3?" not in body
    partial = client.get(url, {"split": "valid"}, headers={"HX-Request": "true", "HX-Target": "task-table"})
    assert "<html" not in partial.content.decode() and partial.content.decode().count('class="pill valid"') == 2
    for i in range(40):
        dataset.tasks.create(split="train", position=100 + i, data=rft_row(f"extra {i}", "x"), search_text=f"extra {i}")
    page2 = client.get(url, {"page": 2}).content.decode()
    assert "page 2 of 2 (50 tasks)" in page2


def test_download_jsonl_round_trips(dataset, project_with_roles, client_for):
    project, users = project_with_roles
    response = client_for(users["viewer"]).get(reverse("datasets:download", args=[project.slug, dataset.pk]))
    lines = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert lines == [t.data for t in dataset.tasks.order_by("position")]
    assert 'filename="Sums-v1.jsonl"' in response["Content-Disposition"]


def test_inline_task_create_edit_delete_with_htmx(dataset, project_with_roles, client_for):
    project, users = project_with_roles
    client = client_for(users["editor"])
    hx = {"HX-Request": "true"}
    form = {"split": "valid", "system": "Be exact.", "prompt": "2^10?", "reference_answer": "1024",
            "extra": '{"unit": "none"}'}
    response = client.post(reverse("datasets:task_new", args=[project.slug, dataset.pk]), form, headers=hx)
    assert "Added task" in response.content.decode()
    task = dataset.tasks.order_by("-position").first()
    assert task.split == "valid" and task.data == {
        "messages": [{"role": "system", "content": "Be exact."}, {"role": "user", "content": "2^10?"}],
        "reference_answer": "1024", "unit": "none"}

    edit_url = reverse("datasets:task_edit", args=[project.slug, dataset.pk, task.pk])
    edit_row = client.get(edit_url, headers=hx).content.decode()
    assert edit_row.startswith(f'<tr id="task-{task.pk}" class="editing">') and "1024" in edit_row
    response = client.post(edit_url, {**form, "reference_answer": "1,024", "extra": "[1]"}, headers=hx)
    assert "Must be a JSON object" in response.content.decode()  # form re-rendered in place
    response = client.post(edit_url, {**form, "reference_answer": "1,024"}, headers=hx)
    assert response.content.decode().lstrip().startswith(f'<tr id="task-{task.pk}">')
    task.refresh_from_db()
    assert task.data["reference_answer"] == "1,024" and "1,024" in task.search_text

    response = client.post(reverse("datasets:task_delete", args=[project.slug, dataset.pk, task.pk]), headers=hx)
    assert response.status_code == 200 and response.content == b""
    assert not dataset.tasks.filter(pk=task.pk).exists()


def test_live_preview_renders_chat_and_fields(dataset, project_with_roles, client_for):
    project, users = project_with_roles
    response = client_for(users["editor"]).post(
        reverse("datasets:task_preview", args=[project.slug, dataset.pk]),
        {"split": "train", "system": "", "prompt": "Hello <b>there</b>", "reference_answer": "hi", "extra": ""})
    body = response.content.decode()
    assert "Hello &lt;b&gt;there&lt;/b&gt;" in body and "{{item.reference_answer}}" in body
    bad = client_for(users["editor"]).post(reverse("datasets:task_preview", args=[project.slug, dataset.pk]),
                                           {"split": "train", "prompt": "", "extra": "{"})
    assert "prompt" in bad.content.decode() and "Not valid JSON" in bad.content.decode()


def test_locked_dataset_refuses_edits_and_duplicate_makes_editable_copy(dataset, project_with_roles, client_for):
    project, users = project_with_roles
    dataset_lock(dataset=dataset, reason="used by run ftjob-123")
    client = client_for(users["editor"])
    page = client.get(reverse("datasets:detail", args=[project.slug, dataset.pk])).content.decode()
    assert "can no longer be edited: used by run ftjob-123" in page and "Add a task" not in page
    task = dataset.tasks.first()
    edit = client.post(reverse("datasets:task_edit", args=[project.slug, dataset.pk, task.pk]),
                       {"split": "train", "prompt": "changed"})
    assert edit.status_code == 409
    new = client.post(reverse("datasets:task_new", args=[project.slug, dataset.pk]), {"split": "train", "prompt": "x"})
    assert "can no longer be edited" in new.content.decode()
    assert client.post(reverse("datasets:delete", args=[project.slug, dataset.pk])).status_code == 302
    assert Dataset.objects.filter(pk=dataset.pk).exists()

    response = client.post(reverse("datasets:duplicate", args=[project.slug, dataset.pk]))
    copy = Dataset.objects.exclude(pk=dataset.pk).get()
    assert response.url.endswith(f"/datasets/{copy.pk}/")
    assert (copy.version, copy.parent, copy.is_locked) == (2, dataset, False)
    assert [t.data for t in copy.tasks.order_by("position")] == [t.data for t in dataset.tasks.order_by("position")]
    assert client.post(reverse("datasets:task_new", args=[project.slug, copy.pk]),
                       {"split": "train", "prompt": "new one"}).status_code == 302
