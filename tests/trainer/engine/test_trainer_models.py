import json

import pytest
import torch

from trainer.models import BUILTIN_MODELS, ModelLoadError, load_model, resolve_model
from trainer.rollout import encode_prompt, generate


def test_builtin_registry_names_smollm2():
    assert "smollm2-135m-instruct" in BUILTIN_MODELS


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_model(str(tmp_path / "nope"))


def test_folder_without_config_or_weights(tmp_path):
    with pytest.raises(ModelLoadError, match="config.json is missing"):
        resolve_model(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="has no weights"):
        resolve_model(str(tmp_path))


def test_broken_weights_are_a_clear_error(tiny_model, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in tiny_model.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError, match="cannot load the weights"):
        load_model(str(broken))
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        load_model(str(broken))


def test_unknown_hub_id_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="not a built-in model"):
        resolve_model("someone/not-a-model-xyz")


def test_tiny_model_loads_with_chat_template(tiny_model):
    model, tok = load_model(str(tiny_model))
    assert tok.padding_side == "left" and tok.pad_token_id is not None
    ids, cut = encode_prompt(tok, [{"role": "user", "content": "hello"}], max_tokens=100)
    assert not cut and tok.decode(ids).endswith("<|im_start|>assistant\n")
    ids, cut = encode_prompt(tok, [{"role": "user", "content": "hello"}], max_tokens=5)
    assert cut and len(ids) == 5
    assert json.loads((tiny_model / "config.json").read_text())["model_type"] == "llama"


def test_generate_greedy_matches_transformers_and_masks(tiny_model):
    model, tok = load_model(str(tiny_model))
    prompts = [encode_prompt(tok, [{"role": "user", "content": c}], max_tokens=64)[0] for c in ["hi", "what is 2+2?"]]
    finished = {}
    r = generate(model, prompts, group_size=2, max_new_tokens=12, eos_ids={tok.eos_token_id},
                 pad_id=tok.pad_token_id, temperature=0, on_finished=lambda row, ids, tr: finished.update({row: ids}))
    assert r.completion_ids.shape[0] == 4 and sorted(finished) == [0, 1, 2, 3]
    for i, prompt in enumerate(prompts):
        ref = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                             max_new_tokens=12, do_sample=False, eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.pad_token_id)[0, len(prompt):].tolist()
        for row in (2 * i, 2 * i + 1):  # both samples of a greedy group are the same
            n = int(r.completion_mask[row].sum())
            ours = r.completion_ids[row, :n].tolist()
            assert ours == ref[:n] == finished[row]
            assert bool(r.truncated[row]) == (ours[-1] != tok.eos_token_id)


def test_generate_sampling_is_seeded(tiny_model):
    model, tok = load_model(str(tiny_model))
    prompts = [encode_prompt(tok, [{"role": "user", "content": "x"}], max_tokens=64)[0]]
    kw = dict(group_size=4, max_new_tokens=6, eos_ids={tok.eos_token_id}, pad_id=tok.pad_token_id, top_p=0.9)
    a = generate(model, prompts, generator=torch.Generator().manual_seed(3), **kw)
    b = generate(model, prompts, generator=torch.Generator().manual_seed(3), **kw)
    assert torch.equal(a.completion_ids, b.completion_ids)
    assert len({tuple(row.tolist()) for row in a.completion_ids}) > 1  # samples differ within the group
