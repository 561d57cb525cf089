"""A run's settings in the New run form's words, for the compare page.

The rows are the form's settings (labels and units from `trainer.config.FIELD_INFO`), read
back from the frozen config, plus what it trained: base model by name, dataset, grader, where
it trained. Engineers' settings that the form does not offer (AdamW betas, LoRA rank, …) are
listed apart, by their config name, and only where runs differ; server paths never show.
"""

from __future__ import annotations

from trainer.config import BASE_LEARNING_RATE, FIELD_INFO

from .models import Run

# The form's settings, in its order; `learning_rate_multiplier` is read back from the rate.
FORM_SETTINGS = ("n_epochs", "batch_size", "group_size", "learning_rate_multiplier", "max_completion_tokens",
                 "eval_interval", "eval_samples", "method", "temperature", "beta", "max_steps", "seed")
HIDDEN = {"output_dir", "base_model", "device"}  # paths, and what the rows above already say


def _number(value) -> str:
    if isinstance(value, bool) or value is None:
        return "—" if value is None else ("yes" if value else "no")
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _with_unit(name: str, value) -> str:
    info = FIELD_INFO[name]
    if value is None:
        return {"max_steps": "no limit", "eval_samples": "all"}.get(name, "—")
    if info.choices:
        return dict(info.choices).get(value, str(value))
    text = _number(value)
    return f"{text} {info.unit}" if info.unit and not info.unit.startswith("×") else \
        (f"{text}{info.unit[0]} {info.unit[1:].strip()}" if info.unit else text)


def run_settings(run: Run, *, grader: str) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """([(label, value)] in the form's words, {config name: value} of the engineers' settings)."""
    config = run.config or {}
    rows = [("Base model", run.base_model), ("Dataset", f"{run.dataset.name} v{run.dataset.version}"),
            ("Grader", grader),
            ("Trained on", {"cuda": "a GPU worker", "cpu": "a CPU worker"}.get(config.get("device"), "—")),
            ("Steps", _number(run.total_steps))]
    for name in FORM_SETTINGS:
        if name == "learning_rate_multiplier":
            base = BASE_LEARNING_RATE.get(config.get("method", "lora"))
            rate = config.get("learning_rate")
            value = rate / base if isinstance(rate, int | float) and base else None
            value = float(f"{value:.3g}") if value is not None else None
        else:
            value = config.get(name)
        if name not in config and name != "learning_rate_multiplier":
            continue
        rows.append((FIELD_INFO[name].label, _with_unit(name, value)))
    shown = set(FORM_SETTINGS) | {"learning_rate"} | HIDDEN
    engineers = {}
    for key, value in config.items():
        if key in shown:
            continue
        if isinstance(value, dict):
            for sub, v in value.items():
                engineers[f"{key}.{sub}"] = _number(v) if not isinstance(v, list | tuple) else ", ".join(map(str, v))
        else:
            engineers[key] = ", ".join(map(str, value)) if isinstance(value, list | tuple) else _number(value)
    return rows, engineers


def settings_table(runs: list[Run], graders: list[str]) -> tuple[list[dict], list[dict]]:
    """Rows {label, values, differs} in the form's words, and the engineers' rows that differ."""
    per_run = [run_settings(r, grader=g) for r, g in zip(runs, graders, strict=True)]
    labels = list(dict.fromkeys(label for rows, _ in per_run for label, _ in rows))
    words = []
    for label in labels:
        values = [dict(rows).get(label, "—") for rows, _ in per_run]
        words.append({"label": label, "values": values, "differs": len(set(values)) > 1})
    keys = sorted(set().union(*(set(e) for _, e in per_run)))
    engineers = []
    for key in keys:
        values = [e.get(key, "—") for _, e in per_run]
        if len(set(values)) > 1:
            engineers.append({"label": key, "values": values, "differs": True})
    return words, engineers
