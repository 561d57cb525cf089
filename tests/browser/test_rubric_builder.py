"""A domain expert builds a two-criterion rubric in the browser (no template syntax typed:
the reference field is inserted from a chip), saves it, tries it on an answer and sees the
total and both criterion scores, then checks it against the reference answers."""

import pytest
from playwright.sync_api import expect

from tests.helpers import jsonl, rft_row

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_build_save_and_try_a_rubric(page, live_server, django_user_model, shot):
    from webapp.datasets.services import Upload, dataset_import_jsonl
    from webapp.projects.services import project_create

    user = django_user_model.objects.create_user("expert", password="pw-expert")
    project = project_create(name="Arithmetic", owner=user)
    data = jsonl([rft_row(f"What is {i} + {i}?", str(2 * i), id=f"s{i}") for i in range(8)])
    dataset_import_jsonl(project=project, name="Sums", user=user,
                         train=Upload(name="sums.jsonl", size=len(data), read=lambda: data))

    page.goto(f"{live_server.url}/")
    page.fill("input[name=username]", "expert")
    page.fill("input[name=password]", "pw-expert")
    page.click("button:has-text('Log in')")
    page.goto(f"{live_server.url}/p/{project.slug}/")
    page.click("nav.tabs >> text=Graders")
    page.click("text=Build a rubric")
    expect(page.locator("h1")).to_have_text("Build a rubric")
    page.fill("input[name=name]", "Sums rubric")

    # Criterion 1: the number is correct. Clear the reference and insert it from the chip.
    first = page.locator("fieldset.criterion").nth(0)
    first.locator("input[name$='-name']").fill("Number is correct")
    expect(first.locator("select[name$='-type']")).to_have_value("numeric_match")
    reference = first.locator("input[name$='-f-reference']")
    reference.fill("")
    reference.click()
    first.locator(".field[data-field=reference] button.chip", has_text="{{item.reference_answer}}").click()
    expect(reference).to_have_value("{{item.reference_answer}}")
    first.locator("input[name$='-weight']").fill("3")

    # Criterion 2: added via htmx, its type swapped via htmx to "Length within limits".
    page.click("#add-criterion")
    expect(page.locator("fieldset.criterion")).to_have_count(2)
    second = page.locator("fieldset.criterion").nth(1)
    second.locator("input[name$='-name']").fill("Length within bounds")
    second.locator("select[name$='-type']").select_option("length_bounds")
    expect(second.locator("select[name$='-f-unit']")).to_be_visible()
    second.locator("input[name$='-f-max']").fill("3")

    # A custom formula is checked inline, then we go back to the weighted mean.
    page.get_by_label("A formula of my own").check()
    page.fill("#id_formula", "min(number_is_correct, ")
    expect(page.locator("#formula-error")).to_be_visible()
    page.fill("#id_formula", "min(number_is_correct, length_within_bounds)")
    expect(page.locator("#formula-ok")).to_be_visible()
    # the weights do nothing with a formula of one's own: the boxes say so instead of a number
    expect(first.locator("input[name$='-weight']")).to_be_hidden()
    expect(first.locator(".weight-unused")).to_have_text("not used: your formula sets the total")
    shot(page, "builder-formula")
    page.get_by_label("Weighted mean of the criteria").check()
    expect(first.locator("input[name$='-weight']")).to_be_visible()
    expect(first.locator(".weight-unused")).to_be_hidden()
    shot(page, "builder")

    page.click("#save-grader")
    expect(page.locator("h1")).to_contain_text("Sums rubric")
    expect(page.locator("#grader-json")).to_contain_text('"calculate_output": "(3 * number_is_correct + 1 * length_within_bounds) / 4"')
    # each criterion in words, the weights that make the total beside them
    expect(page.locator("#criteria-summary tr[data-criterion=length_within_bounds] .criterion-words")).to_have_text(
        "The answer is at most 3 words long.")
    expect(page.locator("#criteria-summary")).to_contain_text("the weighted mean of the criteria")
    page.wait_for_load_state()  # htmx (deferred) runs the Try it form in place
    shot(page, "saved")

    # Try it starts on the first task, numbered as on the dataset page: graded at once, no
    # “missing variable” error from an empty task.
    expect(page.locator("#id_task option:checked")).to_have_text("Task 1 (train): What is 0 + 0?")
    page.fill("#id_sample", "0")
    page.click("button:has-text('Grade this answer')")
    expect(page.locator("#try-total")).to_have_text("1.000")
    expect(page.locator("#try-criteria .reason")).to_have_text(["full marks", "full marks"])

    # The right number, but too many words: 3/4, and the failed criterion says why.
    page.select_option("#id_task", label="Task 3 (train): What is 2 + 2?")
    page.fill("#id_sample", "I am quite sure it is 4")
    page.click("button:has-text('Grade this answer')")
    expect(page.locator("#try-total")).to_have_text("0.750")
    rows = page.locator("#try-criteria tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("tr[data-criterion=number_is_correct] .score")).to_have_text("1.000")
    expect(page.locator("tr[data-criterion=length_within_bounds] .score")).to_have_text("0.000")
    expect(page.locator("tr[data-criterion=length_within_bounds] .reason")).to_have_text(
        "It has 7 words; at most 3 allowed.")
    page.fill("#id_sample", "5")
    page.click("button:has-text('Grade this answer')")
    expect(page.locator("tr[data-criterion=number_is_correct] .reason")).to_have_text(
        "It says 5; the correct number is 4.")
    expect(page.locator("#try-total")).to_have_text("0.250")
    shot(page, "tried")

    # The references ("0".."14") all get full marks; the histogram is drawn by plotly.
    page.click("#run-check")
    expect(page.locator("#check-summary")).to_contain_text("8 of 8")
    expect(page.locator("#check-histogram .main-svg").first).to_be_attached()
    shot(page, "checked")
