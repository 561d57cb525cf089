"""OpenAI's Evals API (`client.evals`) with the official openai SDK against a live server.

Runs are executed by the real worker code (`eval_run_execute`, what the Celery task calls) in
the test process, like the other evaluation tests, so statuses can be watched between steps;
one test hands the run to a real Celery worker. Expectations are worked out by hand below.
"""

import openai
import pytest
from openai import OpenAI

from tests.helpers import jsonl
from tests.webapp.core.worker import running_worker
from tests.webapp.evals.conftest import RUBRIC, make_adapter_checkpoint
from tests.webapp.runs.test_training_e2e import wait_for
from webapp.evals.models import EvalItem, Evaluation
from webapp.evals.openai_evals import eval_run_execute
from webapp.evals.services import evaluation_create, evaluation_execute
from webapp.runs.models import Run, RunCheckpoint, RunStatus

pytestmark = pytest.mark.django_db(transaction=True)

ITEM_SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
EXACT = {"type": "string_check", "name": "Exact answer", "input": "{{sample.output_text}}",
         "reference": "{{item.answer}}", "operation": "eq"}
LENGTH = {"type": "python", "name": "length", "pass_threshold": 0.5,
          "source": "def grade(sample, item):\n"
                    "    if item.get('boom'):\n        raise ValueError('boom')\n"
                    "    return min(1.0, len(sample['output_text']) / 10)\n"}

# (item, given answer) -> Exact answer (default threshold: full marks), length (score len/10, passes at 0.5)
GIVEN = [
    ({"answer": "a"}, "a"),                               # exact 1 pass, length 0.1 fail  -> fail
    ({"answer": "b"}, "bbbbbb"),                          # exact 0 fail, length 0.6 pass  -> fail
    ({"answer": "hello world"}, "hello world"),           # exact 1 pass, length 1.0 pass  -> pass
    ({"answer": "x"}, "xxxxx"),                           # exact 0 fail, length 0.5 pass  -> fail
    ({"answer": "z", "boom": True}, "z"),                 # exact 1 pass, length raises    -> errored
]


def sdk(live_server, api_key_for, user, project):
    return OpenAI(base_url=f"{live_server.url}/v1", api_key=api_key_for(user), max_retries=0, project=project.slug)


@pytest.fixture
def world(tiny_setup, settings, tiny_model_path):
    project, users, dataset = tiny_setup
    run = Run.objects.create(project=project, dataset=dataset, grader_spec=RUBRIC, base_model="tiny", suffix="letters",
                             status=RunStatus.SUCCEEDED, total_steps=4)
    folder = make_adapter_checkpoint(tiny_model_path, settings.STUDIO_DATA_DIR / "runs" / run.pk / "step-000004")
    RunCheckpoint.objects.create(run=run, step=4, path=str(folder), valid_reward=0.5)
    Run.objects.filter(pk=run.pk).update(fine_tuned_model=f"ft:tiny:letters:{run.pk}")
    run.refresh_from_db()
    return project, users, dataset, run


def make_eval(client, name="letters"):
    return client.evals.create(
        name=name, metadata={"team": "tax"},
        data_source_config={"type": "custom", "item_schema": ITEM_SCHEMA, "include_sample_schema": True},
        testing_criteria=[EXACT, LENGTH])


def given_source(rows=GIVEN):
    return {"type": "file_content", "content": [{"item": i, "sample": {"output_text": s}} for i, s in rows]}


def test_eval_crud_and_clear_errors(world, live_server, api_key_for):
    project, users, dataset, run = world
    client = sdk(live_server, api_key_for, users["editor"], project)
    ev = make_eval(client)
    assert ev.object == "eval" and ev.id.startswith("eval_") and ev.name == "letters"
    assert ev.data_source_config.type == "custom"
    assert ev.data_source_config.schema_["properties"]["item"] == ITEM_SCHEMA
    assert "sample" in ev.data_source_config.schema_["required"]
    assert [c.name for c in ev.testing_criteria] == ["Exact answer", "length"]
    assert ev.testing_criteria[1].pass_threshold == 0.5 and ev.metadata == {"team": "tax"}
    assert client.evals.retrieve(ev.id).name == "letters"
    updated = client.evals.update(ev.id, name="letters v2", metadata={"team": "audit"})
    assert updated.name == "letters v2" and client.evals.retrieve(ev.id).metadata == {"team": "audit"}
    # grader problems come back from our grader validation, naming the criterion and the field
    with pytest.raises(openai.BadRequestError) as err:
        client.evals.create(name="bad", data_source_config={"type": "custom", "item_schema": ITEM_SCHEMA},
                            testing_criteria=[EXACT, {**EXACT, "name": "op", "operation": "sideways"}])
    assert err.value.body["param"] == "testing_criteria[1]" and "operation" in err.value.body["message"]
    with pytest.raises(openai.BadRequestError) as err:
        client.evals.create(name="bad", data_source_config={"type": "custom", "item_schema": ITEM_SCHEMA},
                            testing_criteria=[{"type": "python", "name": "p", "source": "def grade(:"}])
    assert err.value.body["param"] == "testing_criteria[0]"
    with pytest.raises(openai.BadRequestError) as err:
        client.evals.create(name="bad", data_source_config={"type": "logs"}, testing_criteria=[EXACT])
    assert err.value.body["param"] == "data_source_config.type"
    # items are checked against the item schema before anything is queued
    with pytest.raises(openai.BadRequestError) as err:
        client.evals.runs.create(ev.id, data_source={"type": "jsonl", "source": given_source([({"x": 1}, "a")])})
    assert "answer" in err.value.body["message"] and err.value.body["param"] == "data_source.source"
    with pytest.raises(openai.BadRequestError) as err:
        client.evals.runs.create(ev.id, data_source={
            "type": "completions", "model": "ft:tiny:nope:ftjob-nope", "source": given_source(),
            "input_messages": {"type": "item_reference", "item_reference": "item.messages"}})
    assert err.value.body["param"] == "data_source.model"
    with pytest.raises(openai.BadRequestError) as err:
        client.evals.runs.create(ev.id, data_source={
            "type": "completions", "model": "tiny", "source": given_source(),
            "input_messages": {"type": "item_reference", "item_reference": "item.messages"},
            "sampling_params": {"temperature": 7}})
    assert err.value.body["param"] == "data_source.sampling_params.temperature"
    assert Evaluation.objects.count() == 0  # nothing half-made
    # viewers read but do not write; other projects do not see it
    viewer = sdk(live_server, api_key_for, users["viewer"], project)
    assert viewer.evals.retrieve(ev.id).id == ev.id
    with pytest.raises(openai.PermissionDeniedError):
        viewer.evals.delete(ev.id)
    with pytest.raises((openai.NotFoundError, openai.PermissionDeniedError)):
        OpenAI(base_url=f"{live_server.url}/v1", api_key=api_key_for(users["outsider"]),
               max_retries=0).evals.retrieve(ev.id)
    deleted = client.evals.delete(ev.id)
    assert deleted.deleted is True and deleted.eval_id == ev.id
    with pytest.raises(openai.NotFoundError):
        client.evals.retrieve(ev.id)


def test_jsonl_run_hand_worked_counts_items_and_pages(world, live_server, api_key_for, client_for):
    project, users, dataset, run = world
    client = sdk(live_server, api_key_for, users["editor"], project)
    ev = make_eval(client)
    created = client.evals.runs.create(ev.id, name="given answers", metadata={"batch": "1"},
                                       data_source={"type": "jsonl", "source": given_source()})
    assert created.status == "queued" and created.object == "eval.run" and created.eval_id == ev.id
    assert created.model is None and created.result_counts.total == 0
    seen = []
    eval_run_execute(evaluation_id=created.id,
                     on_item=lambda i: seen.append(client.evals.runs.retrieve(created.id, eval_id=ev.id).status))
    assert set(seen) == {"in_progress"}
    r = client.evals.runs.retrieve(created.id, eval_id=ev.id)
    assert r.status == "completed" and r.error is None
    assert r.result_counts.model_dump() == {"total": 5, "passed": 1, "failed": 3, "errored": 1}
    assert [c.model_dump() for c in r.per_testing_criteria_results] == [
        {"testing_criteria": "Exact answer", "passed": 3, "failed": 2},
        {"testing_criteria": "length", "passed": 3, "failed": 2}]
    assert r.per_model_usage == [] and r.report_url.endswith(f"/p/{project.slug}/evals/{r.id}/")
    # output items: in item order, pages of two, status filter
    items = list(client.evals.runs.output_items.list(r.id, eval_id=ev.id, limit=2))
    assert [i.datasource_item_id for i in items] == [0, 1, 2, 3, 4]
    assert [i.status for i in items] == ["fail", "fail", "pass", "fail", "fail"]
    page = client.evals.runs.output_items.list(r.id, eval_id=ev.id, limit=2)
    assert len(page.data) == 2 and page.has_more is True
    second = client.evals.runs.output_items.list(r.id, eval_id=ev.id, limit=2, after=page.data[-1].id)
    assert [i.datasource_item_id for i in second.data] == [2, 3]
    assert [i.datasource_item["answer"] for i in client.evals.runs.output_items.list(
        r.id, eval_id=ev.id, status="pass")] == ["hello world"]
    assert len(list(client.evals.runs.output_items.list(r.id, eval_id=ev.id, status="fail"))) == 4
    two = client.evals.runs.output_items.retrieve(items[1].id, eval_id=ev.id, run_id=r.id)
    assert two.datasource_item == {"answer": "b"} and two.sample.output[0].content == "bbbbbb"
    assert [(x.name, x.type, x.score, x.passed) for x in two.results] == [
        ("Exact answer", "string_check", 0.0, False), ("length", "python", pytest.approx(0.6), True)]
    boom = items[4]
    assert boom.sample.error is not None and boom.results[0].passed is True and boom.results[1].score == 0.0
    assert [(x.score, x.passed) for x in items[3].results] == [(0.0, False), (pytest.approx(0.5), True)]
    with pytest.raises(openai.NotFoundError):
        client.evals.runs.output_items.retrieve("outputitem_999999", eval_id=ev.id, run_id=r.id)
    # the run is an evaluation on the browser pages
    browser = client_for(users["viewer"])
    assert "given answers" in browser.get(f"/p/{project.slug}/evals/").content.decode()
    assert "hello world" in browser.get(f"/p/{project.slug}/evals/{r.id}/").content.decode()
    assert [x.id for x in client.evals.runs.list(ev.id)] == [r.id]
    assert client.evals.runs.delete(r.id, eval_id=ev.id).deleted is True
    assert not Evaluation.objects.filter(pk=r.id).exists() and not EvalItem.objects.exists()


def test_completions_on_builtin_and_trained_model(world, live_server, api_key_for):
    project, users, dataset, run = world
    client = sdk(live_server, api_key_for, users["editor"], project)
    ev = make_eval(client)
    letters = ["m", "n", "o"]
    content = [{"item": {"answer": w, "messages": [{"role": "user", "content": f"say {w}"}]}} for w in letters]
    sampling = {"max_completion_tokens": 5, "temperature": 0, "seed": 3, "top_p": 1}

    def run_with(model, input_messages):
        created = client.evals.runs.create(ev.id, name=f"{model} {input_messages['type']}", data_source={
            "type": "completions", "model": model, "source": {"type": "file_content", "content": content},
            "input_messages": input_messages, "sampling_params": sampling})
        assert created.status == "queued" and created.model == model
        eval_run_execute(evaluation_id=created.id)
        done = client.evals.runs.retrieve(created.id, eval_id=ev.id)
        assert done.status == "completed", done.error
        return done, list(client.evals.runs.output_items.list(done.id, eval_id=ev.id))

    template = {"type": "template", "template": [{"role": "user", "content": "say {{item.answer}}"}]}
    reference = {"type": "item_reference", "item_reference": "item.messages"}
    base_t, items_t = run_with("tiny", template)
    base_r, items_r = run_with("tiny", reference)
    trained, items_ft = run_with(run.fine_tuned_model, reference)
    # the template renders the same prompts the items carry: greedy answers are identical
    assert [i.sample.output[0].content for i in items_t] == [i.sample.output[0].content for i in items_r]
    assert [i.sample.input[0].content for i in items_t] == ["say m", "say n", "say o"]
    # the trained model answers with its adapter
    assert [i.sample.output[0].content for i in items_ft] != [i.sample.output[0].content for i in items_r]
    for done, items in ((base_t, items_t), (trained, items_ft)):
        # hand-worked from the answers: exact match, length/10 passing at 0.5, both needed
        expected = {"passed": 0, "failed": 0, "errored": 0}
        per = [0, 0]
        for i in items:
            text = i.sample.output[0].content
            exact, length = text == i.datasource_item["answer"], min(1.0, len(text) / 10)
            assert [(x.score, x.passed) for x in i.results] == [
                (float(exact), exact), (pytest.approx(length), length >= 0.5)]
            assert i.status == ("pass" if exact and length >= 0.5 else "fail")
            expected["passed" if exact and length >= 0.5 else "failed"] += 1
            per[0] += exact
            per[1] += length >= 0.5
            assert i.sample.model == done.model and i.sample.finish_reason in ("stop", "length")
            assert 1 <= i.sample.usage.completion_tokens <= 5 and i.sample.usage.prompt_tokens > 0
            assert i.sample.max_completion_tokens == 5 and i.sample.seed == 3
        assert done.result_counts.model_dump() == {"total": 3, **expected}
        assert [(c.passed, c.failed) for c in done.per_testing_criteria_results] == [(per[0], 3 - per[0]),
                                                                                     (per[1], 3 - per[1])]
        usage = done.per_model_usage[0]
        assert usage.model_name == done.model and usage.invocation_count == 3
        assert usage.completion_tokens == sum(i.sample.usage.completion_tokens for i in items)
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    # a missing {{item.x}} fails that item (errored), not the run
    bad = client.evals.runs.create(ev.id, data_source={
        "type": "completions", "model": "tiny", "source": {"type": "file_content", "content": content[:2]},
        "input_messages": {"type": "template", "template": [{"role": "user", "content": "{{item.nope}}"}]},
        "sampling_params": {"max_completion_tokens": 2}})
    eval_run_execute(evaluation_id=bad.id)
    bad = client.evals.runs.retrieve(bad.id, eval_id=ev.id)
    assert bad.status == "completed" and bad.result_counts.errored == 2


def test_cancel_queued_and_in_progress(world, live_server, api_key_for):
    project, users, dataset, run = world
    client = sdk(live_server, api_key_for, users["editor"], project)
    ev = make_eval(client)
    queued = client.evals.runs.create(ev.id, data_source={"type": "jsonl", "source": given_source()})
    assert client.evals.runs.cancel(queued.id, eval_id=ev.id).status == "canceled"
    eval_run_execute(evaluation_id=queued.id)  # the worker finds nothing to do
    assert client.evals.runs.retrieve(queued.id, eval_id=ev.id).result_counts.total == 0
    with pytest.raises(openai.BadRequestError):
        client.evals.runs.cancel(queued.id, eval_id=ev.id)
    # given answers are graded 64 at a time; cancelling while the first batch is graded stops after it
    many = [({"answer": str(n)}, str(n)) for n in range(100)]
    running = client.evals.runs.create(ev.id, data_source={"type": "jsonl", "source": given_source(many)})
    cancels = []

    def cancel_once(index):
        if not cancels:
            cancels.append(client.evals.runs.cancel(running.id, eval_id=ev.id).status)

    eval_run_execute(evaluation_id=running.id, on_item=cancel_once)
    assert cancels == ["in_progress"]
    stopped = client.evals.runs.retrieve(running.id, eval_id=ev.id)
    assert stopped.status == "canceled" and stopped.result_counts.total == 64
    assert [r.status for r in client.evals.runs.list(ev.id, status="canceled")] == ["canceled", "canceled"]


def test_browser_evaluations_list_in_the_sdk(world, live_server, api_key_for, client_for):
    project, users, dataset, run = world
    ev = evaluation_create(project=project, user=users["editor"], model_name="tiny", dataset=dataset, split="valid",
                           grader_spec=RUBRIC, sampling={"max_completion_tokens": 4}, name="from the browser")
    evaluation_execute(evaluation_id=ev.pk)
    ev.refresh_from_db()
    client = sdk(live_server, api_key_for, users["viewer"], project)
    mine = make_eval(sdk(live_server, api_key_for, users["editor"], project), name="api-made")
    listed = list(client.evals.list())
    assert [e.name for e in listed][0] == "api-made" and mine.id in [e.id for e in listed]
    adopted = next(e for e in listed if e.id != mine.id)
    # PostgreSQL's jsonb does not keep a dict's key order (the rubric builder keeps its rows in a list)
    assert "letters" in adopted.name and sorted(c.name for c in adopted.testing_criteria) == ["has_a", "short"]
    runs = list(client.evals.runs.list(adopted.id))
    assert [r.id for r in runs] == [ev.pk] and runs[0].status == "completed" and runs[0].model == "tiny"
    items = list(client.evals.runs.output_items.list(ev.pk, eval_id=adopted.id))
    assert len(items) == 4 == runs[0].result_counts.total
    for item, stored in zip(items, ev.items.order_by("index"), strict=True):
        assert item.sample.output[0].content == stored.output_text
        assert {x.name: x.score for x in item.results} == {"short": stored.sub_rewards["short"],
                                                           "has_a": stored.sub_rewards["has_a"]}
        assert item.status == ("pass" if all(x.score >= 1 for x in item.results) else "fail")
    assert runs[0].result_counts.passed == sum(i.status == "pass" for i in items)
    assert len(list(client.evals.list())) == 2  # listing again adopts nothing twice
    # an API run on the same prompts pairs with the browser's evaluation on the comparison page,
    # and the same model with the same settings answers the same
    writer = sdk(live_server, api_key_for, users["editor"], project)
    content = [{"item": {"answer": w, "messages": [{"role": "user", "content": f"say {w}"}]}} for w in "mnop"]
    api_run = writer.evals.runs.create(mine.id, data_source={
        "type": "completions", "model": "tiny", "source": {"type": "file_content", "content": content},
        "input_messages": {"type": "item_reference", "item_reference": "item.messages"},
        "sampling_params": {"max_completion_tokens": 4}})
    eval_run_execute(evaluation_id=api_run.id)
    from webapp.evals.selectors import evaluation_compare

    pairs = evaluation_compare(a=ev, b=Evaluation.objects.get(pk=api_run.id)).rows
    assert len(pairs) == 4
    api_items = {i.task_key: i.output_text for i in EvalItem.objects.filter(evaluation_id=api_run.id)}
    assert {i.task_key: i.output_text for i in ev.items.all()} == api_items
    page = client_for(users["viewer"]).get(f"/p/{project.slug}/evals/compare/", {"a": ev.pk, "b": api_run.id})
    assert page.status_code == 200 and "say m" in page.content.decode()
    # a later browser evaluation of the same tasks and grader joins the same eval
    later = evaluation_create(project=project, user=users["editor"], model_name=run.fine_tuned_model,
                              dataset=dataset, split="valid", grader_spec=RUBRIC, name="trained, from the browser")
    runs = list(client.evals.runs.list(adopted.id, order="desc"))
    assert [r.id for r in runs] == [later.pk, ev.pk] and runs[0].status == "queued"
    assert runs[0].model == run.fine_tuned_model and len(list(client.evals.list())) == 2


def test_real_worker_runs_an_sdk_eval(world, live_server, api_key_for, settings):
    project, users, dataset, run = world
    client = sdk(live_server, api_key_for, users["editor"], project)
    ev = make_eval(client)
    with running_worker(settings.STUDIO_DATA_DIR) as worker:
        created = client.evals.runs.create(ev.id, data_source={"type": "jsonl", "source": given_source()})
        assert created.status == "queued"

        def finished():
            r = client.evals.runs.retrieve(created.id, eval_id=ev.id)
            return r if r.status in ("completed", "failed", "canceled") else None

        done = wait_for(finished, timeout=120, explain=lambda: worker.log_path.read_text()[-3000:])
    assert done.status == "completed" and done.result_counts.model_dump() == {
        "total": 5, "passed": 1, "failed": 3, "errored": 1}


def test_file_id_sources_use_an_uploaded_task_file(world, live_server, api_key_for):
    """A task file uploaded with the Files API is the run's items (each line the item; the
    jsonl data source grades the answer a line carries under `sample`)."""
    project, users, dataset, run = world
    client = sdk(live_server, api_key_for, users["editor"], project)
    lines = [{"messages": [{"role": "user", "content": f"say {w}"}], "answer": w, "sample": {"output_text": s}}
             for w, s in (("a", "a"), ("b", "bbbbbb"), ("hello world", "hello world"))]
    file = client.files.create(file=("tasks.jsonl", jsonl(lines)), purpose="fine-tune")
    ev = make_eval(client)
    given = client.evals.runs.create(ev.id, data_source={"type": "jsonl", "source": {"type": "file_id",
                                                                                      "id": file.id}})
    eval_run_execute(evaluation_id=given.id)
    given = client.evals.runs.retrieve(given.id, eval_id=ev.id)
    # a: exact pass, length 0.1 fail; b: exact fail, length 0.6 pass; hello world: both pass
    assert given.result_counts.model_dump() == {"total": 3, "passed": 1, "failed": 2, "errored": 0}
    first = client.evals.runs.output_items.list(given.id, eval_id=ev.id, limit=1).data[0]
    assert "sample" not in first.datasource_item and first.datasource_item["answer"] == "a"
    answered = client.evals.runs.create(ev.id, data_source={
        "type": "completions", "model": "tiny", "source": {"type": "file_id", "id": file.id},
        "input_messages": {"type": "item_reference", "item_reference": "item.messages"},
        "sampling_params": {"max_completion_tokens": 3}})
    eval_run_execute(evaluation_id=answered.id)
    answered = client.evals.runs.retrieve(answered.id, eval_id=ev.id)
    assert answered.status == "completed" and answered.result_counts.total == 3
    outputs = [i.sample.output[0].content for i in client.evals.runs.output_items.list(answered.id, eval_id=ev.id)]
    assert outputs != ["a", "bbbbbb", "hello world"]  # the model answered; the lines' samples were not used
    with pytest.raises(openai.BadRequestError) as err:
        client.evals.runs.create(ev.id, data_source={"type": "jsonl", "source": {"type": "file_id",
                                                                                 "id": "file-nope"}})
    assert err.value.body["param"] == "data_source.source.id"


def test_file_id_sources_read_a_purpose_evals_file(world, live_server, api_key_for):
    """OpenAI's own flow: upload {"item", "sample"} lines with purpose="evals", then a jsonl
    run with a file_id source grades the lines' answers; a completions run answers the items."""
    project, users, dataset, run = world
    client = sdk(live_server, api_key_for, users["editor"], project)
    lines = [{"item": {"answer": i["answer"], **({"boom": True} if i.get("boom") else {}),
                       "messages": [{"role": "user", "content": f"say {i['answer']}"}]},
              "sample": {"output_text": s}} for i, s in GIVEN]
    file = client.files.create(file=("items.jsonl", jsonl(lines)), purpose="evals")
    assert file.purpose == "evals" and [f.id for f in client.files.list(purpose="evals")] == [file.id]
    assert client.files.retrieve(file.id).filename == "items.jsonl"
    ev = make_eval(client)
    given = client.evals.runs.create(ev.id, data_source={"type": "jsonl", "source": {"type": "file_id",
                                                                                      "id": file.id}})
    eval_run_execute(evaluation_id=given.id)
    given = client.evals.runs.retrieve(given.id, eval_id=ev.id)
    # the hand-worked counts of GIVEN (see test_jsonl_run_hand_worked_counts_items_and_pages)
    assert given.result_counts.model_dump() == {"total": 5, "passed": 1, "failed": 3, "errored": 1}
    items = list(client.evals.runs.output_items.list(given.id, eval_id=ev.id))
    assert items[1].datasource_item["answer"] == "b" and items[1].sample.output[0].content == "bbbbbb"
    answered = client.evals.runs.create(ev.id, data_source={
        "type": "completions", "model": "tiny", "source": {"type": "file_id", "id": file.id},
        "input_messages": {"type": "item_reference", "item_reference": "item.messages"},
        "sampling_params": {"max_completion_tokens": 3}})
    eval_run_execute(evaluation_id=answered.id)
    answered = client.evals.runs.retrieve(answered.id, eval_id=ev.id)
    assert answered.status == "completed" and answered.result_counts.total == 5
    # a bad line is refused at upload, named by its line
    with pytest.raises(openai.BadRequestError) as err:
        client.files.create(file=("bad.jsonl", jsonl([{"item": {"answer": "a"}}, {"answer": "b"}])),
                            purpose="evals")
    assert "bad.jsonl: line 2" in err.value.message and '"item" is missing' in err.value.message
    assert client.files.delete(file.id).deleted is True
    with pytest.raises(openai.BadRequestError) as err:
        client.evals.runs.create(ev.id, data_source={"type": "jsonl", "source": {"type": "file_id", "id": file.id}})
    assert err.value.body["param"] == "data_source.source.id"


def test_a_run_that_cannot_load_its_model_fails_readably(world, live_server, api_key_for):
    import shutil

    project, users, dataset, run = world
    client = sdk(live_server, api_key_for, users["editor"], project)
    ev = make_eval(client)
    created = client.evals.runs.create(ev.id, data_source={
        "type": "completions", "model": run.fine_tuned_model, "source": given_source(),
        "input_messages": {"type": "template", "template": [{"role": "user", "content": "say {{item.answer}}"}]}})
    shutil.rmtree(run.checkpoints.get().path)  # pruned between queueing and running
    eval_run_execute(evaluation_id=created.id)
    failed = client.evals.runs.retrieve(created.id, eval_id=ev.id)
    assert failed.status == "failed" and failed.error.code == "run_failed"
    assert "is gone" in failed.error.message and failed.result_counts.total == 0
    with pytest.raises(openai.BadRequestError):
        client.evals.runs.cancel(created.id, eval_id=ev.id)  # nothing left to cancel
    assert client.evals.runs.delete(created.id, eval_id=ev.id).deleted is True


def test_pass_thresholds_and_their_defaults():
    """The documented rule: score >= pass_threshold; without one, full marks (a score_model's
    top of range), and a score_model's score is reported in its range's units."""
    from webapp.evals.openai_evals import criteria_info, item_scores

    info = criteria_info([
        {"type": "score_model", "name": "judge", "range": [0, 10], "pass_threshold": 7, "_key": "judge"},
        {"type": "score_model", "name": "strict judge", "range": [0, 10], "_key": "strict_judge"},
        {"type": "text_similarity", "name": "close", "pass_threshold": 0.8, "_key": "close"},
        {"type": "string_check", "name": "exact", "_key": "exact"},
    ])
    assert [c["threshold"] for c in info] == [7.0, 10.0, 0.8, 1.0]
    scores = item_scores({"judge": 0.75, "strict_judge": 0.95, "close": 0.8, "exact": 1.0}, 0.0, info)
    assert [(r["score"], r["passed"]) for r in scores] == [(7.5, True), (9.5, False), (0.8, True), (1.0, True)]
