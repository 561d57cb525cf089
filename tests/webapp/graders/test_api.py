"""The grader API: OpenAI's validate/run shapes (also through the official SDK) and CRUD."""

import pytest

from trainer.grading import run_grader

pytestmark = pytest.mark.django_db

EXACT = {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}",
         "reference": "{{item.reference_answer}}", "operation": "eq"}
MULTI = {"type": "multi", "name": "m", "calculate_output": "0.5 * exact + 0.5 * near", "graders": {
    "exact": EXACT,
    "near": {"type": "text_similarity", "name": "near", "input": "{{sample.output_text}}",
             "reference": "{{item.reference_answer}}", "evaluation_metric": "fuzzy_match"}}}


@pytest.fixture
def api(project_with_roles, api_client_for):
    project, users = project_with_roles
    return project, api_client_for(users["editor"], project)


def post(client, url, body):
    return client.post(url, body, content_type="application/json")


def test_validate_echoes_or_names_the_field(api):
    _, client = api
    ok = post(client, "/v1/fine_tuning/alpha/graders/validate", {"grader": EXACT})
    assert ok.status_code == 200 and ok.json() == {"grader": EXACT}
    bad = post(client, "/v1/fine_tuning/alpha/graders/validate", {"grader": {**EXACT, "operation": "equals"}})
    error = bad.json()["error"]
    assert bad.status_code == 400 and error["param"] == "grader.operation" and "eq, ne, like, ilike" in error["message"]
    assert post(client, "/v1/fine_tuning/alpha/graders/validate", {}).json()["error"]["param"] == "grader"


def test_run_answers_exactly_the_engines_openai_shape(api):
    _, client = api
    body = {"grader": MULTI, "model_sample": "Paris", "item": {"reference_answer": "Paris"}}
    response = post(client, "/v1/fine_tuning/alpha/graders/run", body)
    expected = run_grader(MULTI, "Paris", {"reference_answer": "Paris"}).to_openai()
    got = response.json()
    assert response.status_code == 200 and got["reward"] == 1.0 and got["sub_rewards"] == {"exact": 1.0, "near": 1.0}
    got["metadata"].pop("execution_time"), expected["metadata"].pop("execution_time")
    assert got == expected
    assert set(got) == {"reward", "sub_rewards", "metadata", "model_grader_token_usage_per_model"}
    # reference_answer beside the item, as older clients send it
    legacy = post(client, "/v1/fine_tuning/alpha/graders/run", {"grader": EXACT, "model_sample": "x", "reference_answer": "x"})
    assert legacy.json()["reward"] == 1.0
    missing = post(client, "/v1/fine_tuning/alpha/graders/run", {"grader": EXACT, "model_sample": "x", "item": {}}).json()
    assert missing["reward"] == 0 and missing["metadata"]["errors"]["invalid_variable_error"] is True
    assert post(client, "/v1/fine_tuning/alpha/graders/run", {"grader": EXACT}).status_code == 400


def test_saved_grader_crud_and_versioning(api, project_with_roles, api_client_for):
    project, client = api
    created = post(client, "/v1/graders", {"name": "Exact", "grader": EXACT}).json()
    assert created["object"] == "grader" and created["id"].startswith("grader-") and created["version"] == 1
    assert created["grader"] == EXACT and created["locked"] is False and isinstance(created["created_at"], int)
    gid = created["id"]
    assert [g["id"] for g in client.get("/v1/graders").json()["data"]] == [gid]
    assert client.get(f"/v1/graders/{gid}").json()["name"] == "Exact"

    updated = post(client, f"/v1/graders/{gid}", {"grader": {**EXACT, "operation": "ilike"}}).json()
    assert updated["id"] == gid and updated["grader"]["operation"] == "ilike"
    from webapp.datasets.services import dataset_create_from_rows

    tasks = dataset_create_from_rows(project=project, name="t", user=None, valid_rows=[],
                                     train_rows=[{"messages": [{"role": "user", "content": "q"}]}])
    assert post(client, f"/v1/graders/{gid}", {"dataset_id": tasks.pk}).json()["dataset_id"] == tasks.pk
    assert post(client, f"/v1/graders/{gid}", {"name": "Exact"}).json()["dataset_id"] == tasks.pk  # left as it is
    assert post(client, f"/v1/graders/{gid}", {"dataset_id": None}).json()["dataset_id"] is None  # cleared
    bad = post(client, f"/v1/graders/{gid}", {"grader": {**EXACT, "type": "nope"}})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "grader.type"

    from webapp.graders.models import Grader
    from webapp.graders.services import grader_lock

    grader_lock(grader=Grader.objects.get(pk=gid), reason="run ftjob-1")
    v2 = post(client, f"/v1/graders/{gid}", {"grader": EXACT}).json()
    assert v2["id"] != gid and v2["version"] == 2 and v2["parent_id"] == gid
    assert client.get(f"/v1/graders/{gid}").json()["locked"] is True
    assert client.delete(f"/v1/graders/{gid}").status_code == 409
    assert client.delete(f"/v1/graders/{v2['id']}").json() == {"id": v2["id"], "object": "grader", "deleted": True}

    other = api_client_for(project_with_roles[1]["outsider"])
    assert other.get(f"/v1/graders/{gid}").status_code == 404
    assert other.get("/v1/graders").json()["data"] == []


def test_openai_sdk_validate_and_run_against_live_server(live_server, project_with_roles, api_key_for):
    from openai import BadRequestError, OpenAI

    project, users = project_with_roles
    client = OpenAI(base_url=f"{live_server.url}/v1", api_key=api_key_for(users["viewer"]),
                    project=project.slug, max_retries=0)
    graders = client.fine_tuning.alpha.graders
    assert graders.validate(grader=EXACT).grader.type == "string_check"
    result = graders.run(grader=MULTI, model_sample="Pariss", item={"reference_answer": "Paris"})
    assert result.sub_rewards["exact"] == 0.0 and 0.8 < result.sub_rewards["near"] < 1
    assert result.reward == pytest.approx(result.sub_rewards["near"] / 2)
    assert result.metadata.type == "multi" and result.metadata.errors.invalid_variable_error is False
    python = {"type": "python", "name": "py", "source": "def grade(sample, item):\n    return len(sample['output_text']) / 10\n"}
    assert graders.run(grader=python, model_sample="12345", item={}).reward == pytest.approx(0.5)
    with pytest.raises(BadRequestError) as info:
        graders.validate(grader={**EXACT, "operation": "equals"})
    assert "operation" in info.value.message


def test_python_graders_of_two_teams_never_share_a_worker(project_with_roles, api_client_for):
    """Identical source from two teams: the second never sees what the first one's items left
    in module state (the old pool bound warm workers to the source alone)."""
    from webapp.projects.models import Project

    project, users = project_with_roles
    ours = api_client_for(users["editor"], project)
    theirs = api_client_for(users["outsider"], Project.objects.get(name="Other team"))
    source = ("SEEN = []\ndef grade(sample, item):\n    SEEN.extend(item.values())\n"
              "    print(SEEN)\n    return len(SEEN) / 10\n")
    grader = {"type": "python", "name": "spy", "source": source}
    body = {"grader": grader, "model_sample": "x", "item": {"client_ssn": "078-05-1120"}}
    assert post(ours, "/v1/fine_tuning/alpha/graders/run", body).json()["reward"] == 0.1
    assert post(ours, "/v1/fine_tuning/alpha/graders/run", body).json()["reward"] == 0.2
    spied = post(theirs, "/v1/fine_tuning/alpha/graders/run", {**body, "item": {}}).json()
    assert spied["reward"] == 0.0 and "078-05-1120" not in str(spied), spied
