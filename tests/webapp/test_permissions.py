"""Every URL pattern, every role: 404 for non-members (and for other projects' objects),
403 when the role is too low, allowed otherwise. A new URL without an entry here fails."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests.helpers import jsonl, rft_row
from tests.webapp.runs.factories import make_run
from webapp.datasets.services import file_create
from webapp.evals.models import AbReview, EvalDefinition, EvalItem, EvalRunLink, Evaluation
from webapp.graders.models import GraderCheck
from webapp.graders.services import grader_create
from webapp.insights.models import DifficultyProfile
from webapp.projects.models import Membership
from webapp.reviews.models import ReviewItem
from webapp.runs.models import RunPreflight, SampleFeedback

RANK = {"outsider": 0, "viewer": 1, "editor": 2, "owner": 3}


def task_form():
    return {"split": "train", "prompt": "new prompt", "reference_answer": "x"}


def upload_form():
    return {"name": "D", "train_file": SimpleUploadedFile("t.jsonl", jsonl([rft_row("q", "a")])),
            "holdout_percent": 0, "seed": 0}


GRADER_SPEC = {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}",
               "reference": "{{item.reference_answer}}", "operation": "eq"}


def rubric_form():
    return {"name": "R", "row": "r1", "c-r1-type": "keywords", "c-r1-weight": "1", "c-r1-f-keywords": "a",
            "combine": "weighted_mean", "action": "save"}


GRADER_URLS = {
    "graders:list": ("get", "viewer", lambda o: {}, None),
    "graders:new": ("post", "editor", lambda o: {}, rubric_form),
    "graders:import": ("post", "editor", lambda o: {}, lambda: {"name": "I", "grader_json": json.dumps(GRADER_SPEC)}),
    "graders:builder_criterion": ("get", "editor", lambda o: {}, None),
    "graders:builder_fields": ("get", "editor", lambda o: {}, None),
    "graders:builder_formula": ("post", "editor", lambda o: {}, rubric_form),
    "graders:detail": ("get", "viewer", lambda o: {"pk": o["grader"]}, None),
    "graders:edit": ("post", "editor", lambda o: {"pk": o["grader"]}, rubric_form),
    "graders:edit_json": ("get", "editor", lambda o: {"pk": o["grader"]}, None),
    "graders:delete": ("post", "editor", lambda o: {"pk": o["grader"]}, dict),
    "graders:try": ("post", "viewer", lambda o: {"pk": o["grader"]}, lambda: {"sample": "a"}),
    "graders:check": ("post", "editor", lambda o: {"pk": o["grader"]}, dict),
    "graders:check_status": ("get", "viewer", lambda o: {"pk": o["grader"], "check_pk": o["check"]}, None),
}

def run_kw(**extra):
    return lambda o: {"pk": o["run"], **{k: o[v] for k, v in extra.items()}}


RUN_URLS = {  # the run pages (the launch form's entries are with the launch tests' owner)
    "runs:list": ("get", "viewer", lambda o: {}, None),
    "runs:compare": ("get", "viewer", lambda o: {}, None),
    "runs:detail": ("get", "viewer", run_kw(), None),
    "runs:live": ("get", "viewer", run_kw(), None),
    "runs:metrics": ("get", "viewer", run_kw(), None),
    "runs:cancel": ("post", "editor", run_kw(), dict),
    "runs:pause": ("post", "editor", run_kw(), dict),
    "runs:resume": ("post", "editor", run_kw(), dict),
    "runs:checkpoint_download": ("get", "viewer", run_kw(ckpt="checkpoint"), None),
    "runs:samples": ("get", "viewer", run_kw(), None),
    "runs:sample_task": ("get", "viewer", run_kw(task_key="task_key"), None),
    "runs:sample_feedback": ("post", "viewer", run_kw(sample_pk="sample"), lambda: {"comment": "wrong"}),
    # the flag is the owner's: viewers may take back only their own (tests/webapp/runs/test_views_samples.py)
    "runs:sample_feedback_delete": ("post", "editor", run_kw(sample_pk="sample", feedback_pk="feedback"), None),
    "runs:launch": ("post", "editor", lambda o: {}, dict),  # an empty form: 400 with field errors
    "runs:estimate": ("post", "editor", lambda o: {}, dict),
    "runs:preflight": ("get", "editor", lambda o: {"pk": o["preflight"]}, None),
}

EXPERT_URLS = {  # the expert's loop: findings, reviews, agreement, difficulty (webapp.insights, webapp.reviews)
    "insights:run_findings": ("get", "viewer", run_kw(), None),
    "insights:regrade": ("post", "editor", run_kw(), dict),
    "insights:difficulty": ("get", "viewer", lambda o: {"pk": o["dataset"]}, None),
    "insights:difficulty_start": ("post", "editor", lambda o: {"pk": o["dataset"]}, dict),
    "insights:difficulty_status": ("get", "viewer", lambda o: {"profile_pk": o["difficulty"]}, None),
    "insights:difficulty_apply": ("post", "editor", lambda o: {"profile_pk": o["difficulty"]}, dict),
    "insights:difficulty_review": ("post", "editor", lambda o: {"profile_pk": o["difficulty"]}, dict),
    "reviews:index": ("get", "viewer", lambda o: {}, None),
    "reviews:grader": ("get", "viewer", lambda o: {"pk": o["grader"]}, None),
    "reviews:report": ("get", "viewer", lambda o: {"pk": o["grader"]}, None),
    "reviews:rescore": ("post", "editor", lambda o: {"pk": o["grader"]}, dict),
    "reviews:add": ("post", "editor", lambda o: {"pk": o["grader"]}, lambda: {"source": "pasted", "output_text": "a"}),
    "reviews:next": ("get", "viewer", lambda o: {"pk": o["grader"]}, None),
    "reviews:item": ("post", "viewer", lambda o: {"pk": o["grader"], "item_pk": o["review_item"]},
                     lambda: {"score-total": "1"}),
}

EVAL_URLS = {  # evaluations (webapp/evals)
    "evals:list": ("get", "viewer", lambda o: {}, None),
    "evals:new": ("post", "editor", lambda o: {}, dict),  # an empty form: 400 with field errors
    "evals:compare": ("get", "viewer", lambda o: {}, None),
    "evals:run_summary": ("get", "viewer", lambda o: {"run_pk": o["run"]}, None),
    "evals:run_evaluate": ("post", "editor", lambda o: {"run_pk": o["run"]}, dict),
    "evals:detail": ("get", "viewer", lambda o: {"pk": o["evaluation"]}, None),
    "evals:progress": ("get", "viewer", lambda o: {"pk": o["evaluation"]}, None),
    "evals:items": ("get", "viewer", lambda o: {"pk": o["evaluation"]}, None),
    "evals:cancel": ("post", "editor", lambda o: {"pk": o["evaluation"]}, dict),
    "evals:ab_new": ("post", "editor", lambda o: {}, dict),
    "evals:ab_review": ("post", "viewer", lambda o: {"pk": o["ab_review"]}, lambda: {"pick": "tie"}),
    "evals:ab_results": ("get", "viewer", lambda o: {"pk": o["ab_review"]}, None),
    "evals:ab_calibrate": ("post", "editor", lambda o: {"pk": o["ab_review"]}, lambda: {"task_key": "x"}),
    "playground:page": ("get", "viewer", lambda o: {}, None),
    "playground:tasks": ("get", "viewer", lambda o: {}, None),
    "playground:stream": ("post", "viewer", lambda o: {}, lambda: {"model": "nope", "message": "hi"}),
    "playground:grade": ("post", "viewer", lambda o: {}, dict),
}

# url name -> (method, minimum role, kwargs(objs) -> dict, post data factory)
PROJECT_URLS = {
    "projects:detail": ("get", "viewer", lambda o: {}, None),
    "projects:members": ("get", "viewer", lambda o: {}, None),
    "projects:member_add": ("post", "owner", lambda o: {}, lambda: {"username": "spare", "role": "viewer"}),
    "projects:member_role": ("post", "owner", lambda o: {"pk": o["membership"]}, lambda: {"role": "editor"}),
    "projects:member_remove": ("post", "owner", lambda o: {"pk": o["membership"]}, dict),
    "datasets:upload": ("post", "editor", lambda o: {}, upload_form),
    "datasets:csv_map": ("get", "editor", lambda o: {"token": "unknown-token"}, None),
    "datasets:detail": ("get", "viewer", lambda o: {"pk": o["dataset"]}, None),
    "datasets:download": ("get", "viewer", lambda o: {"pk": o["dataset"]}, None),
    "datasets:duplicate": ("post", "editor", lambda o: {"pk": o["dataset"]}, dict),
    "datasets:delete": ("post", "editor", lambda o: {"pk": o["dataset"]}, dict),
    "datasets:task_new": ("post", "editor", lambda o: {"pk": o["dataset"]}, task_form),
    "datasets:task_preview": ("post", "viewer", lambda o: {"pk": o["dataset"]}, task_form),
    "datasets:task_detail": ("get", "viewer", lambda o: {"pk": o["dataset"], "task_pk": o["task"]}, None),
    "datasets:task_row": ("get", "viewer", lambda o: {"pk": o["dataset"], "task_pk": o["task"]}, None),
    "datasets:task_edit": ("post", "editor", lambda o: {"pk": o["dataset"], "task_pk": o["task"]}, task_form),
    "datasets:task_delete": ("post", "editor", lambda o: {"pk": o["dataset"], "task_pk": o["task"]}, dict),
    **GRADER_URLS,
    **RUN_URLS,
    **EXPERT_URLS,
    **EVAL_URLS,
}
API_URLS = {  # name -> [(method, minimum role)]
    "api_files": [("get", "viewer"), ("post", "editor")],
    "api_file_detail": [("get", "viewer"), ("delete", "editor")],
    "api_file_content": [("get", "viewer")],
    "api_grader_validate": [("post", "viewer")],
    "api_grader_run": [("post", "viewer")],
    "api_graders": [("get", "viewer"), ("post", "editor")],
    "api_grader_detail": [("get", "viewer"), ("post", "editor"), ("delete", "editor")],
    "api_jobs": [("get", "viewer"), ("post", "editor")],
    "api_job_detail": [("get", "viewer")],
    "api_job_cancel": [("post", "editor")],
    "api_job_pause": [("post", "editor")],
    "api_job_resume": [("post", "editor")],
    "api_job_events": [("get", "viewer")],
    "api_job_checkpoints": [("get", "viewer")],
    "api_job_metrics": [("get", "viewer")],
    "api_job_samples": [("get", "viewer")],
    "api_job_diagnosis": [("get", "viewer")],
    "api_dataset_difficulty": [("get", "viewer")],
    "api_reviews": [("post", "viewer")],
    "api_grader_agreement": [("get", "viewer")],
    "api_grader_rescore": [("post", "editor")],
    "api_checkpoint_download": [("get", "viewer")],
    "api_chat_completions": [("post", "viewer")],
    "api_models": [("get", "viewer")],
    "api_model_detail": [("get", "viewer")],
    "api_evals": [("get", "viewer"), ("post", "editor")],
    "api_eval_detail": [("get", "viewer"), ("post", "editor"), ("delete", "editor")],
    "api_eval_runs": [("get", "viewer"), ("post", "editor")],
    "api_eval_run_detail": [("get", "viewer"), ("delete", "editor")],
    "api_eval_run_cancel": [("post", "editor")],
    "api_eval_run_output_items": [("get", "viewer")],
    "api_eval_run_output_item_detail": [("get", "viewer")],
}
# Allowed callers may still get these statuses (the action does not fit the run's state; no
# inference engine runs in this test: a chat answer is 503 once access is granted).
API_ALLOWED_STATUS = {"api_job_resume": {400}, "api_chat_completions": {503}}


def grader_api_call(client, method, name, objs):
    url = reverse(name, kwargs={"grader_id": objs["grader"]} if name == "api_grader_detail" else {})
    if method in ("get", "delete"):
        return getattr(client, method)(url)
    body = {"api_grader_validate": {"grader": GRADER_SPEC},
            "api_grader_run": {"grader": GRADER_SPEC, "model_sample": "a", "item": {"reference_answer": "a"}}}
    return client.post(url, body.get(name, {"name": "g", "grader": GRADER_SPEC}), content_type="application/json")


def job_api_call(client, method, name, objs):
    if name == "api_jobs":
        if method == "get":
            return client.get(reverse(name))
        return client.post(reverse(name), {
            "model": "smollm2-135m-instruct", "training_file": objs["file"],
            "method": {"type": "reinforcement", "reinforcement": {"grader": GRADER_SPEC}},
        }, content_type="application/json")
    return getattr(client, method)(reverse(name, kwargs={"job_id": objs["run"]}), content_type="application/json")


def review_api_call(client, method, name, objs):
    if name == "api_dataset_difficulty":
        return client.get(reverse(name, kwargs={"dataset_id": objs["dataset"]}))
    if name == "api_reviews":
        return client.post(reverse(name), {"grader_id": objs["grader"], "sample_id": objs["sample"], "score": 1},
                           content_type="application/json")
    return getattr(client, method)(reverse(name, kwargs={"grader_id": objs["grader"]}), content_type="application/json")


API_CALLS = {name: grader_api_call for name in ("api_grader_validate", "api_grader_run", "api_graders", "api_grader_detail")}
API_CALLS.update({name: review_api_call for name in ("api_reviews", "api_grader_agreement", "api_grader_rescore",
                                                     "api_dataset_difficulty")})
API_CALLS.update({name: job_api_call for name in API_URLS if name.startswith("api_job")})
API_CALLS["api_checkpoint_download"] = lambda client, method, name, objs: client.get(
    reverse(name, kwargs={"job_id": objs["run"], "checkpoint_id": objs["checkpoint"]}))
API_CALLS["api_models"] = lambda client, method, name, objs: client.get(reverse(name))
API_CALLS["api_model_detail"] = lambda client, method, name, objs: client.get(
    reverse(name, kwargs={"model_id": "smollm2-135m-instruct"}))
API_CALLS["api_chat_completions"] = lambda client, method, name, objs: client.post(reverse(name), {
    "model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "hi"}]},
    content_type="application/json")
EVAL_BODY = {"name": "e", "data_source_config": {"type": "custom", "item_schema": {"type": "object"}},
             "testing_criteria": [GRADER_SPEC]}
EVAL_RUN_BODY = {"name": "r", "data_source": {"type": "jsonl", "source": {"type": "file_content", "content": [
    {"item": {"reference_answer": "a"}, "sample": {"output_text": "a"}}]}}}


def eval_api_call(client, method, name, objs):
    kwargs = {"eval_id": objs["eval"], "run_id": objs["evaluation"], "output_item_id": objs["output_item"]}
    wanted = {"api_evals": [], "api_eval_detail": ["eval_id"], "api_eval_runs": ["eval_id"],
              "api_eval_run_output_item_detail": ["eval_id", "run_id", "output_item_id"]}.get(name, ["eval_id", "run_id"])
    url = reverse(name, kwargs={k: kwargs[k] for k in wanted})
    if method == "post":
        body = {"api_evals": EVAL_BODY, "api_eval_runs": EVAL_RUN_BODY, "api_eval_detail": {"name": "n"}}.get(name, {})
        return client.post(url, body, content_type="application/json")
    return getattr(client, method)(url)


API_CALLS.update({name: eval_api_call for name in API_URLS if name.startswith("api_eval")})
# Not scoped to a project; each is covered by the tests named here.
OTHER_URLS = {
    "home": "test_login_required_everywhere", "login": "test_login_page", "logout": "test_login_page",
    "projects:list": "test_project_list_shows_only_memberships", "projects:create": "test_project_list_shows_only_memberships",
    "accounts:api_keys": "accounts/test_api_keys.py", "accounts:api_key_revoke": "accounts/test_api_keys.py",
    "system_status": "test_system_pages_are_staff_only", "system_ping": "test_system_pages_are_staff_only",
    "system_ping_status": "test_system_pages_are_staff_only", "healthz": "test_login_required_everywhere",
    "system_recent_pings": "test_system_pages_are_staff_only", "favicon": "test_login_required_everywhere",
}


def all_url_names(patterns=None, prefix=""):
    for p in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(p, URLResolver):
            if p.namespace == "admin":
                continue
            yield from all_url_names(p.url_patterns, f"{prefix}{p.namespace}:" if p.namespace else prefix)
        elif isinstance(p, URLPattern) and p.name:
            yield prefix + p.name


def test_every_url_pattern_is_in_the_matrix():
    names = set(all_url_names())
    covered = set(PROJECT_URLS) | set(API_URLS) | set(OTHER_URLS)
    assert names - covered == set(), "add these URLs to the permission matrix"
    assert covered - names == set(), "stale matrix entries"


def make_objects(project, users, make_user):
    from webapp.datasets.services import Upload, dataset_import_jsonl

    data = jsonl([rft_row("q1", "a"), rft_row("q2", "b")])
    dataset = dataset_import_jsonl(project=project, name="D", user=users["owner"],
                                   train=Upload("d.jsonl", len(data), lambda: data))
    membership = Membership.objects.create(project=project, user=make_user(f"member-{project.pk}"), role="viewer")
    file = file_create(project=project, user=users["owner"], filename="f.jsonl", data=data)
    grader = grader_create(project=project, name="G", spec=GRADER_SPEC, user=users["owner"], dataset=dataset)
    check = GraderCheck.objects.create(grader=grader, dataset=dataset, status="done")
    run_data = dataset_import_jsonl(project=project, name="For the run", user=users["owner"],
                                    train=Upload("r.jsonl", len(data), lambda: data))
    run = make_run(project, run_data, users["owner"], steps=2)  # locks its dataset, not `dataset`
    sample = run.samples.first()
    feedback = SampleFeedback.objects.create(sample=sample, user=users["owner"], comment="wrong")
    preflight = RunPreflight.objects.create(project=project, dataset=dataset, grader_spec=GRADER_SPEC, config={})
    difficulty = DifficultyProfile.objects.create(project=project, dataset=dataset, grader_spec=GRADER_SPEC,
                                                  base_model="tiny", k=2, max_tasks=2)
    review_item = ReviewItem.objects.create(project=project, grader_name=grader.name, source="pasted",
                                            prompt=[{"role": "user", "content": "q1"}], item={}, output_text="a")
    evaluation = Evaluation.objects.create(project=project, model_name="smollm2-135m-instruct",
                                           base_model="smollm2-135m-instruct", dataset=dataset, split="train",
                                           grader_spec=GRADER_SPEC, run=run, purpose="run_base")
    ab_review = AbReview.objects.create(project=project, baseline=evaluation, candidate=evaluation)
    definition = EvalDefinition.objects.create(project=project, name="E", testing_criteria=[GRADER_SPEC],
                                               data_source_config={"type": "custom", "item_schema": {}})
    EvalRunLink.objects.create(evaluation=evaluation, definition=definition,
                               data_source={"type": "jsonl", "source": {"type": "file_content", "content": []}})
    output_item = EvalItem.objects.create(evaluation=evaluation, index=0, task_key="k", prompt=[], item={},
                                          output_text="a", reward=1.0)
    return {"preflight": preflight.pk, "dataset": dataset.pk, "task": dataset.tasks.first().pk, "membership": membership.pk, "file": file.id,
            "grader": grader.pk, "check": check.pk, "run": run.pk, "sample": sample.pk,
            "task_key": sample.task_key, "checkpoint": run.checkpoints.get().pk, "evaluation": evaluation.pk,
            "ab_review": ab_review.pk, "review_item": review_item.pk,
            "difficulty": difficulty.pk, "feedback": feedback.pk, "eval": definition.pk,
            "output_item": f"outputitem_{output_item.pk}"}


@pytest.fixture
def world(project_with_roles, make_user):
    project, users = project_with_roles
    make_user("spare")
    objs = make_objects(project, users, make_user)
    other = Membership.objects.get(user=users["outsider"]).project
    other_objs = make_objects(other, {"owner": users["outsider"]}, make_user)
    return project, users, objs, other, other_objs


def call(client, method, url, data_factory):
    if method == "get":
        return client.get(url)
    return client.post(url, data_factory() if data_factory else {})


@pytest.mark.parametrize("name", sorted(PROJECT_URLS))
@pytest.mark.parametrize("who", ["outsider", "viewer", "editor", "owner"])
def test_project_urls(name, who, world, client_for):
    project, users, objs, _, _ = world
    method, min_role, kwargs, data = PROJECT_URLS[name]
    response = call(client_for(users[who]), method, reverse(name, kwargs={"slug": project.slug, **kwargs(objs)}), data)
    if who == "outsider":
        assert response.status_code == 404
    elif RANK[who] < RANK[min_role]:
        assert response.status_code == 403
    elif name == "datasets:csv_map":
        assert response.status_code == 404  # allowed, but the (session-bound) upload token is unknown
    else:
        assert response.status_code not in (403, 404, 405), response.status_code


ALL_OBJECT_KEYS = dict.fromkeys(["dataset", "task", "membership", "grader", "check", "run", "sample",
                                 "checkpoint", "task_key", "preflight", "review_item", "difficulty",
                                 "feedback", "evaluation", "ab_review"], 1)


@pytest.mark.parametrize("name", sorted(n for n, (_, _, kw, _) in PROJECT_URLS.items() if kw(ALL_OBJECT_KEYS)))
def test_other_projects_objects_are_404_even_for_owners(name, world, client_for):
    """An owner of project A asking for project B's objects under A's slug gets 404."""
    project, users, _, _, other_objs = world
    method, _, kwargs, data = PROJECT_URLS[name]
    url = reverse(name, kwargs={"slug": project.slug, **kwargs(other_objs)})
    assert call(client_for(users["owner"]), method, url, data).status_code == 404


@pytest.mark.parametrize("name", sorted(PROJECT_URLS))
def test_login_required_everywhere(name, world, client):
    project, _, objs, _, _ = world
    method, _, kwargs, data = PROJECT_URLS[name]
    response = call(client, method, reverse(name, kwargs={"slug": project.slug, **kwargs(objs)}), data)
    assert response.status_code == 302 and "/accounts/login/" in response.url
    assert client.get("/").status_code == 302
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/favicon.ico").status_code == 301  # public, like the static file it names


def api_call(client, method, name, file_id, project, objs=None):
    if name in API_CALLS:  # endpoints with their own ids and JSON bodies
        return API_CALLS[name](client, method, name, objs)
    url = reverse(name, kwargs={"file_id": file_id} if name != "api_files" else {})
    if method == "post":
        return client.post(url, {"file": SimpleUploadedFile("t.jsonl", jsonl([rft_row("q", "a")])),
                                 "purpose": "fine-tune"})
    return getattr(client, method)(url)


@pytest.mark.parametrize("name,method", [(n, m) for n, ms in sorted(API_URLS.items()) for m, _ in ms])
@pytest.mark.parametrize("who", ["outsider", "viewer", "editor", "owner"])
def test_api_urls(name, method, who, world, api_client_for):
    project, users, objs, _, _ = world
    min_role = dict(API_URLS[name])[method]
    client = api_client_for(users[who], project)
    response = api_call(client, method, name, objs["file"], project, objs)
    if who == "outsider":
        assert response.status_code == 404, response.content
        assert "error" in response.json()
    elif RANK[who] < RANK[min_role]:
        assert response.status_code == 403 and response.json()["error"]["code"] == "permission_denied"
    else:
        assert response.status_code in {200} | API_ALLOWED_STATUS.get(name, set()), response.content


@pytest.mark.parametrize("name", ["api_file_detail", "api_file_content"])
def test_api_other_projects_files_are_404(name, world, api_client_for):
    project, users, _, _, other_objs = world
    for client in (api_client_for(users["owner"], project), api_client_for(users["owner"])):
        assert api_call(client, "get", name, other_objs["file"], project).status_code == 404


def test_api_list_never_shows_other_projects(world, api_client_for):
    project, users, objs, _, other_objs = world
    ids = [f["id"] for f in api_client_for(users["owner"]).get("/v1/files").json()["data"]]
    assert objs["file"] in ids and other_objs["file"] not in ids


def test_project_list_shows_only_memberships(world, client_for):
    project, users, _, other, _ = world
    body = client_for(users["viewer"]).get(reverse("projects:list")).content.decode()
    assert project.name in body and other.name not in body
    response = client_for(users["viewer"]).post(reverse("projects:create"), {"name": "Viewer's own"})
    assert response.status_code == 302  # anyone may start a project, and owns it


def test_login_page(client, make_user):
    make_user("ann")
    assert client.get(reverse("login")).status_code == 200
    response = client.post(reverse("login"), {"username": "ann", "password": "pw-ann"})
    assert response.status_code == 302 and response.url == reverse("projects:list")
    assert client.get(reverse("projects:list")).status_code == 200
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("projects:list")).status_code == 302
    bad = client.post(reverse("login"), {"username": "ann", "password": "nope"})
    assert bad.status_code == 200 and "correct username and password" in bad.content.decode()


def test_system_pages_are_staff_only(client_for, make_user):
    from webapp.core.models import WorkerPing

    ping = WorkerPing.objects.create()
    user, staff = make_user("plain"), make_user("staffer", is_staff=True)
    for url, method in [(reverse("system_status"), "get"), (reverse("system_ping"), "post"),
                        (reverse("system_ping_status", args=[ping.pk]), "get"),
                        (reverse("system_recent_pings"), "get")]:
        assert getattr(client_for(user), method)(url).status_code == 302  # to the admin login
        assert getattr(client_for(staff), method)(url).status_code in (200, 302)
