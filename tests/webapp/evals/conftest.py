import pytest

from tests.helpers import rft_row
from tests.trainer.engine.conftest import make_tiny_model


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    """A tiny random Llama on disk, registered per test as the base model "tiny"."""
    return make_tiny_model(tmp_path_factory.mktemp("evals-tiny") / "model")


@pytest.fixture(scope="session")
def tiny_adapter_path(tmp_path_factory, tiny_model_path):
    """A LoRA checkpoint folder for the tiny model, as the trainer saves one (random, non-zero B)."""
    return make_adapter_checkpoint(tiny_model_path, tmp_path_factory.mktemp("evals-ckpt") / "step-000004")


def make_adapter_checkpoint(base, folder, seed=1):
    import json

    import torch
    from peft import LoraConfig, get_peft_model

    from trainer.models import load_model

    model, tokenizer = load_model(str(base))
    torch.manual_seed(seed)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # trained adapters are not zero: answers must change
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    (folder / "train_config.json").write_text(json.dumps({"base_model": str(base)}))
    (folder / "metrics.json").write_text(json.dumps({"valid/reward_mean": 0.5}))
    (folder / "trainer_state.pt").write_bytes(b"\0" * 4096)  # stands in for the optimizer state
    return folder


@pytest.fixture
def tiny_setup(project_with_roles, tiny_model_path):
    """A project with the tiny model registered and a letters dataset (12 train, 4 valid)."""
    from webapp.datasets.services import dataset_create_from_rows
    from webapp.runs.models import LocalBaseModel

    project, users = project_with_roles
    LocalBaseModel.objects.get_or_create(name="tiny", defaults={"path": str(tiny_model_path)})
    rows = [rft_row(f"say {w}", w) for w in "abcdefghijklmnop"]
    dataset = dataset_create_from_rows(project=project, name="letters", user=users["owner"],
                                       train_rows=rows[:12], valid_rows=rows[12:])
    return project, users, dataset


RUBRIC = {
    "type": "multi", "name": "rubric", "calculate_output": "0.5 * short + 0.5 * has_a",
    "graders": {
        "short": {"type": "python", "name": "short",
                  "source": "def grade(sample, item):\n    return 1.0 if len(sample['output_text']) < 6 else 0.0\n"},
        "has_a": {"type": "string_check", "name": "has_a", "operation": "like",
                  "input": "{{sample.output_text}}", "reference": "a"},
    },
}
