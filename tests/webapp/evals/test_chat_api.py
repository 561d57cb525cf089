"""/v1/chat/completions and /v1/models with the official openai SDK against a live server,
answered by the real inference engine (`transformers serve` in its own process) loading the
tiny model and a trained checkpoint's merged export."""

import httpx
import openai
import pytest
from openai import OpenAI

from tests.webapp.evals.conftest import RUBRIC, make_adapter_checkpoint
from tests.webapp.evals.engine import free_port, running_engine
from webapp.evals.exports import export_merged_execute
from webapp.evals.services import evaluation_create, evaluation_execute
from webapp.runs.models import Run, RunCheckpoint, RunStatus

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def engine_url(tmp_path_factory):
    with running_engine(tmp_path_factory.mktemp("engine") / "engine.log") as url:
        yield url


@pytest.fixture
def world(tiny_setup, settings, engine_url, tiny_model_path):
    project, users, dataset = tiny_setup
    settings.STUDIO_INFERENCE_URL = engine_url
    run = Run.objects.create(project=project, dataset=dataset, grader_spec=RUBRIC, base_model="tiny", suffix="letters",
                             status=RunStatus.SUCCEEDED, total_steps=4)
    folder = make_adapter_checkpoint(tiny_model_path, settings.STUDIO_DATA_DIR / "runs" / run.pk / "step-000004")
    ckpt = RunCheckpoint.objects.create(run=run, step=4, path=str(folder), valid_reward=0.5)
    Run.objects.filter(pk=run.pk).update(fine_tuned_model=f"ft:tiny:letters:{run.pk}")
    run.refresh_from_db()
    return project, users, dataset, run, ckpt


def sdk(live_server, api_key_for, user, project=None):
    return OpenAI(base_url=f"{live_server.url}/v1", api_key=api_key_for(user), max_retries=0,
                  project=project.slug if project else None)


def greedy_eval_output(project, user, dataset, model_name, n_tokens):
    ev = evaluation_create(project=project, user=user, model_name=model_name, dataset=dataset, split="valid",
                           grader_spec=RUBRIC, sampling={"max_completion_tokens": n_tokens})
    evaluation_execute(evaluation_id=ev.pk)
    return ev.items.get(index=0).output_text


def test_models_list_and_retrieve(world, live_server, api_key_for):
    project, users, dataset, run, ckpt = world
    client = sdk(live_server, api_key_for, users["viewer"], project)
    ids = [m.id for m in client.models.list()]
    assert ids[:2] == ["smollm2-135m-instruct", "tiny"]
    assert run.fine_tuned_model in ids and f"{run.fine_tuned_model}:ckpt-step-4" in ids
    model = client.models.retrieve(run.fine_tuned_model)
    assert model.id == run.fine_tuned_model and model.object == "model" and model.owned_by == f"project-{project.slug}"
    assert client.models.retrieve(f"ft:tiny:{run.pk}:ckpt-step-4").id == f"{run.fine_tuned_model}:ckpt-step-4"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("ft:tiny:letters:ftjob-nope")
    # another project's members do not see this project's trained models
    other = [m.id for m in sdk(live_server, api_key_for, users["outsider"]).models.list()]
    assert "tiny" in other and run.fine_tuned_model not in other
    with pytest.raises(openai.NotFoundError):
        sdk(live_server, api_key_for, users["outsider"]).chat.completions.create(
            model=run.fine_tuned_model, messages=[{"role": "user", "content": "say a"}])


def test_chat_answers_like_the_evaluation_streaming_and_not(world, live_server, api_key_for):
    project, users, dataset, run, ckpt = world
    export_merged_execute(checkpoint_id=ckpt.pk)  # what the worker does when the run finishes
    client = sdk(live_server, api_key_for, users["viewer"], project)
    messages = [{"role": "user", "content": "say m"}]  # the first validation task
    for name in ("tiny", run.fine_tuned_model):
        expected = greedy_eval_output(project, users["editor"], dataset, name, 6)
        answer = client.chat.completions.create(model=name, messages=messages, max_tokens=6, temperature=0)
        assert answer.model == name and answer.object == "chat.completion"
        assert answer.choices[0].message.content == expected  # the engine answers what the trainer's sampler did
        assert answer.choices[0].finish_reason in ("stop", "length")
        assert answer.usage.prompt_tokens > 0 and 1 <= answer.usage.completion_tokens <= 6
        assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
        chunks = list(client.chat.completions.create(model=name, messages=messages, max_completion_tokens=6,
                                                     temperature=0, stream=True,
                                                     stream_options={"include_usage": True}))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == expected and chunks[-1].usage.completion_tokens == answer.usage.completion_tokens
        assert chunks[0].model == name


def test_sampling_n_seed_and_limits(world, live_server, api_key_for):
    project, users, dataset, run, ckpt = world
    client = sdk(live_server, api_key_for, users["viewer"], project)
    kw = {"model": "tiny", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 12, "temperature": 1.5}
    one = client.chat.completions.create(n=3, seed=7, **kw)
    again = client.chat.completions.create(n=3, seed=7, **kw)
    texts = [c.message.content for c in one.choices]
    assert [c.index for c in one.choices] == [0, 1, 2] and texts == [c.message.content for c in again.choices]
    assert len(set(texts)) > 1  # sampling, not greedy: the three answers differ
    assert 3 <= one.usage.completion_tokens <= 36  # summed over the three answers
    short = client.chat.completions.create(model="tiny", messages=kw["messages"], max_completion_tokens=2,
                                           temperature=1.5, seed=1)
    assert short.usage.completion_tokens <= 2
    for bad, param in (({"temperature": 3}, "temperature"), ({"n": 99}, "n"), ({"top_p": 0}, "top_p"),
                       ({"max_tokens": 0}, "max_tokens"), ({"stop": ["a"] * 5}, "stop")):
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(**{**kw, **bad})
        assert err.value.body["param"] == param


def test_model_being_prepared_and_engine_down(world, live_server, api_key_for, settings):
    project, users, dataset, run, ckpt = world
    key = api_key_for(users["viewer"])
    body = {"model": run.fine_tuned_model, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {key}", "OpenAI-Project": project.slug}
    r = httpx.post(f"{live_server.url}/v1/chat/completions", json=body, headers=headers, timeout=30)
    assert r.status_code == 503 and r.json()["error"]["code"] == "model_not_ready" and r.headers["Retry-After"] == "10"
    settings.STUDIO_INFERENCE_URL = f"http://127.0.0.1:{free_port()}"
    r = httpx.post(f"{live_server.url}/v1/chat/completions", json={**body, "model": "tiny"}, headers=headers, timeout=30)
    assert r.status_code == 503 and r.json()["error"]["code"] == "engine_unavailable"
    assert "make run" in r.json()["error"]["message"]


def test_stop_sequences_end_the_answer_before_them(world, live_server, api_key_for):
    project, users, dataset, run, ckpt = world
    client = sdk(live_server, api_key_for, users["viewer"], project)
    kw = {"model": "tiny", "messages": [{"role": "user", "content": "tell me"}], "max_tokens": 16,
          "temperature": 1.0, "seed": 3}
    full = client.chat.completions.create(**kw).choices[0].message.content
    assert len(full) >= 4
    stop = full[2:4]
    cut = full[: full.index(stop)]
    answer = client.chat.completions.create(stop=[stop], **kw).choices[0]
    assert answer.message.content == cut and answer.finish_reason == "stop"
    streamed = "".join(c.choices[0].delta.content or "" for c in
                       client.chat.completions.create(stop=stop, stream=True, **kw) if c.choices)
    assert streamed == cut


def test_stop_filter_holds_back_only_possible_prefixes():
    from webapp.evals.chat_api import StopFilter

    f = StopFilter(["END"])
    assert f.feed("abcE") == "ab" and f.feed("N") == "c" and f.feed("Dzz") == "" and f.stopped and f.flush() == ""
    g = StopFilter(["END"])
    assert g.feed("abE") == "a" and g.feed("x") == "b" and g.flush() == "Ex" and not g.stopped
