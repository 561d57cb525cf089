import json

import pytest

from trainer.config import ConfigError, TrainConfig, config_from_openai_hyperparameters


def test_defaults_are_valid_and_round_trip_through_json():
    config = TrainConfig()
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"group_size": 1}, "group_size must be at least 2 (got 1)"),
        ({"batch_size": 6, "micro_batch_size": 4}, "batch_size 6 is not a multiple of micro_batch_size 4"),
        ({"loss_type": "ppo"}, "loss_type must be one of grpo, dr_grpo, dapo (got 'ppo')"),
        ({"reward_scaling": "max"}, "reward_scaling must be one of group, batch, none"),
        ({"method": "qlora"}, "method must be one of lora, full"),
        ({"learning_rate": 0}, "learning_rate must be in (0, 1)"),
        ({"temperature": 0}, "temperature must be > 0"),
        ({"top_p": 1.5}, "top_p must be in (0, 1]"),
        ({"beta": -1}, "beta must be >= 0"),
        ({"n_epochs": 0}, "n_epochs must be a positive integer (got 0)"),
        ({"max_steps": 0}, "max_steps must be None or a positive integer"),
        ({"lora_target_modules": []}, "lora_target_modules is empty"),
    ],
)
def test_bad_values_give_clear_messages(changes, message):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**changes)
    assert message in str(info.value)


def test_all_problems_are_reported_at_once():
    with pytest.raises(ConfigError) as info:
        TrainConfig(group_size=1, epsilon=2)
    assert "group_size" in str(info.value) and "epsilon" in str(info.value)


def test_unknown_field_is_rejected():
    with pytest.raises(ConfigError, match="unknown field.*batchsize"):
        TrainConfig.from_dict({"batchsize": 4})


def test_total_steps():
    assert TrainConfig(batch_size=4, n_epochs=2).total_steps(10) == 5
    assert TrainConfig(batch_size=8).total_steps(3) == 1
    assert TrainConfig(batch_size=2, n_epochs=3, max_steps=4).total_steps(10) == 4


def test_openai_hyperparameters_auto():
    config = config_from_openai_hyperparameters({}, base_model="m", n_train_tasks=40, n_valid_tasks=10,
                                                device="cuda")
    assert config.base_model == "m"
    assert config.batch_size == 8 and config.group_size == 8
    assert config.n_epochs == 10  # about 50 steps: ceil(50 * 8 / 40)
    assert config.eval_samples == 10
    assert config.max_completion_tokens == 128
    assert config.learning_rate == pytest.approx(5e-5)


def test_openai_hyperparameters_numbers():
    config = config_from_openai_hyperparameters(
        {"n_epochs": 3, "batch_size": 4, "learning_rate_multiplier": 2.0, "compute_multiplier": 0.5,
         "eval_interval": 5, "eval_samples": 7, "reasoning_effort": "low"},
        base_model="m", n_train_tasks=20, seed=42, method="full")
    assert (config.n_epochs, config.batch_size, config.group_size) == (3, 4, 4)
    assert config.learning_rate == pytest.approx(1e-5)  # 2 x 5e-6 for full fine-tuning
    assert (config.eval_interval, config.eval_samples, config.max_completion_tokens) == (5, 7, 128)
    assert config.seed == 42 and config.method == "full"


@pytest.mark.parametrize(
    ("hp", "message"),
    [
        ({"n_epochs": 0}, "n_epochs must be between 1 and 50"),
        ({"batch_size": "big"}, "batch_size must be an integer or \"auto\""),
        ({"reasoning_effort": "extreme"}, "reasoning_effort must be one of"),
        ({"epochs": 2}, "unknown hyperparameter(s): epochs"),
    ],
)
def test_openai_hyperparameters_errors(hp, message):
    with pytest.raises(ConfigError) as info:
        config_from_openai_hyperparameters(hp, base_model="m", n_train_tasks=10)
    assert message in str(info.value)


def test_auto_is_sized_for_the_device():
    """A CPU gets a quarter of a GPU's answers per step: 4 tasks x 4 answers of 64 tokens."""
    cpu = config_from_openai_hyperparameters({}, base_model="m", n_train_tasks=40, device="cpu")
    gpu = config_from_openai_hyperparameters({}, base_model="m", n_train_tasks=40, device="cuda")
    assert (cpu.batch_size, cpu.group_size, cpu.max_completion_tokens) == (4, 4, 64)
    assert (gpu.batch_size, gpu.group_size, gpu.max_completion_tokens) == (8, 8, 128)
    assert cpu.device == "cpu" and gpu.device == "cuda"
    assert cpu.n_epochs == 5  # about 50 steps with 4 tasks per step: ceil(50 * 4 / 40)
    small = config_from_openai_hyperparameters({}, base_model="m", n_train_tasks=3, device="cpu")
    assert small.batch_size == 3
    # numbers given stay what they are on any device
    given = config_from_openai_hyperparameters({"batch_size": 8, "compute_multiplier": 1, "reasoning_effort": "low"},
                                               base_model="m", n_train_tasks=40, device="cpu")
    assert (given.batch_size, given.group_size, given.max_completion_tokens) == (8, 8, 128)


def test_overrides_win_and_drive_the_auto_values_that_depend_on_them():
    config = config_from_openai_hyperparameters(
        {"batch_size": 8, "compute_multiplier": 1}, base_model="m", n_train_tasks=40, device="cuda",
        batch_size=2, group_size=3, max_completion_tokens=20, max_steps=30)
    assert (config.batch_size, config.group_size, config.max_completion_tokens) == (2, 3, 20)
    assert config.n_epochs == 3  # ceil(50 * 2 / 40): auto passes follow the overridden batch size
    assert config.eval_interval == 3  # about 10 checks of the 30 steps max_steps allows


@pytest.mark.parametrize(("hp", "message"), [
    ({"batch_size": 257}, "hyperparameter batch_size must be between 1 and 256 (got 257)"),
    ({"n_epochs": 51}, "hyperparameter n_epochs must be between 1 and 50"),
    ({"learning_rate_multiplier": 1000}, "hyperparameter learning_rate_multiplier must be between 0.001 and 100"),
    ({"eval_interval": 0}, "hyperparameter eval_interval must be at least 1 (got 0)"),
])
def test_hyperparameter_ranges_are_the_launch_forms(hp, message):
    """The API accepts exactly the ranges FIELD_INFO gives the launch form."""
    with pytest.raises(ConfigError) as info:
        config_from_openai_hyperparameters(hp, base_model="m", n_train_tasks=10, device="cpu")
    assert message in str(info.value)


def test_compute_multiplier_maps_to_answers_per_task_within_the_forms_range():
    def group(multiplier):
        return config_from_openai_hyperparameters({"compute_multiplier": multiplier}, base_model="m",
                                                  n_train_tasks=10, device="cuda").group_size

    assert (group(0.25), group(1), group(0.01), group(100)) == (2, 8, 2, 64)
