"""Checkpoint exports: the PEFT adapter and the merged model, streamed as zips with a model
card, from the run page and the API; the merged model loads with from_pretrained and
generates what the studio's own evaluation of that checkpoint answered."""

import io
import json
import zipfile

import pytest

from tests.webapp.evals.conftest import RUBRIC, make_adapter_checkpoint
from webapp.evals.exports import export_merged_execute
from webapp.runs.models import Run, RunCheckpoint, RunStatus

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def trained(tiny_setup, settings):
    from trainer.export import export_size

    project, users, dataset = tiny_setup
    run = Run.objects.create(project=project, dataset=dataset, grader_spec=RUBRIC, base_model="tiny", suffix="letters",
                             status=RunStatus.SUCCEEDED, total_steps=4,
                             config={"method": "lora", "batch_size": 4, "group_size": 4, "learning_rate": 0.0002,
                                     "lora_rank": 4, "output_dir": str(settings.STUDIO_DATA_DIR / "runs" / "x"),
                                     "base_model": "/srv/secret/models/tiny"})
    folder = make_adapter_checkpoint(run_base_path(), settings.STUDIO_DATA_DIR / "runs" / run.pk / "step-000004")
    ckpt = RunCheckpoint.objects.create(run=run, step=4, path=str(folder), valid_reward=0.5,
                                        size_bytes=export_size(folder, base_model="tiny"))
    return project, users, run, ckpt


def run_base_path():
    from webapp.runs.models import LocalBaseModel

    return LocalBaseModel.objects.get(name="tiny").path


def unzip(response) -> zipfile.ZipFile:
    assert response.status_code == 200, response.content[:500] if hasattr(response, "content") else response
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


def test_adapter_download_is_peft_with_a_card_and_no_server_path(trained, client_for, api_client_for, settings):
    project, users, run, ckpt = trained
    web = client_for(users["viewer"]).get(f"/p/{project.slug}/runs/{run.pk}/checkpoints/{ckpt.pk}/download/")
    api = api_client_for(users["viewer"], project).get(
        f"/v1/fine_tuning/jobs/{run.pk}/checkpoints/{ckpt.pk}/download?format=adapter")
    assert web["Content-Type"] == "application/zip" and 'letters-step-4-adapter.zip"' in web["Content-Disposition"]
    for zf in (unzip(web), unzip(api)):
        names = {n.split("/", 1)[1] for n in zf.namelist()}
        assert {"README.md", "adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= names
        assert "trainer_state.pt" not in names and "train_config.json" not in names
        config = json.loads(zf.read(next(n for n in zf.namelist() if n.endswith("adapter_config.json"))))
        assert config["base_model_name_or_path"] == "tiny"
        for name in zf.namelist():
            if not name.endswith(".safetensors"):
                text = zf.read(name).decode()
                assert str(settings.STUDIO_DATA_DIR) not in text and run_base_path() not in text
                assert "/srv/secret" not in text
        card = zf.read(next(n for n in zf.namelist() if n.endswith("README.md"))).decode()
        assert "**tiny**" in card and "letters v1 (12 training tasks" in card and "PeftModel.from_pretrained" in card
        assert "| answers per task | 4 |" in card and '"name": "rubric"' in card and "validation reward 0.500" in card
        # the listed size is what the download holds (the card aside)
        assert sum(i.file_size for i in zf.infolist() if not i.filename.endswith("README.md")) == ckpt.size_bytes


def test_merged_export_loads_with_from_pretrained_and_generates(trained, api_client_for, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.evaluation import load_for_inference

    project, users, run, ckpt = trained
    client = api_client_for(users["viewer"], project)
    url = f"/v1/fine_tuning/jobs/{run.pk}/checkpoints/{ckpt.pk}/download?format=merged"
    first = client.get(url)
    assert first.status_code == 202 and first.json()["status"] == "preparing" and first["Retry-After"] == "10"
    assert client.get(url).status_code == 202  # queued once, still preparing
    export_merged_execute(checkpoint_id=ckpt.pk)  # what the worker's export_merged_task does
    zf = unzip(client.get(url))
    zf.extractall(tmp_path / "unzipped")
    folder = next((tmp_path / "unzipped").iterdir())
    names = {p.name for p in folder.iterdir()}
    assert {"README.md", "config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
            "tokenizer_config.json"} <= names and "adapter_config.json" not in names
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "say a"}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=8, do_sample=False)
    # the same greedy answer as the adapter applied on the fly (what evaluations use)
    ref_model, _ = load_for_inference(run_base_path(), ckpt.path, merge=False)
    ref = ref_model.generate(**ids, max_new_tokens=8, do_sample=False)
    assert torch.equal(out, ref) and out.shape[1] > ids["input_ids"].shape[1]
    assert "AutoModelForCausalLM.from_pretrained" in (folder / "README.md").read_text()


def test_bad_format_and_missing_files(trained, api_client_for, client_for):
    import shutil

    project, users, run, ckpt = trained
    client = api_client_for(users["viewer"], project)
    base = f"/v1/fine_tuning/jobs/{run.pk}/checkpoints/{ckpt.pk}/download"
    bad = client.get(base + "?format=gguf")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "format"
    assert client.get(f"/v1/fine_tuning/jobs/{run.pk}/checkpoints/ftckpt-nope/download").status_code == 404
    shutil.rmtree(ckpt.path)
    assert client.get(base).status_code == 404
    assert client_for(users["viewer"]).get(f"/p/{project.slug}/runs/{run.pk}/checkpoints/{ckpt.pk}/download/").status_code == 404
