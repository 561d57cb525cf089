"""The “New evaluation” form, in the expert's words."""

from __future__ import annotations

from django import forms

from webapp.datasets.selectors import dataset_list
from webapp.graders.selectors import grader_list_latest

from .selectors import project_models

SPLITS = [("valid", "its validation tasks"), ("train", "its training tasks"), ("all", "all its tasks")]


class EvaluationForm(forms.Form):
    model = forms.ChoiceField(label="Model", help_text="A base model, a trained model (its best checkpoint) "
                                                       "or any kept checkpoint of a finished run.")
    dataset = forms.ChoiceField(label="Tasks from")
    split = forms.ChoiceField(label="Which tasks", choices=SPLITS, initial="valid")
    grader = forms.ChoiceField(label="Grader")
    answers = forms.IntegerField(label="Answers per task", min_value=1, max_value=16, initial=1,
                                 help_text="1: the model's single most likely answer (as validation during "
                                           "training). More: that many varied answers; the score is their "
                                           "mean and “any full marks” counts a task solved if one of them is.")
    variety = forms.FloatField(label="Answer variety", min_value=0.05, max_value=2, initial=1.0, required=False,
                               help_text="Only with several answers per task: 0.05 (almost always the same) "
                                         "to 2 (very varied).")
    longest = forms.IntegerField(label="Longest answer", min_value=1, max_value=8192, initial=128,
                                 help_text="tokens (about ¾ of a word each); longer answers are cut.")
    name = forms.CharField(label="Name (optional)", max_length=200, required=False)

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [(m.name, m.label) for m in project_models(project=project)]
        self.datasets = {str(d.pk): d for d in dataset_list(project=project)}
        self.fields["dataset"].choices = [(pk, f"{d.name} v{d.version}") for pk, d in self.datasets.items()]
        self.graders = {str(g.pk): g for g in grader_list_latest(project=project)}
        self.fields["grader"].choices = [(pk, f"{g.name} v{g.version}") for pk, g in self.graders.items()]

    def clean(self):
        data = super().clean()
        if data.get("answers", 1) > 1 and not data.get("variety"):
            self.add_error("variety", "Several answers per task need some variety (0.05 to 2).")
        return data

    def service_kwargs(self) -> dict:
        d = self.cleaned_data
        n = d["answers"]
        sampling = {"n_samples": n, "max_completion_tokens": d["longest"],
                    "temperature": float(d["variety"]) if n > 1 else 0.0}
        return {"model_name": d["model"], "dataset": self.datasets[d["dataset"]], "split": d["split"],
                "grader": self.graders[d["grader"]], "sampling": sampling, "name": d["name"]}
