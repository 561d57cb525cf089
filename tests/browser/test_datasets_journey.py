"""A domain expert's first steps, in a real browser: log in, create a project, upload tasks,
browse and open one, edit one inline, and get a line-numbered error for a broken file."""

import json
import re

import pytest
from playwright.sync_api import expect

from tests.helpers import jsonl, rft_row

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def login(page, live_server, username, password):
    page.goto(f"{live_server.url}/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button:has-text('Log in')")
    expect(page.locator("h1")).to_have_text("Projects")


def test_upload_browse_and_broken_file(page, live_server, django_user_model, tmp_path, shot):
    django_user_model.objects.create_user("expert", password="pw-expert")
    page.goto(f"{live_server.url}/")
    shot(page, "login")
    login(page, live_server, "expert", "pw-expert")

    page.click("text=New project")
    page.fill("input[name=name]", "Tax advice")
    page.click("button:has-text('Create project')")
    expect(page.locator("h1")).to_have_text("Tax advice")
    shot(page, "project")

    rows = [rft_row(f"Is expense #{i} deductible?", "yes" if i % 2 else "no", id=f"exp-{i}") for i in range(30)]
    good = tmp_path / "expenses.jsonl"
    good.write_bytes(jsonl(rows))
    page.click("text=Upload tasks")
    page.fill("input[name=name]", "Deductions")
    page.set_input_files("input[name=train_file]", str(good))
    shot(page, "upload-form")
    page.click("button:has-text('Upload and check')")
    expect(page.locator("h1")).to_contain_text("Deductions")
    expect(page.locator(".counts")).to_contain_text("24 train")
    expect(page.locator(".counts")).to_contain_text("6 validation")
    expect(page.locator("table.tasks tbody tr")).to_have_count(25)  # first page
    shot(page, "dataset")

    page.fill("input[name=q]", "expense #17 ")
    expect(page.locator("table.tasks tbody tr")).to_have_count(1)
    expect(page.locator("table.tasks")).to_contain_text("Is expense #17 deductible?")
    page.locator("table.tasks tbody tr a").first.click()
    expect(page.locator("h1")).to_contain_text("Task")
    expect(page.locator(".chat")).to_contain_text("Is expense #17 deductible?")
    expect(page.locator("dl.fields")).to_contain_text("{{item.reference_answer}}")
    shot(page, "task")

    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(rows[0]) + "\n{not json}\n" + json.dumps({"messages": [{"role": "user", "content": ""}]}) + "\n")
    page.goto(page.url.split("/datasets/")[0] + "/datasets/new/")
    page.fill("input[name=name]", "Broken")
    page.set_input_files("input[name=train_file]", str(broken))
    page.evaluate("""() => { window.progressSeen = [];
      document.addEventListener('htmx:xhr:progress', () => window.progressSeen.push(
        document.querySelector('#upload-progress-label').textContent)); }""")
    page.click("button:has-text('Upload and check')")
    problems = page.locator("#upload-problems")
    expect(problems).to_contain_text("Nothing was imported: the file has 2 problems")
    expect(problems).to_contain_text("broken.jsonl: line 2: invalid JSON")
    expect(problems).to_contain_text("broken.jsonl: line 3: the prompt (last user message) is empty")
    assert page.evaluate("window.progressSeen").pop() == "Checking every task…"  # the bar reached 100%
    shot(page, "broken-file")


def test_inline_edit_with_live_preview(page, live_server, django_user_model, tmp_path, shot):
    from webapp.datasets.services import Upload, dataset_import_jsonl
    from webapp.projects.services import project_create

    user = django_user_model.objects.create_user("editor", password="pw-editor")
    project = project_create(name="Support", owner=user)
    data = jsonl([rft_row("Where is my parcel?", "shipping")])
    dataset = dataset_import_jsonl(project=project, name="Triage", user=user,
                                   train=Upload("t.jsonl", len(data), lambda: data))
    login(page, live_server, "editor", "pw-editor")
    page.goto(f"{live_server.url}/p/{project.slug}/datasets/{dataset.pk}/")
    url_before = page.url
    page.click("table.tasks >> text=Edit")
    row = page.locator("tr.editing")
    expect(row.locator("textarea[name=prompt]")).to_have_value("Where is my parcel?")
    row.locator("textarea[name=prompt]").fill("Where is my <b>parcel</b> now?")
    row.locator("textarea[name=reference_answer]").fill("shipping-delay")
    expect(row.locator(".preview .bubble.user")).to_contain_text("Where is my <b>parcel</b> now?")  # escaped text
    shot(page, "editing")
    row.locator("button:has-text('Save')").click()
    expect(page.locator("tr.editing")).to_have_count(0)
    expect(page.locator("table.tasks")).to_contain_text("shipping-delay")
    assert page.url == url_before  # no full page navigation
    assert re.search("Where is my <b>parcel</b> now", dataset.tasks.get().data["messages"][-1]["content"])
    shot(page, "saved")
