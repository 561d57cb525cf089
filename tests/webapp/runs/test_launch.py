"""The “New run” screen: form, estimate, launch, and the pre-flight checks."""

import re

import pytest
from django.urls import reverse

from tests.helpers import rft_row
from webapp.datasets.services import dataset_create_from_rows
from webapp.graders.services import grader_create
from webapp.runs.models import LocalBaseModel, Run, RunPreflight, RunStatus
from webapp.runs.preflight import preflight_execute

GOOD = {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}",
        "reference": "{{item.reference_answer}}", "operation": "eq"}
HARSH = {**GOOD, "name": "harsh", "reference": "never"}  # fails every reference answer


@pytest.fixture
def launchable(project_with_roles, tiny_model_path):
    project, users = project_with_roles
    LocalBaseModel.objects.create(name="tiny", path=str(tiny_model_path))
    rows = [rft_row(f"say {c}", c) for c in "abcdefghijkl"]
    dataset = dataset_create_from_rows(project=project, name="letters", user=users["owner"],
                                       train_rows=rows[:10], valid_rows=rows[10:])
    grader = grader_create(project=project, name="Exact", spec=GOOD, user=users["owner"], dataset=dataset)
    form = {"dataset": str(dataset.pk), "grader": grader.pk, "base_model": "tiny", "suffix": "letters",
            "n_epochs": "2", "batch_size": "4", "group_size": "4", "learning_rate_multiplier": "auto",
            "max_completion_tokens": "64", "eval_interval": "auto", "worker_type": "cpu", "method": "lora",
            "temperature": "1.0", "beta": "0", "seed": "3"}
    return project, users, dataset, grader, form


def test_form_offers_project_datasets_graders_and_models(launchable, client_for):
    project, users, dataset, grader, _ = launchable
    body = client_for(users["editor"]).get(reverse("runs:launch", args=[project.slug])).content.decode()
    assert "letters v1 (10 train / 2 valid)" in body and "Exact v1" in body
    assert "smollm2-135m-instruct (built in)" in body and "tiny (" in body
    assert "Advanced settings" in body and "Run pre-flight checks" in body


def test_estimate_updates_from_the_form(launchable, client_for):
    project, users, _, _, form = launchable
    url = reverse("runs:estimate", args=[project.slug])
    body = client_for(users["editor"]).post(url, form).content.decode()
    assert '<dd id="est-steps">5</dd>' in body  # 2 epochs x 10 tasks / 4 per step
    assert "4 tasks × 4 answers" in body and "a typical CPU worker" in body
    bad = client_for(users["editor"]).post(url, {**form, "n_epochs": "lots"}).content.decode()
    assert "Enter a whole number or “auto”" in bad


def test_launch_creates_a_queued_run_and_locks_inputs(launchable, client_for, django_capture_on_commit_callbacks):
    project, users, dataset, grader, form = launchable
    with django_capture_on_commit_callbacks() as callbacks:
        response = client_for(users["editor"]).post(reverse("runs:launch", args=[project.slug]), form)
    run = Run.objects.get()
    assert response.status_code == 302 and response.url == reverse("runs:detail", args=[project.slug, run.pk])
    assert len(callbacks) == 1  # enqueued after commit
    assert run.status == RunStatus.QUEUED and run.total_steps == 5 and run.seed == 3 and run.suffix == "letters"
    assert run.config["group_size"] == 4 and run.config["max_completion_tokens"] == 64
    assert run.config["base_model"] == LocalBaseModel.objects.get().path
    dataset.refresh_from_db()
    grader.refresh_from_db()
    assert dataset.is_locked and grader.is_locked
    # the pages say which run, by its name, with the id the API uses
    assert dataset.locked_reason == grader.locked_reason == f"used by run “letters” ({run.pk})"
    page = client_for(users["viewer"]).get(reverse("datasets:detail", args=[project.slug, dataset.pk])).content.decode()
    assert "can no longer be edited: used by run “letters”" in page


def test_launch_errors_are_shown_and_nothing_is_created(launchable, client_for):
    project, users, _, _, form = launchable
    response = client_for(users["editor"]).post(reverse("runs:launch", args=[project.slug]),
                                                {**form, "batch_size": "1000"})
    assert response.status_code == 400 and "Must be between 1 and 256" in response.content.decode()
    assert not Run.objects.exists()


def test_preflight_flags_harsh_grader_and_measures_prompts_and_rollouts(launchable, client_for):
    project, users, dataset, _, form = launchable
    harsh = grader_create(project=project, name="Harsh", spec=HARSH, user=users["owner"], dataset=dataset)
    client = client_for(users["editor"])
    body = client.post(reverse("runs:estimate", args=[project.slug]), {**form, "grader": harsh.pk, "check": "1"})
    pre = RunPreflight.objects.get()
    assert "Waiting for a worker" in body.content.decode()
    preflight_execute(preflight_id=pre.pk)  # what the worker's task does
    pre.refresh_from_db()
    assert pre.status == "done", pre.error
    assert pre.results["references"] == {"checked": 10, "failing": 10, "examples": pre.results["references"]["examples"]}
    assert pre.results["prompts"]["too_long"] == 0 and pre.results["prompts"]["max"] > 5
    rollouts = pre.results["rollouts"]
    assert rollouts["prompts"] == 4 and rollouts["all_same"] and rollouts["mean_reward"] == 0.0
    page = client.get(reverse("runs:preflight", args=[project.slug, pre.pk])).content.decode()
    assert "gives 10 of 10 reference answers less than full marks" in page
    assert "nothing to learn" in page and "hx-trigger" not in page  # done: polling stops


def field_slot(body: str, slot_id: str) -> str:
    """The contents of an out-of-band slot (a field's errors, what its “auto” came to)."""
    match = re.search(rf'id="{slot_id}" hx-swap-oob="innerHTML">(.*?)</(div|span)>\n', body, re.S)
    assert match, f"no slot {slot_id} in the answer"
    return match.group(1).strip()


def test_auto_means_smaller_steps_on_a_cpu_worker(launchable, client_for, django_capture_on_commit_callbacks):
    project, users, _, _, form = launchable
    auto = {**form, "batch_size": "auto", "group_size": "auto", "max_completion_tokens": "auto", "n_epochs": "auto"}
    client = client_for(users["editor"])
    cpu = client.post(reverse("runs:estimate", args=[project.slug]), {**auto, "worker_type": "cpu"}).content.decode()
    gpu = client.post(reverse("runs:estimate", args=[project.slug]), {**auto, "worker_type": "gpu"}).content.decode()
    assert "4 tasks × 4 answers\n      of up to 64 tokens" in cpu
    assert "8 tasks × 8 answers\n      of up to 128 tokens" in gpu
    # beside each box left on “auto”: what it came to, the same numbers the estimate uses
    assert field_slot(cpu, "auto-group_size") == "= 4" and field_slot(gpu, "auto-group_size") == "= 8"
    assert field_slot(cpu, "auto-max_completion_tokens") == "= 64"
    with django_capture_on_commit_callbacks():
        client.post(reverse("runs:launch", args=[project.slug]), {**auto, "worker_type": "cpu"})
    run = Run.objects.get()  # "auto" is recorded as given; the frozen config has the CPU size
    assert run.hyperparameters["batch_size"] == "auto" and run.config["batch_size"] == 4


def test_the_form_is_built_from_the_configs_documented_settings(launchable, client_for):
    """Labels, units, help and ranges come from trainer.config.FIELD_INFO, in the expert's words."""
    from trainer.config import FIELD_INFO
    from webapp.runs.forms import LaunchForm

    project, users, _, _, form = launchable
    body = client_for(users["editor"]).get(reverse("runs:launch", args=[project.slug])).content.decode()
    for name in LaunchForm.AUTO_SETTINGS + LaunchForm.ADVANCED:
        info = FIELD_INFO[name]
        assert f'<label for="id_{name}">{info.label}</label>' in body
        if info.unit:
            assert f'<span class="unit">{info.unit}</span>' in body
    assert "Answers per task" in body and "(× 8)" not in body  # a count, not OpenAI's multiplier
    assert "compute_multiplier" not in body and "reasoning_effort" not in body
    labels = re.findall(r"<label[^>]*>([^<]*)</label>", body)
    assert labels and not [label for label in labels if "_" in label]  # no raw hyperparameter names
    assert "“auto”: 4 on a CPU worker, 8 on a GPU worker." in body  # answers per task, from AUTO_SIZES
    # the ranges are the config's: the same numbers the API refuses
    url = reverse("runs:estimate", args=[project.slug])
    client = client_for(users["editor"])
    low = client.post(url, {**form, "group_size": "1"}).content.decode()
    assert field_slot(low, "errors-group_size") == '<small class="error">Must be between 2 and 64.</small>'
    assert 'id="estimate-blocked"' in low and 'id="est-steps"' not in low
    high = client.post(url, {**form, "n_epochs": "51"}).content.decode()
    assert field_slot(high, "errors-n_epochs") == '<small class="error">Must be between 1 and 50.</small>'
    assert field_slot(high, "errors-group_size") == ""  # a fixed field's old error is cleared


def test_answers_per_task_is_what_the_run_gets(launchable, client_for, django_capture_on_commit_callbacks):
    project, users, _, _, form = launchable
    client = client_for(users["editor"])
    estimate = client.post(reverse("runs:estimate", args=[project.slug]), {**form, "group_size": "2"}).content.decode()
    assert "4 tasks × 2 answers" in estimate
    with django_capture_on_commit_callbacks():
        client.post(reverse("runs:launch", args=[project.slug]),
                    {**form, "group_size": "2", "learning_rate_multiplier": "2", "max_steps": "3"})
    run = Run.objects.get()
    assert run.config["group_size"] == 2 and run.config["learning_rate"] == pytest.approx(1e-4)
    assert run.total_steps == 3 and run.hyperparameters["learning_rate_multiplier"] == 2.0
    job = client_for(users["editor"]).get(reverse("runs:detail", args=[project.slug, run.pk]))
    assert job.status_code == 200


def test_estimate_refuses_what_launch_refuses(launchable, client_for):
    """Both go through run_plan: an estimate is never shown for a run that cannot launch."""
    project, users, dataset, grader, form = launchable
    client = client_for(users["editor"])
    # a grader saved before a validation rule it breaks (the form cannot see this; run_plan can)
    type(grader).objects.filter(pk=grader.pk).update(spec={**GOOD, "operation": "equals"})
    estimate = client.post(reverse("runs:estimate", args=[project.slug]), form).content.decode()
    launch = client.post(reverse("runs:launch", args=[project.slug]), form)
    assert "Invalid grader" in field_slot(estimate, "errors-grader") and "operation" in estimate
    assert launch.status_code == 400 and "Invalid grader" in launch.content.decode()
    assert not Run.objects.exists()


def test_preflight_create_queues_one_check_after_commit(launchable, django_capture_on_commit_callbacks):
    from webapp.runs.plan import run_plan
    from webapp.runs.preflight import preflight_create

    project, users, dataset, grader, _ = launchable
    plan = run_plan(project=project, user=users["editor"], dataset=dataset, grader=grader, base_model="tiny",
                    overrides={"group_size": 2})
    with django_capture_on_commit_callbacks() as callbacks:
        pre = preflight_create(project=project, user=users["editor"], plan=plan)
    assert len(callbacks) == 1 and pre.status == "pending" and pre.config["group_size"] == 2
    assert pre.grader_spec == grader.spec and not Run.objects.exists()  # planning saved no run


def test_an_api_job_on_a_cpu_worker_gets_cpu_sized_auto(launchable, api_client_for, settings):
    """`auto` follows STUDIO_TRAINING_DEVICE for API jobs too, not only in the browser."""
    from tests.helpers import jsonl
    from webapp.datasets.services import file_create

    project, users, _, _, _ = launchable
    training = file_create(project=project, user=users["editor"], filename="t.jsonl",
                           data=jsonl([rft_row(f"q{i}", "a") for i in range(40)]))
    client = api_client_for(users["editor"], project)
    body = {"model": "tiny", "training_file": training.id,
            "method": {"type": "reinforcement", "reinforcement": {"grader": GOOD}}}
    sizes = {}
    for device in ("cpu", "cuda"):
        settings.STUDIO_TRAINING_DEVICE = device
        job = client.post("/v1/fine_tuning/jobs", body, content_type="application/json").json()
        config = Run.objects.get(pk=job["id"]).config
        sizes[device] = (config["batch_size"], config["group_size"], config["max_completion_tokens"])
        assert job["method"]["reinforcement"]["hyperparameters"]["compute_multiplier"] == config["group_size"] / 8
    assert sizes == {"cpu": (4, 4, 64), "cuda": (8, 8, 128)}


def test_an_untouched_form_in_an_empty_project_shows_no_errors(project_with_roles, client_for):
    project, users = project_with_roles
    client = client_for(users["editor"])
    page = client.get(reverse("runs:launch", args=[project.slug])).content.decode()
    assert "A run needs" in page and 'hx-trigger="change delay:200ms"' in page  # no estimate on load
    estimate = client.post(reverse("runs:estimate", args=[project.slug]), {}).content.decode()
    assert "required" not in estimate and 'class="error"' not in estimate
    assert "once the project has a dataset" in estimate


def test_preflight_answer_is_its_own_panel_that_polls_itself(launchable, client_for,
                                                             django_capture_on_commit_callbacks):
    """The panel replaces only itself while it polls (it must not inherit the form's target,
    #estimate: that swapped the estimate away and then found no target, forever)."""
    project, users, _, _, form = launchable
    client = client_for(users["editor"])
    with django_capture_on_commit_callbacks():
        body = client.post(reverse("runs:estimate", args=[project.slug]), {**form, "check": "1"}).content.decode()
    pre = RunPreflight.objects.get()
    assert body.lstrip().startswith('<div id="preflight"') and "<h2>Estimate</h2>" not in body
    assert f'hx-get="{reverse("runs:preflight", args=[project.slug, pre.pk])}"' in body
    assert 'hx-target="this" hx-swap="outerHTML"' in body
    preflight_execute(preflight_id=pre.pk)
    done = client.get(reverse("runs:preflight", args=[project.slug, pre.pk])).content.decode()
    assert "hx-get" not in done and 'id="check-references"' in done  # finished: it stops polling
    # settings that cannot launch: no check is queued, the problem is shown under its field
    bad = client.post(reverse("runs:estimate", args=[project.slug]), {**form, "group_size": "1", "check": "1"})
    assert 'id="preflight-blocked"' in bad.content.decode() and RunPreflight.objects.count() == 1
    assert field_slot(bad.content.decode(), "errors-group_size").startswith('<small class="error">')


def test_settings_errors_from_the_config_name_the_forms_field():
    from webapp.runs.launch import launch_error_field
    from webapp.runs.plan import LaunchError

    field, message = launch_error_field(LaunchError(
        "invalid training config: group_size must be at least 2 (got 1)", param="hyperparameters"))
    assert field == "group_size" and message == "“Answers per task” must be at least 2 (got 1)"
    field, message = launch_error_field(LaunchError("hyperparameter learning_rate_multiplier must be between 0.001 "
                                                    "and 100 (got 0)", param="hyperparameters"))
    assert field == "learning_rate_multiplier" and "“Learning speed” must be between" in message
    assert launch_error_field(LaunchError("That grader belongs to another project.", param="grader"))[0] == "grader"


def test_a_machine_without_a_gpu_driver_is_cpu_without_importing_torch(monkeypatch, tmp_path):
    """Importing torch takes seconds; the New run page must not pay that where no GPU can exist."""
    import builtins

    from webapp.runs import plan

    monkeypatch.setattr(plan, "GPU_DRIVER_NODES", (str(tmp_path / "no-such-device"),))
    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        assert name != "torch", "torch was imported to find out there is no GPU"
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    assert plan._this_machine_device.__wrapped__() == "cpu"


@pytest.mark.parametrize("field, value, expected", [
    ("seed", "9" * 30, "Must be between 0 and 2,147,483,647."),  # was a 500: too large for the database
    ("max_steps", "9" * 30, "Must be between 1 and 2,147,483,647."),
    ("n_epochs", "9" * 5000, "Enter a whole number or “auto”"),
    ("learning_rate_multiplier", "inf", "Must be between 0.001 and 100."),
    ("temperature", "1e400", "Must be between 0.05 and 2."),
])
def test_huge_or_infinite_settings_are_a_message_under_the_field(launchable, client_for, field, value, expected):
    project, users, _, _, form = launchable
    client = client_for(users["editor"])
    estimate = client.post(reverse("runs:estimate", args=[project.slug]), {**form, field: value}).content.decode()
    assert expected in estimate and 'id="est-steps"' not in estimate
    launch = client.post(reverse("runs:launch", args=[project.slug]), {**form, field: value})
    assert launch.status_code == 400 and expected in launch.content.decode() and not Run.objects.exists()


def test_auto_is_read_in_any_case_with_spaces(launchable, client_for):
    project, users, _, _, form = launchable
    body = client_for(users["editor"]).post(reverse("runs:estimate", args=[project.slug]),
                                            {**form, "n_epochs": " AUTO ", "batch_size": "Auto"}).content.decode()
    assert 'id="est-steps"' in body
