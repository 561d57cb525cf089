"""The runs list (sparklines, New run button) and the compare page (curves + config diff)."""

import json

import pytest
from django.urls import reverse

from tests.webapp.runs.factories import make_run
from webapp.runs.charts import config_diff, sparkline_svg
from webapp.runs.models import RunStatus


@pytest.fixture
def runs(project_with_roles, dataset):
    project, users = project_with_roles
    a = make_run(project, dataset, users["owner"], steps=12, suffix="baseline")
    b = make_run(project, dataset, users["owner"], steps=6, status=RunStatus.SUCCEEDED, suffix="higher-lr",
                 config={"learning_rate": 3e-5, "group_size": 4, "lora": {"rank": 16}})
    c = make_run(project, dataset, users["owner"], steps=0, status=RunStatus.QUEUED)
    return project, users, (a, b, c)


def test_list_shows_runs_with_sparklines_and_links(runs, client_for):
    project, users, (a, b, c) = runs
    body = client_for(users["viewer"]).get(reverse("runs:list", args=[project.slug])).content.decode()
    for run in (a, b, c):
        assert reverse("runs:detail", args=[project.slug, run.pk]) in body
    assert "baseline" in body and "higher-lr" in body and "tiny-test-model" in body and "Sums" in body
    assert "rubric" in body  # the grader's name
    assert body.count('<svg class="sparkline"') == 2 and 'class="sparkline empty"' in body
    row = body.split(f'data-run="{a.pk}"')[1].split("</tr>")[0]
    points = row.split('points="')[1].split('"')[0].split()
    assert len(points) == 12  # one point per step
    ys = [float(p.split(",")[1]) for p in points]
    assert ys[-1] < ys[0]  # the reward rose: SVG y grows downwards
    assert reverse("runs:launch", args=[project.slug]) not in body  # viewers cannot launch
    body = client_for(users["editor"]).get(reverse("runs:list", args=[project.slug])).content.decode()
    assert reverse("runs:launch", args=[project.slug]) in body and "New run" in body


def test_sparkline_escapes_its_label():
    svg = sparkline_svg([1, 2, 3], [0.1, 0.5, 0.9], label='<script>"x"</script>')
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "<polyline" in svg


def test_compare_overlays_curves_and_highlights_differences(runs, client_for):
    project, users, (a, b, _) = runs
    client = client_for(users["viewer"])
    response = client.get(reverse("runs:compare", args=[project.slug]) + f"?run={a.pk}&run={b.pk}")
    body = response.content.decode()
    data = json.loads(body.split('id="compare-data" type="application/json">')[1].split("</script>")[0])
    assert [r["name"] for r in data] == ["baseline", "higher-lr"]
    assert data[0]["train"]["x"] == list(range(1, 13)) and data[1]["valid"]["x"] == [5]
    table = body.split('id="config-diff"')[1].split("</table>")[0]
    differing = [row for row in table.split("<tr") if 'class="differs"' in row]
    labels = {row.split('scope="row">')[1].split("<")[0] for row in differing}
    # in the form's words, only what differs by default: 3e-5 is 0.6× the usual 5e-5
    assert {"Learning speed", "Tasks per step", "Steps"} <= labels
    assert "0.2× the usual" in table and "0.6× the usual" in table and "2 tasks" in table
    assert "Answers per task" not in table  # the same in both
    assert "config." not in body and "/tmp" not in body and "output_dir" not in body
    engineers = body.split('id="engineer-diff"')[1].split("</details>")[0]
    assert "lora.rank" in engineers  # set outside the form: folded away, by its config name
    everything = client.get(reverse("runs:compare", args=[project.slug]) + f"?run={a.pk}&run={b.pk}&all=1")
    full = everything.content.decode().split('id="config-diff"')[1].split("</table>")[0]
    assert "Answers per task" in full and "4 answers" in full


def test_compare_needs_two_runs_of_this_project(runs, client_for, make_user):
    project, users, (a, _, _) = runs
    client = client_for(users["viewer"])
    response = client.get(reverse("runs:compare", args=[project.slug]) + f"?run={a.pk}")
    assert response.status_code == 302 and response.url == reverse("runs:list", args=[project.slug])
    assert client.get(reverse("runs:compare", args=[project.slug]) + f"?run={a.pk}&run=ftjob-nope").status_code == 404


def test_config_diff_handles_missing_keys():
    rows = {r["key"]: r for r in config_diff([{"a": 1, "n": {"x": 1}}, {"a": 1, "b": "z"}])}
    assert rows["a"]["differs"] is False and rows["b"]["values"] == ["—", '"z"'] and rows["n.x"]["differs"]
