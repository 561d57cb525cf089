"""The “New run” form: a few plain choices with “auto” defaults, the rest folded away."""

from django import forms

from webapp.datasets.selectors import dataset_list

AUTO_HELP = "“auto” picks a sensible value from the dataset size."


class AutoNumberField(forms.CharField):
    """A number, or the word “auto” (OpenAI's hyperparameter convention)."""

    def __init__(self, *, kind=int, minimum=None, maximum=None, **kwargs):
        self.kind, self.minimum, self.maximum = kind, minimum, maximum
        super().__init__(initial="auto", required=False, **kwargs)

    def clean(self, value):
        value = (value or "").strip().lower() or "auto"
        if value == "auto":
            return "auto"
        try:
            number = self.kind(value)
        except ValueError:
            raise forms.ValidationError(
                f"Enter {'a whole number' if self.kind is int else 'a number'} or “auto”.") from None
        if (self.minimum is not None and number < self.minimum) or (self.maximum is not None and number > self.maximum):
            raise forms.ValidationError(f"Must be between {self.minimum} and {self.maximum}.")
        return number


class LaunchForm(forms.Form):
    dataset = forms.ChoiceField(help_text="Tasks to train on; its validation split measures progress.")
    grader = forms.ChoiceField(help_text="The rubric that scores every answer.")
    base_model = forms.ChoiceField(label="Base model", help_text="The model that learns.")
    suffix = forms.CharField(required=False, max_length=64, help_text="A short name for the trained model.")

    n_epochs = AutoNumberField(label="Passes over the tasks", minimum=1, maximum=50,
                               help_text="More passes: more learning, more time. " + AUTO_HELP)
    batch_size = AutoNumberField(label="Tasks per step", minimum=1, maximum=256,
                                 help_text="How many tasks each update looks at.")
    compute_multiplier = AutoNumberField(label="Answers per task (× 8)", kind=float, minimum=0.25, maximum=8,
                                         help_text="Tries per task to compare; 1 means 8 answers per task.")
    learning_rate_multiplier = AutoNumberField(label="Learning speed (×)", kind=float, minimum=0.01, maximum=100,
                                               help_text="Higher learns faster but can become unstable.")
    reasoning_effort = forms.ChoiceField(
        label="Answer length", initial="auto",
        choices=[("auto", "auto (128 tokens)"), ("minimal", "minimal (64)"), ("low", "low (128)"),
                 ("medium", "medium (256)"), ("high", "high (512)")],
        help_text="The longest answer the model may write during training.")
    eval_interval = AutoNumberField(label="Check progress every N steps", minimum=1,
                                    help_text="Validation and a checkpoint every N steps.")
    worker_type = forms.ChoiceField(
        choices=[("cpu", "CPU worker"), ("gpu", "CUDA GPU worker")], initial="cpu", label="Train on",
        help_text="On a CPU worker “auto” picks smaller steps (4 tasks × 4 answers, short answers).")

    # advanced
    method = forms.ChoiceField(choices=[("lora", "LoRA adapters (fast, small)"), ("full", "All weights")],
                               initial="lora", help_text="LoRA trains small adapters on top of the base model.")
    max_completion_tokens = forms.IntegerField(required=False, min_value=1, max_value=8192,
                                               label="Answer length in tokens (overrides the above)")
    temperature = forms.FloatField(initial=1.0, min_value=0.05, max_value=2.0,
                                   help_text="Sampling temperature of training answers.")
    beta = forms.FloatField(initial=0.0, min_value=0.0, max_value=10.0, label="KL penalty (beta)",
                            help_text="Keeps the model close to the base model; 0 disables it.")
    seed = forms.IntegerField(initial=42, min_value=0)
    max_steps = forms.IntegerField(required=False, min_value=1, help_text="Stop early after this many steps.")

    ADVANCED = ("method", "max_completion_tokens", "temperature", "beta", "seed", "max_steps")
    HYPERPARAMETERS = ("n_epochs", "batch_size", "compute_multiplier", "learning_rate_multiplier",
                       "reasoning_effort", "eval_interval")

    def __init__(self, *args, project, graders, base_models, **kwargs):
        super().__init__(*args, **kwargs)
        self.datasets = {str(d.pk): d for d in dataset_list(project=project) if d.train_count}
        self.graders = {g.pk: g for g in graders}
        self.fields["dataset"].choices = [
            (k, f"{d.name} v{d.version} ({d.train_count} train / {d.valid_count} valid)") for k, d in self.datasets.items()]
        self.fields["grader"].choices = [(k, f"{g.name} v{g.version}") for k, g in self.graders.items()]
        self.fields["base_model"].choices = base_models

    def basic_fields(self):
        return [f for f in self if f.name not in self.ADVANCED]

    def advanced_fields(self):
        return [f for f in self if f.name in self.ADVANCED]

    # What "auto" means on a CPU worker, where OpenAI's GPU-sized defaults (8 tasks x 8 answers
    # of 128 tokens per step) take minutes per step even for a 135M model.
    CPU_AUTO = {"batch_size": 4, "compute_multiplier": 0.5, "reasoning_effort": "minimal"}

    def hyperparameters(self) -> dict:
        hp = {k: self.cleaned_data[k] for k in self.HYPERPARAMETERS}
        if self.cleaned_data.get("worker_type") == "cpu":
            cpu = {**self.CPU_AUTO, "batch_size": min(self.CPU_AUTO["batch_size"], self.datasets[self.cleaned_data["dataset"]].train_count)}
            hp.update({k: v for k, v in cpu.items() if hp[k] == "auto"})
        return hp

    def overrides(self) -> dict:
        d = self.cleaned_data
        out = {"method": d["method"], "temperature": d["temperature"], "beta": d["beta"]}
        if d.get("max_completion_tokens"):
            out["max_completion_tokens"] = d["max_completion_tokens"]
        if d.get("max_steps"):
            out["max_steps"] = d["max_steps"]
        return out
