
from django import forms

from trainer.grading import GraderValidationError, validate_grader
from webapp.core import jsonsafe
from webapp.datasets.importers import prompt_text
from webapp.datasets.models import Dataset

from .judges import sync_judges

MAX_GRADER_JSON = 512 * 1024  # OpenAI caps python source at 256 kB; leave room for the rest


def dataset_field(project, required=False) -> forms.ModelChoiceField:
    return forms.ModelChoiceField(
        queryset=Dataset.objects.filter(project=project).order_by("name", "-version"), required=required,
        empty_label="— none —",
        help_text="Its reference fields become {{item.…}} chips; try-it and the reference check use its tasks.",
    )


class GraderMetaForm(forms.Form):
    """Name, description and dataset of a grader (the builder's and the importer's header)."""

    name = forms.CharField(max_length=200)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["dataset"] = dataset_field(project)


class ImportForm(GraderMetaForm):
    """Paste OpenAI grader JSON: validated by the engine, errors name the field path."""

    grader_json = forms.CharField(
        label="Grader JSON", widget=forms.Textarea(attrs={"rows": 16, "class": "mono", "spellcheck": "false"}),
        max_length=MAX_GRADER_JSON,
        help_text='OpenAI\'s grader object, e.g. {"type": "string_check", "name": "exact", '
                  '"input": "{{sample.output_text}}", "reference": "{{item.reference_answer}}", "operation": "eq"}.',
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["name"].required = False
        self.fields["name"].help_text = "Leave empty to use the grader's own name."

    def clean_grader_json(self):
        text = self.cleaned_data["grader_json"]
        try:
            spec = jsonsafe.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"This is not valid JSON: {exc}.") from None
        sync_judges()  # judges an admin configured are valid `model`s
        try:
            validate_grader(spec)
        except GraderValidationError as exc:
            where = f"at {exc.param}: " if exc.param else ""
            raise forms.ValidationError(f"{where}{exc.message}") from None
        return spec

    def clean(self):
        data = super().clean()
        spec = data.get("grader_json")
        if isinstance(spec, dict) and not data.get("name"):
            data["name"] = str(spec.get("name") or spec.get("type") or "grader")
        return data


class TryForm(forms.Form):
    """A model answer and the task it answers (one of the dataset's, or typed JSON)."""

    sample = forms.CharField(
        label="Model answer", widget=forms.Textarea(attrs={"rows": 4}), required=False, max_length=100_000,
        help_text="Paste or type what a model might answer. Becomes {{sample.output_text}}.",
    )
    task = forms.TypedChoiceField(label="Task", coerce=int, required=False, empty_value=None)
    item_json = forms.CharField(
        label="…or the task as JSON", required=False, max_length=100_000,
        widget=forms.Textarea(attrs={"rows": 3, "class": "mono", "spellcheck": "false"}),
        help_text='Overrides the task above, e.g. {"reference_answer": "42"}.',
    )

    def __init__(self, *args, tasks=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.tasks = {t.pk: t for t in tasks}
        # numbered as on the dataset page (from 1); the first task is picked to start with,
        # since most criteria read the task (a grade without one only reports missing fields)
        self.fields["task"].choices = [
            (t.pk, f"Task {t.position + 1} ({t.split}): {prompt_text(t.data)[:80]}") for t in tasks
        ] or [("", "— this grader has no dataset: type the task as JSON below —")]
        if tasks:
            self.fields["task"].initial = tasks[0].pk
            self.fields["task"].help_text = "The task the answer is for; its reference fields fill {{item.…}}."

    def clean_item_json(self):
        text = self.cleaned_data["item_json"].strip()
        if not text:
            return None
        try:
            item = jsonsafe.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"This is not valid JSON: {exc}.") from None
        if not isinstance(item, dict):
            raise forms.ValidationError("The task must be a JSON object, e.g. {\"reference_answer\": \"42\"}.")
        return item

    def item(self) -> dict:
        if self.cleaned_data.get("item_json") is not None:
            return self.cleaned_data["item_json"]
        task = self.tasks.get(self.cleaned_data.get("task"))
        return task.data if task else {}
