"""Admin → Local base models: the model folders the New run form and the API offer by name.

A folder is checked when it is saved (an absolute path to a Hugging Face model folder with its
config and tokenizer), so a typo shows here, next to the field, not as a failed run later.
"""

from __future__ import annotations

import re
from pathlib import Path

from django import forms
from django.contrib import admin

from .models import LocalBaseModel

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf")


def folder_problem(path: str) -> str:
    """Why `path` cannot be a base model folder, or "" when it can."""
    folder = Path(path)
    if not folder.is_absolute():
        return "Give the full path from the root, e.g. /srv/models/qwen2.5-1.5b-instruct."
    if not folder.is_dir():
        return (f"There is no folder {path} on this machine. Training workers load the same path, so put the "
                "model there (on shared storage when the workers run elsewhere).")
    if not (folder / "config.json").is_file():
        return f"{path} has no config.json: it is not a Hugging Face model folder."
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        return f"{path} has no tokenizer (none of {', '.join(TOKENIZER_FILES)})."
    if not any(f.suffix in WEIGHT_SUFFIXES for f in folder.iterdir()):
        return f"{path} has no weights (no .safetensors or .bin files)."
    return ""


class LocalBaseModelForm(forms.ModelForm):
    class Meta:
        model = LocalBaseModel
        fields = ["name", "path", "description"]
        help_texts = {
            "name": "What experts pick in New run and what API jobs put in `model`, e.g. qwen2.5-1.5b-instruct. "
                    "Letters, digits and . _ - : only.",
            "path": "Absolute path of a Hugging Face model folder (config.json, tokenizer, weights), the same "
                    "path on the web machine and on every training worker.",
            "description": "Shown to experts beside the name, e.g. “Qwen 2.5, 1.5B, instruction-tuned”.",
        }

    def clean_name(self):
        from trainer.model_registry import BUILTIN_MODELS
        from webapp.graders.models import JudgeEndpoint

        name = self.cleaned_data["name"].strip()
        if not NAME.match(name):
            raise forms.ValidationError("Use letters, digits and . _ - : only (at most 100), starting with a "
                                        "letter or digit.")
        if name in BUILTIN_MODELS:
            raise forms.ValidationError(f"“{name}” is a built-in model's name.")
        if JudgeEndpoint.objects.filter(name=name).exists():
            raise forms.ValidationError(f"A judge endpoint is called “{name}”; graders name models by name, so "
                                        "pick another.")
        return name

    def clean_path(self):
        path = str(Path(self.cleaned_data["path"].strip()))
        problem = folder_problem(path)
        if problem:
            raise forms.ValidationError(problem)
        return path


@admin.register(LocalBaseModel)
class LocalBaseModelAdmin(admin.ModelAdmin):
    form = LocalBaseModelForm
    list_display = ["name", "description", "path", "folder", "runs_using"]
    search_fields = ["name", "path", "description"]

    @admin.display(description="folder on this machine")
    def folder(self, obj) -> str:
        return folder_problem(obj.path) or "ready"

    @admin.display(description="runs")
    def runs_using(self, obj) -> int:
        from .models import Run

        return Run.objects.filter(base_model=obj.name).count()
