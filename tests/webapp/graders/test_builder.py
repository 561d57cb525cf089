"""The rubric builder: rows of criteria compile to a validated `multi` grader; errors land
next to the row and field they concern; htmx swaps a type's fields; locked graders version."""

import pytest
from django.urls import reverse

from trainer.grading import run_grader
from webapp.graders.models import Grader
from webapp.graders.services import grader_create, grader_lock

pytestmark = pytest.mark.django_db


def rubric_post(dataset, *rows, name="Sums rubric", combine="weighted_mean", formula="", action="save"):
    """The builder's POST for `rows`: (row id, type, name, weight, gate, {field: value})."""
    data = {"name": name, "description": "", "dataset": dataset.pk if dataset else "", "combine": combine,
            "formula": formula, "action": action, "row": []}
    for row, type_, label, weight, gate, fields in rows:
        data["row"].append(row)
        data.update({f"c-{row}-type": type_, f"c-{row}-name": label, f"c-{row}-weight": weight})
        if gate:
            data[f"c-{row}-gate"] = "on"
        for key, value in fields.items():
            if isinstance(value, bool):
                if value:
                    data[f"c-{row}-f-{key}"] = "on"
            else:
                data[f"c-{row}-f-{key}"] = value
    return data


NUMBER = ("r1", "numeric_match", "Number is correct", "3", False,
          {"input": "{{sample.output_text}}", "reference": "{{item.reference_answer}}", "abs_tol": "0"})
LENGTH = ("r2", "length_bounds", "Short answer", "1", False,
          {"input": "{{sample.output_text}}", "unit": "words", "min": "", "max": "5"})


@pytest.fixture
def editor(project_with_roles, client_for):
    project, users = project_with_roles
    return project, client_for(users["editor"])


def test_new_page_offers_types_and_dataset_chips(editor, dataset):
    project, client = editor
    body = client.get(reverse("graders:new", args=[project.slug])).content.decode()
    assert "Number is correct" in body and "Length within limits" in body  # catalogue labels
    assert "{{item.reference_answer}}" in body and "{{item.id}}" in body and "{{sample.output_text}}" in body
    assert 'value="multi"' not in body  # the rubric itself is the multi


def test_save_compiles_weighted_mean_multi(editor, dataset):
    project, client = editor
    response = client.post(reverse("graders:new", args=[project.slug]), rubric_post(dataset, NUMBER, LENGTH))
    assert response.status_code == 302, response.content.decode()[:2000]
    grader = Grader.objects.get()
    spec = grader.spec
    assert spec["type"] == "multi" and sorted(spec["graders"]) == ["number_is_correct", "short_answer"]  # jsonb: no key order
    assert spec["graders"]["number_is_correct"]["name"] == "Number is correct"
    assert spec["graders"]["short_answer"] == {"type": "length_bounds", "name": "Short answer",
                                               "input": "{{sample.output_text}}", "unit": "words", "max": 5}
    assert spec["calculate_output"] == "(3 * number_is_correct + 1 * short_answer) / 4"
    assert grader.dataset == dataset and grader.rubric["criteria"][0]["weight"] == 3.0
    result = run_grader(spec, "The answer is 4 apples", {"reference_answer": "4"})
    assert result.reward == pytest.approx(1.0) and result.sub_rewards == {"number_is_correct": 1.0, "short_answer": 1.0}
    assert run_grader(spec, "5", {"reference_answer": "4"}).reward == pytest.approx(0.25)


def test_gate_zeroes_the_total_and_one_criterion_is_still_multi(editor, dataset):
    project, client = editor
    gate = ("r3", "regex_match", "Says a number", "0", True, {"input": "{{sample.output_text}}", "pattern": r"\d",
                                                              "mode": "search"})
    client.post(reverse("graders:new", args=[project.slug]), rubric_post(dataset, LENGTH, gate))
    spec = Grader.objects.get().spec
    assert spec["calculate_output"] == "(1 * short_answer) / 1 * floor(says_a_number)"
    assert run_grader(spec, "four", {}).reward == 0.0  # short, but the gate fails
    assert run_grader(spec, "4", {}).reward == 1.0

    client.post(reverse("graders:new", args=[project.slug]), rubric_post(dataset, NUMBER, name="Only one"))
    single = Grader.objects.get(name="Only one").spec
    assert single["type"] == "multi" and run_grader(single, "4", {"reference_answer": "4"}).sub_rewards == {
        "number_is_correct": 1.0}


def test_custom_formula_and_its_errors(editor, dataset):
    project, client = editor
    url = reverse("graders:new", args=[project.slug])
    response = client.post(url, rubric_post(dataset, NUMBER, LENGTH, combine="formula",
                                            formula="number_is_correct * (1 + short_anser"))
    assert response.status_code == 400 and not Grader.objects.exists()
    assert 'id="formula-error"' in response.content.decode()

    response = client.post(url, rubric_post(dataset, NUMBER, LENGTH, combine="formula", formula="number_is_correct + nope"))
    assert "unknown grader name &#x27;nope&#x27;" in response.content.decode()

    check = client.post(reverse("graders:builder_formula", args=[project.slug]),
                        rubric_post(dataset, NUMBER, LENGTH, formula="min(number_is_correct, short_answer"))
    assert 'id="formula-error"' in check.content.decode() and "short_answer" in check.content.decode()
    ok = client.post(reverse("graders:builder_formula", args=[project.slug]),
                     rubric_post(dataset, NUMBER, LENGTH, formula="min(number_is_correct, short_answer)"))
    assert 'id="formula-ok"' in ok.content.decode()

    client.post(url, rubric_post(dataset, NUMBER, LENGTH, combine="formula", formula="min(number_is_correct, short_answer)"))
    assert Grader.objects.get().spec["calculate_output"] == "min(number_is_correct, short_answer)"


def test_errors_are_shown_next_to_the_row_and_field(editor, dataset):
    project, client = editor
    bad_number = (*NUMBER[:5], {**NUMBER[5], "abs_tol": "a lot", "reference": ""})
    bad_regex = ("r9", "regex_match", "Pattern", "1", False, {"pattern": "([unclosed", "mode": "search"})
    url = reverse("graders:new", args=[project.slug])
    body = client.post(url, rubric_post(dataset, bad_number, LENGTH)).content.decode()
    assert "“a lot” is not a number." in body
    body = client.post(url, rubric_post(dataset, NUMBER, bad_regex)).content.decode()
    fieldset = body.split('id="c-r9"')[1]
    assert 'data-field="pattern"' in fieldset and "has-error" in fieldset.split('data-field="pattern"')[0][-80:]
    body = client.post(url, rubric_post(dataset, (*NUMBER[:3], "0", False, NUMBER[5]))).content.decode()
    assert "at least one criterion a weight above 0" in body
    assert not Grader.objects.exists()


def test_type_swap_and_new_row_via_htmx(editor, dataset):
    project, client = editor
    url = reverse("graders:builder_fields", args=[project.slug])
    body = client.get(url, {"row": "ab12", "c-ab12-type": "keywords", "dataset": dataset.pk},
                      headers={"HX-Request": "true"}).content.decode()
    assert 'name="c-ab12-f-keywords"' in body and "<textarea" in body  # string_list -> one per line
    assert 'name="c-ab12-f-mode"' in body and 'value="any"' in body  # choice -> select
    assert 'name="c-ab12-f-pattern"' not in body
    body = client.get(url, {"row": "ab12", "c-ab12-type": "score_model"}).content.decode()
    assert 'name="c-ab12-f-range-lo"' in body and 'name="c-ab12-f-range-hi"' in body
    assert "{{item.reference_answer}}" not in body  # no dataset: only the answer chip
    row = client.get(reverse("graders:builder_criterion", args=[project.slug]), {"dataset": dataset.pk}).content.decode()
    assert 'name="row"' in row and "{{item.reference_answer}}" in row


def test_add_and_remove_rows_without_javascript(editor, dataset):
    project, client = editor
    url = reverse("graders:new", args=[project.slug])
    body = client.post(url, rubric_post(dataset, NUMBER, action="add")).content.decode()
    assert body.count('name="row"') == 2 and not Grader.objects.exists()
    body = client.post(url, rubric_post(dataset, NUMBER, LENGTH, action="remove-r1")).content.decode()
    assert body.count('name="row"') == 1 and 'id="c-r2"' in body


def test_editing_a_locked_grader_saves_a_new_version(editor, dataset):
    project, client = editor
    client.post(reverse("graders:new", args=[project.slug]), rubric_post(dataset, NUMBER, LENGTH))
    v1 = Grader.objects.get()
    page = client.get(reverse("graders:edit", args=[project.slug, v1.pk])).content.decode()
    assert 'value="Number is correct"' in page and "{{item.reference_answer}}" in page  # rows come back
    client.post(reverse("graders:edit", args=[project.slug, v1.pk]), rubric_post(dataset, NUMBER, LENGTH, name="Sums rubric"))
    assert Grader.objects.count() == 1  # unlocked: edited in place

    grader_lock(grader=v1, reason="run ftjob-1")
    page = client.get(reverse("graders:edit", args=[project.slug, v1.pk])).content.decode()
    assert "Save as new version" in page
    response = client.post(reverse("graders:edit", args=[project.slug, v1.pk]), rubric_post(dataset, NUMBER))
    v2 = Grader.objects.exclude(pk=v1.pk).get()
    assert response.url.endswith(f"/graders/{v2.pk}/") and v2.version == 2 and v2.parent == v1
    v1.refresh_from_db()
    assert sorted(v1.spec["graders"]) == ["number_is_correct", "short_answer"] and list(v2.spec["graders"]) == ["number_is_correct"]
    detail = client.get(response.url).content.decode()
    assert "used by a run" in detail and "v2" in detail


def test_imported_multi_opens_in_the_builder_with_its_names(editor, dataset):
    project, client = editor
    spec = {"type": "multi", "name": "m", "calculate_output": "0.5 * acc + 0.5 * fmt", "graders": {
        "acc": {"type": "string_check", "name": "accuracy", "input": "{{sample.output_text}}",
                "reference": "{{item.reference_answer}}", "operation": "eq"},
        "fmt": {"type": "keywords", "keywords": ["="]}}}
    grader = grader_create(project=project, name="Imported", spec=spec, user=None, dataset=dataset)
    page = client.get(reverse("graders:edit", args=[project.slug, grader.pk])).content.decode()
    assert 'value="0.5 * acc + 0.5 * fmt"' in page and "<code>acc</code>" in page


def test_choosing_another_dataset_refreshes_the_chips(editor, dataset):
    from webapp.datasets.services import dataset_create_from_rows

    project, client = editor
    other = dataset_create_from_rows(project=project, name="Tax", user=None, source="t",
                                     train_rows=[{"messages": [{"role": "user", "content": "q"}], "rate": "19%"}],
                                     valid_rows=[])
    data = rubric_post(other, NUMBER, action="refresh")
    body = client.post(reverse("graders:new", args=[project.slug]), data, headers={"HX-Request": "true"}).content.decode()
    assert body.startswith('<div id="builder">') and "{{item.rate}}" in body and "{{item.id}}" not in body
    assert 'value="Number is correct"' in body and not Grader.objects.exists()


def test_nested_multi_is_edited_as_json_and_admin_lists_graders(editor, dataset, make_user, client_for):
    project, client = editor
    inner = {"type": "multi", "calculate_output": "a", "graders": {"a": {"type": "keywords", "keywords": ["x"]}}}
    grader = grader_create(project=project, name="Nested", spec={"type": "multi", "calculate_output": "n",
                                                                 "graders": {"n": inner}}, user=None)
    response = client.get(reverse("graders:edit", args=[project.slug, grader.pk]))
    assert response.url == reverse("graders:edit_json", args=[project.slug, grader.pk])
    admin = client_for(make_user("root", is_staff=True, is_superuser=True))
    assert "Nested" in admin.get("/admin/graders/grader/").content.decode()
    assert admin.get(f"/admin/graders/grader/{grader.pk}/change/").status_code == 200


def test_choosing_no_dataset_clears_it_through_the_service(editor, dataset):
    """The builder saves through grader_update alone (the view writes nothing itself), and
    “no dataset” clears it, on the grader and on a new version of a locked one."""
    project, client = editor
    client.post(reverse("graders:new", args=[project.slug]), rubric_post(dataset, NUMBER, LENGTH))
    grader = Grader.objects.get()
    assert grader.dataset == dataset
    client.post(reverse("graders:edit", args=[project.slug, grader.pk]), rubric_post(None, NUMBER, LENGTH))
    grader.refresh_from_db()
    assert grader.dataset is None
    grader_update_locked = grader_lock(grader=grader, reason="run ftjob-1")
    client.post(reverse("graders:edit", args=[project.slug, grader.pk]), rubric_post(dataset, NUMBER, LENGTH))
    v2 = Grader.objects.get(version=2)
    assert grader_update_locked.dataset is None and v2.dataset == dataset


def test_criterion_link_param_is_escaped_bounded_and_highlights_the_row(editor, dataset):
    """?criterion= comes from a link anyone can craft: it is shown escaped and cut to 200 characters."""
    project, client = editor
    client.post(reverse("graders:new", args=[project.slug]), rubric_post(dataset, NUMBER, LENGTH))
    url = reverse("graders:edit", args=[project.slug, Grader.objects.get().pk])
    page = client.get(url, {"criterion": '<script>alert(1)</script>"x' + "a" * 5000}).content.decode()
    assert 'id="focus-missing"' in page and "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;x" in page and "a" * 201 not in page
    page = client.get(url, {"criterion": "number_is_correct"}).content.decode()
    assert 'id="focus-missing"' not in page
