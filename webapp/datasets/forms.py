import json

from django import forms

from webapp.core import jsonsafe

from .importers import prompt_text
from .models import Split


class UploadForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="How the dataset is called in this project.")
    train_file = forms.FileField(
        label="Task file", help_text="JSONL in OpenAI's RFT format, or CSV (you map its columns next)."
    )
    valid_file = forms.FileField(
        label="Validation file (optional)", required=False,
        help_text="Same format. Without one, a share of the tasks is held out below.",
    )
    holdout_percent = forms.IntegerField(
        label="Hold out for validation (%)", min_value=0, max_value=50, initial=20,
        help_text="Used only without a validation file. The same seed always picks the same tasks.",
    )
    seed = forms.IntegerField(initial=0, min_value=0, help_text="Seed of the hold-out choice.")

    def format(self) -> str:
        name = self.cleaned_data["train_file"].name.lower()
        return "csv" if name.endswith((".csv", ".tsv")) else "jsonl"


class CsvMappingForm(forms.Form):
    prompt_column = forms.ChoiceField(help_text="The question or instruction the model answers.")
    reference_column = forms.ChoiceField(
        required=False, help_text="The correct answer graders compare with ({{item.reference_answer}})."
    )
    extra_columns = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple,
        help_text="Other columns graders may use, as {{item.<column>}}.",
    )
    system_prompt = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), required=False,
        help_text="Optional instruction placed before every prompt.",
    )

    def __init__(self, *args, header: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        choices = [(h, h) for h in header]
        self.fields["prompt_column"].choices = choices
        self.fields["reference_column"].choices = [("", "— none —")] + choices
        self.fields["extra_columns"].choices = choices
        lowered = {h.lower(): h for h in header}
        for guess in ("prompt", "question", "input", "message", "text"):
            if guess in lowered:
                self.fields["prompt_column"].initial = lowered[guess]
                break
        for guess in ("reference_answer", "answer", "reference", "label", "output", "expected"):
            if guess in lowered:
                self.fields["reference_column"].initial = lowered[guess]
                break

    def clean(self):
        data = super().clean()
        if data.get("prompt_column") and data.get("prompt_column") == data.get("reference_column"):
            self.add_error("reference_column", "The reference answer must be another column than the prompt.")
        return data


class TaskForm(forms.Form):
    split = forms.ChoiceField(choices=Split.choices, initial=Split.TRAIN)
    system = forms.CharField(
        label="System message (optional)", required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    prompt = forms.CharField(label="Prompt", widget=forms.Textarea(attrs={"rows": 4}))
    reference_answer = forms.CharField(
        label="Reference answer", required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    extra = forms.CharField(
        label="Other reference fields (JSON object)", required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": '{"category": "billing"}'}),
        help_text="Graders reach each key as {{item.<key>}}.",
    )

    def clean_prompt(self):
        prompt = self.cleaned_data["prompt"]
        if not prompt.strip():
            raise forms.ValidationError("The prompt cannot be empty.")
        return prompt

    def clean_extra(self):
        text = self.cleaned_data["extra"].strip()
        if not text:
            return {}
        try:
            value = jsonsafe.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).") from None
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}.") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("Must be a JSON object like {\"key\": \"value\"}.")
        return value

    @classmethod
    def initial_from_row(cls, row: dict, split: str) -> dict:
        messages = row.get("messages", [])
        system = next((m.get("content", "") for m in messages if m.get("role") == "system"), "")
        extra = {k: v for k, v in row.items() if k not in ("messages", "tools", "reference_answer")}
        reference = row.get("reference_answer", "")
        return {
            "split": split,
            "system": system if isinstance(system, str) else "",
            "prompt": prompt_text(row),
            "reference_answer": reference if isinstance(reference, str) else json.dumps(reference),
            "extra": json.dumps(extra, indent=2, ensure_ascii=False) if extra else "",
        }
