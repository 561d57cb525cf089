"""The “New run” form, built from `trainer.config.FIELD_INFO`.

Labels, units, help and ranges come from the table the API's hyperparameters are checked
against, so the browser and the API accept the same values. The expert sees plain settings
(“Answers per task: 2”); the form hands `run_plan` `TrainConfig` fields (`overrides`) and
the one OpenAI hyperparameter people think in, the learning-rate multiplier.
"""

from __future__ import annotations

import dataclasses
import typing

from django import forms

from trainer.config import AUTO_SIZES, FIELD_INFO, TrainConfig
from webapp.datasets.selectors import dataset_list

from .plan import DEFAULT_SEED

_TYPES = typing.get_type_hints(TrainConfig)
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
HARDWARE = {"cpu": "cpu", "gpu": "cuda"}  # form choice -> the device `run_plan` sizes "auto" for


def _number(kind: type, text: str, *, auto: bool):
    try:
        return kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise forms.ValidationError(f"Enter {what} or “auto”." if auto else f"Enter {what}.") from None


INT_CEILING = 2**31 - 1  # the largest whole-number setting without a maximum of its own (seed, step limit)


class SettingField(forms.CharField):
    """One launch setting: a number in `FIELD_INFO`'s range, or “auto” where it has one (then
    an empty box means “auto” too), or nothing where it is optional."""

    def __init__(self, name: str, *, kind: type, auto: bool, required: bool = True, initial=None):
        self.info, self.kind, self.auto, self.optional = FIELD_INFO[name], kind, auto, not required
        self.unit = self.info.unit
        help_text = self.info.help
        if not self.unit and self.info.minimum is not None:  # no unit to read: say the range
            low, high = self.info.minimum, self.info.maximum
            help_text += f" From {low:g} to {high:g}." if high is not None else f" At least {low:g}."
        if auto:
            help_text += f" “auto”: {self.info.auto}."
        super().__init__(label=self.info.label, help_text=help_text, required=False,
                         initial="auto" if auto else initial)
        self.widget.attrs.update({"inputmode": "numeric" if kind is int else "decimal", "size": 8})

    def clean(self, value):
        text = (value or "").strip().lower()
        if self.auto and text in ("", "auto"):
            return "auto"
        if not text:
            if self.optional:
                return None
            raise forms.ValidationError("This field is required.")
        number = _number(self.kind, text, auto=self.auto)
        low, high = self.info.minimum, self.info.maximum
        if high is None and self.kind is int:  # a seed or step count must fit the database and RNGs
            high = INT_CEILING
        if (low is not None and number < low) or (high is not None and number > high):
            if high is None:
                raise forms.ValidationError(f"Must be at least {_shown(low)}.")
            raise forms.ValidationError(f"Must be between {_shown(low)} and {_shown(high)}.")
        return number


def _shown(number) -> str:
    """A bound as the expert reads it: 2,147,483,647 rather than 2.14748e+09; 0.001 as it is."""
    return f"{number:,}" if isinstance(number, int) else f"{number:g}"


def _kind(name: str) -> type:
    hint = _TYPES.get(name, float)
    return int if hint is int or int in typing.get_args(hint) else float


class LaunchForm(forms.Form):
    dataset = forms.ChoiceField(help_text="Tasks to train on; its validation split measures progress.")
    grader = forms.ChoiceField(help_text="The rubric that scores every answer.")
    base_model = forms.ChoiceField(label="Base model", help_text="The model that learns.")
    suffix = forms.CharField(required=False, max_length=64, label="Name (optional)",
                             help_text="Names the run and the trained model, e.g. “triage-v2”, up to 64 "
                                       "characters; empty: the run is named after its grader and date.")
    worker_type = forms.ChoiceField(
        label="Train on", choices=[("cpu", "A CPU worker"), ("gpu", "A GPU worker (CUDA)")],
        help_text="Sizes the “auto” settings below: each step on a CPU worker is {cpu.batch_size} tasks × "
                  "{cpu.group_size} answers of up to {cpu.max_completion_tokens} tokens, on a GPU worker "
                  "{gpu.batch_size} × {gpu.group_size} of up to {gpu.max_completion_tokens}."
                  .format(cpu=AUTO_SIZES["cpu"], gpu=AUTO_SIZES["cuda"]))

    # The settings, in the order the form shows them; the advanced ones are folded away.
    AUTO_SETTINGS = ("n_epochs", "batch_size", "group_size", "learning_rate_multiplier", "max_completion_tokens",
                     "eval_interval")
    ADVANCED = ("method", "temperature", "beta", "seed", "max_steps")
    # Settings with OpenAI's name and meaning, recorded on the run as given; the rest are TrainConfig fields.
    HYPERPARAMETERS = ("n_epochs", "batch_size", "learning_rate_multiplier", "eval_interval")

    def __init__(self, *args, project, graders, base_models, device: str, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.AUTO_SETTINGS:
            self.fields[name] = SettingField(name, kind=_kind(name), auto=True)
        method = FIELD_INFO["method"]
        self.fields["method"] = forms.ChoiceField(label=method.label, help_text=method.help,
                                                  choices=method.choices, initial=_DEFAULTS["method"])
        for name in ("temperature", "beta"):
            self.fields[name] = SettingField(name, kind=float, auto=False, initial=_DEFAULTS[name])
        self.fields["seed"] = SettingField("seed", kind=int, auto=False, initial=DEFAULT_SEED)
        self.fields["max_steps"] = SettingField("max_steps", kind=int, auto=False, required=False)
        self.fields["worker_type"].initial = "gpu" if device == "cuda" else "cpu"

        self.datasets = {str(d.pk): d for d in dataset_list(project=project) if d.train_count}
        self.graders = {g.pk: g for g in graders}
        self.fields["dataset"].choices = [
            (k, f"{d.name} v{d.version} ({d.train_count} train / {d.valid_count} valid)")
            for k, d in self.datasets.items()]
        self.fields["grader"].choices = [(k, f"{g.name} v{g.version}") for k, g in self.graders.items()]
        self.fields["base_model"].choices = base_models

    def basic_fields(self):
        return [f for f in self if f.name not in self.ADVANCED]

    def advanced_fields(self):
        return [self[name] for name in self.ADVANCED]

    # --- what run_plan takes --------------------------------------------------------------------

    def hyperparameters(self) -> dict:
        return {k: self.cleaned_data[k] for k in self.HYPERPARAMETERS}

    def overrides(self) -> dict:
        """`TrainConfig` fields the expert set (an “auto” one is left to `run_plan`)."""
        d = self.cleaned_data
        out = {"method": d["method"], "temperature": d["temperature"], "beta": d["beta"]}
        for name in ("group_size", "max_completion_tokens", "max_steps"):
            if d.get(name) not in (None, "auto"):
                out[name] = d[name]
        return out

    def device(self) -> str:
        return HARDWARE[self.cleaned_data["worker_type"]]

    def plan_arguments(self) -> dict:
        """Keyword arguments for `run_plan` / `run_create`."""
        d = self.cleaned_data
        return {"dataset": self.datasets[d["dataset"]], "grader": self.graders[d["grader"]],
                "base_model": d["base_model"], "suffix": d["suffix"], "seed": d["seed"],
                "hyperparameters": self.hyperparameters(), "overrides": self.overrides(), "device": self.device()}
