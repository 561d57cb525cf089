"""OpenAI's Evals API on our evaluations: an `eval` is an `EvalDefinition` (item schema and
testing criteria), an `eval.run` is an ordinary `Evaluation` linked to it, an output item is
an `EvalItem`. Nothing is stored twice, so API runs show on the evaluation pages and
evaluations started in the browser list in the API (grouped by task set and grader).

Grading: the criteria become one `multi` grader (their mean) stored as the evaluation's
`grader_spec`, so every criterion's score lands in the item's `sub_rewards`.
A criterion passes when its score is at least its `pass_threshold`; without one the default
is full marks (1.0, or the top of a `score_model`'s `range`). An item passes when every
criterion passes; an item whose grading or generation raised an error counts as `errored`
(its output item has status `fail` and its `sample.error` says why).

Data sources: `jsonl` grades the given `sample` of each `{"item", "sample"?}` line as is;
`completions` has a project model answer first (`input_messages` template with `{{item.x}}`
or an `item_reference` to the item's messages), with `sampling_params`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from webapp.graders.judges import sync_judges
from webapp.graders.services import grader_validate_spec, grading_scope
from webapp.projects.models import Project
from webapp.runs.hooks import task_key

from .models import EvalDefinition, EvalItem, EvalPurpose, EvalRunLink, EvalStatus, Evaluation
from .selectors import model_resolve
from .services import MAX_EVAL_TASKS, evaluation_claim, evaluation_summarise, sampling_clean

log = logging.getLogger(__name__)

GIVEN_ANSWERS = "given answers"  # the model_name of a jsonl run (no model answered)
MAX_CRITERIA = 20
MAX_SCHEMA_CHARS = 100_000  # an item_schema as JSON text: every item is checked against it
MAX_TEMPLATE_MESSAGES = 256  # as many as /v1/chat/completions takes
SAMPLING_MAP = {"max_completion_tokens": "max_completion_tokens", "max_completions_tokens": "max_completion_tokens",
                "temperature": "temperature", "top_p": "top_p", "seed": "seed"}


class EvalInputError(ValueError):
    """A bad request field: `param` is its path, e.g. `testing_criteria[1].source`."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.message, self.param = message, param


# --- criteria ----------------------------------------------------------------------------------


def _key(name: str, taken: set[str], index: int) -> str:
    key = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_").lower() or f"criterion_{index + 1}"
    if not key[0].isalpha():
        key = "c_" + key
    key = key[:60]
    base, n = key, 2
    while key in taken:
        key, n = f"{base}_{n}", n + 1
    taken.add(key)
    return key


def criteria_info(criteria: list[dict]) -> list[dict]:
    """[{key, name, type, threshold, low, high}] of stored testing criteria, in order."""
    taken: set[str] = set()
    out = []
    for i, c in enumerate(criteria):
        name = str(c.get("name") or c.get("type") or f"criterion {i + 1}")
        low, high = 0.0, 1.0
        if c.get("type") == "score_model" and isinstance(c.get("range"), list) and len(c["range"]) == 2:
            low, high = float(c["range"][0]), float(c["range"][1])
        threshold = c.get("pass_threshold")
        out.append({"key": c.get("_key") or _key(name, taken, i), "name": name, "type": str(c.get("type", "")),
                    "threshold": float(threshold) if threshold is not None else high, "low": low, "high": high})
        taken.add(out[-1]["key"])
    return out


def criteria_clean(value: Any) -> list[dict]:
    """Validate testing criteria (each with our grader validation); the stored list."""
    if not isinstance(value, list) or not value:
        raise EvalInputError("testing_criteria must be a non-empty list of grader objects.", "testing_criteria")
    if len(value) > MAX_CRITERIA:
        raise EvalInputError(f"testing_criteria has {len(value)} criteria; the limit is {MAX_CRITERIA}.",
                             "testing_criteria")
    out, taken = [], set()
    for i, raw in enumerate(value):
        where = f"testing_criteria[{i}]"
        if not isinstance(raw, dict):
            raise EvalInputError(f"{where} must be a grader object.", where)
        raw = dict(raw)
        threshold = raw.pop("pass_threshold", None)
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, int | float)
                                      or not -1e9 < threshold < 1e9):
            raise EvalInputError(f"{where}.pass_threshold must be a number.", f"{where}.pass_threshold")
        try:
            spec = grader_validate_spec(raw)
        except ValidationError as exc:
            message = "; ".join(exc.message_dict.get("spec", exc.messages)) if hasattr(exc, "message_dict") \
                else "; ".join(exc.messages)
            raise EvalInputError(f"{where} ({raw.get('name') or raw.get('type') or 'grader'}): {message}",
                                 where) from None
        name = str(spec.get("name") or spec.get("type") or f"criterion {i + 1}")
        stored = {**spec, "_key": _key(name, taken, i)}
        if threshold is not None:
            stored["pass_threshold"] = float(threshold)
        out.append(stored)
    return out


def criteria_public(criteria: list[dict]) -> list[dict]:
    return [{k: v for k, v in c.items() if k != "_key"} for c in criteria]


def criteria_grader(name: str, criteria: list[dict]) -> dict:
    """One `multi` grader over the criteria (their mean): what the evaluation runs and stores."""
    info = criteria_info(criteria)
    graders = {i["key"]: {k: v for k, v in c.items() if k not in ("_key", "pass_threshold")}
               for i, c in zip(info, criteria, strict=True)}
    formula = "(" + " + ".join(graders) + f") / {len(graders)}"
    return grader_validate_spec({"type": "multi", "name": (name or "eval")[:100], "graders": graders,
                                 "calculate_output": formula})


def criteria_of_spec(spec: dict) -> list[dict]:
    """Testing criteria read back from a browser evaluation's grader."""
    if spec.get("type") == "multi" and isinstance(spec.get("graders"), dict):
        return [{**g, "name": g.get("name") or k, "_key": k} for k, g in spec["graders"].items()]
    return [{**spec, "_key": ""}]


def item_scores(sub_rewards: dict, reward: float, info: list[dict]) -> list[dict]:
    """[{name, type, score, passed}] of one item (its `sub_rewards` and `reward`), per criterion."""
    out = []
    for c in info:
        if c["key"] and c["key"] in sub_rewards:
            unit = float(sub_rewards[c["key"]])
        elif len(info) == 1:
            unit = float(reward)
        else:
            unit = 0.0
        score = c["low"] + unit * (c["high"] - c["low"])
        out.append({"name": c["name"], "type": c["type"], "score": score,
                    "passed": bool(score >= c["threshold"] - 1e-9)})
    return out


# --- evals -------------------------------------------------------------------------------------


def _metadata(value: Any, param: str = "metadata") -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > 16:
        raise EvalInputError("metadata must be an object of at most 16 keys.", param)
    for key, item in value.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 64 or "__" in key:
            raise EvalInputError("metadata keys are texts of 1 to 64 characters without '__'.", param)
        if not isinstance(item, str) or len(item) > 512:
            raise EvalInputError("metadata values must be texts of at most 512 characters.", f"{param}.{key}")
    return value


def _name(value: Any, param: str = "name") -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > 200 or "\x00" in value:
        raise EvalInputError("name must be a text of at most 200 characters.", param)
    return value.strip()


def data_source_config_clean(value: Any) -> dict:
    if not isinstance(value, dict):
        raise EvalInputError("data_source_config must be an object like {\"type\": \"custom\", \"item_schema\": "
                             "{...}}.", "data_source_config")
    if value.get("type") != "custom":
        raise EvalInputError("data_source_config.type must be 'custom' (items you send; stored completions "
                             "and logs are not kept here).", "data_source_config.type")
    schema = value.get("item_schema", {})
    if not isinstance(schema, dict):
        raise EvalInputError("item_schema must be a JSON schema object.", "data_source_config.item_schema")
    if len(json.dumps(schema)) > MAX_SCHEMA_CHARS:
        raise EvalInputError(f"item_schema is longer than {MAX_SCHEMA_CHARS} characters as JSON.",
                             "data_source_config.item_schema")
    from jsonschema import SchemaError, validators

    try:
        validators.validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise EvalInputError(f"item_schema is not a valid JSON schema: {exc.message}",
                             "data_source_config.item_schema") from None
    include = value.get("include_sample_schema", False)
    if not isinstance(include, bool):
        raise EvalInputError("include_sample_schema must be true or false.", "data_source_config.include_sample_schema")
    return {"type": "custom", "item_schema": schema, "include_sample_schema": include}


@transaction.atomic
def eval_create(*, project: Project, user, name: Any, data_source_config: Any, testing_criteria: Any,
                metadata: Any = None) -> EvalDefinition:
    config = data_source_config_clean(data_source_config)
    criteria = criteria_clean(testing_criteria)
    name = _name(name)
    criteria_grader(name, criteria)  # the combination validates too (e.g. the criteria limit)
    return EvalDefinition.objects.create(project=project, name=name, data_source_config=config,
                                         testing_criteria=criteria, metadata=_metadata(metadata), created_by=user)


@transaction.atomic
def eval_update(*, definition: EvalDefinition, name: Any = None, metadata: Any = None) -> EvalDefinition:
    if name is not None:
        definition.name = _name(name)
    if metadata is not None:
        definition.metadata = _metadata(metadata)
    definition.save(update_fields=["name", "metadata"])
    return definition


@transaction.atomic
def eval_delete(*, definition: EvalDefinition) -> None:
    """The eval and all its runs (their evaluations leave the browser pages too)."""
    runs = Evaluation.objects.filter(openai_run__definition=definition)
    if runs.filter(status=EvalStatus.IN_PROGRESS).exists():
        raise EvalInputError("A run of this eval is in progress: cancel it first.", "eval_id")
    runs.delete()
    definition.delete()


def _browser_key(evaluation: Evaluation) -> str:
    spec = json.dumps(evaluation.grader_spec, sort_keys=True)
    raw = f"{evaluation.dataset_id}|{evaluation.split}|{spec}"
    return hashlib.sha256(raw.encode()).hexdigest()


@transaction.atomic
def evals_adopt(*, project: Project) -> None:
    """Give every browser evaluation of the project an eval: one per (task set, grader), so the
    base model and trained model evaluations of a run are two runs of one eval."""
    loose = list(project.evaluations.filter(openai_run__isnull=True).select_related("dataset").order_by("created_at"))
    for evaluation in loose:
        key = _browser_key(evaluation)
        definition = project.eval_definitions.filter(browser_key=key).first()
        if definition is None:
            where = evaluation.dataset.name if evaluation.dataset else "tasks"
            split = {"valid": "validation tasks", "train": "training tasks"}.get(evaluation.split, "all tasks")
            name = f"{where}, {split}: {evaluation.grader_spec.get('name') or 'grader'}"[:200]
            criteria = criteria_of_spec(evaluation.grader_spec)
            definition = EvalDefinition.objects.create(
                project=project, name=name, browser_key=key, created_by=evaluation.created_by,
                data_source_config={"type": "custom", "item_schema": {"type": "object"},
                                    "include_sample_schema": True},
                testing_criteria=criteria)
            EvalDefinition.objects.filter(pk=definition.pk).update(created_at=evaluation.created_at)
        source = {"type": "completions", "model": evaluation.model_name,
                  "source": {"type": "file_id", "id": _dataset_file_id(evaluation)},
                  "input_messages": {"type": "item_reference", "item_reference": "item.messages"},
                  "sampling_params": {k: v for k, v in (evaluation.sampling or {}).items() if k in SAMPLING_MAP}}
        try:
            with transaction.atomic():
                EvalRunLink.objects.create(evaluation=evaluation, definition=definition, data_source=source)
        except IntegrityError:  # a concurrent request adopted it first
            continue


def _dataset_file_id(evaluation: Evaluation) -> str:
    if evaluation.dataset_id is None:
        return ""
    file = evaluation.dataset.files.order_by("created_at").first()
    return file.pk if file else f"dataset-{evaluation.dataset_id}"


# --- runs --------------------------------------------------------------------------------------


def _rows_from_file(project: Project, file_id: Any) -> list[dict]:
    from webapp.datasets.models import File

    if not isinstance(file_id, str) or not file_id:
        raise EvalInputError("source.id must be a file id like 'file-...'.", "data_source.source.id")
    file = File.objects.filter(project=project, pk=file_id).first()
    if file is None:
        raise EvalInputError(f"No file {file_id[:80]!r} in this project.", "data_source.source.id")
    path = settings.STUDIO_DATA_DIR / file.path
    rows = []
    try:
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as exc:
                    raise EvalInputError(f"{file.filename}, line {n}: not JSON ({exc}).", "data_source.source.id") \
                        from None
                if not isinstance(row, dict):
                    raise EvalInputError(f"{file.filename}, line {n}: each line must be a JSON object.",
                                         "data_source.source.id")
                # an evals file (purpose "evals", checked line by line at upload) has {"item", "sample"?}
                # lines; a task file's line is the item itself, with the answer to grade (jsonl runs)
                # under its "sample" key
                if file.purpose != "evals" and "item" not in row:
                    row = {"item": {k: v for k, v in row.items() if k != "sample"},
                           **({"sample": row["sample"]} if "sample" in row else {})}
                rows.append(row)
                if len(rows) > MAX_EVAL_TASKS:
                    break
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalInputError(f"{file.filename} cannot be read: {exc}", "data_source.source.id") from None
    return rows


def _rows(project: Project, source: Any, *, with_samples: bool) -> list[dict]:
    if not isinstance(source, dict):
        raise EvalInputError("data_source.source must be {\"type\": \"file_content\", \"content\": [...]} or "
                             "{\"type\": \"file_id\", \"id\": \"file-...\"}.", "data_source.source")
    if source.get("type") == "file_content":
        content = source.get("content")
        if not isinstance(content, list):
            raise EvalInputError("source.content must be a list of {\"item\": {...}, \"sample\": {...}} entries.",
                                 "data_source.source.content")
        rows = content
    elif source.get("type") == "file_id":
        rows = _rows_from_file(project, source.get("id"))
    else:
        raise EvalInputError("data_source.source.type must be 'file_content' or 'file_id'.", "data_source.source.type")
    if not rows:
        raise EvalInputError("The data source has no items.", "data_source.source")
    if len(rows) > MAX_EVAL_TASKS:
        raise EvalInputError(f"More than {MAX_EVAL_TASKS} items: split the eval into several runs.",
                             "data_source.source")
    out = []
    for n, row in enumerate(rows):
        where = f"data_source.source.content[{n}]" if source["type"] == "file_content" else f"line {n + 1}"
        if not isinstance(row, dict) or not isinstance(row.get("item"), dict):
            raise EvalInputError(f"{where}: each entry must be {{\"item\": {{...}}, \"sample\": {{...}}}}.", where)
        sample = row.get("sample")
        if sample is not None and not isinstance(sample, dict):
            raise EvalInputError(f"{where}.sample must be an object like {{\"output_text\": \"...\"}}.",
                                 f"{where}.sample")
        out.append({"item": row["item"], **({"sample": sample} if with_samples and sample is not None else {})})
    return out


def _check_schema(definition: EvalDefinition, rows: list[dict]) -> None:
    schema = (definition.data_source_config or {}).get("item_schema")
    if not schema:
        return
    from jsonschema import validators

    validator = validators.validator_for(schema)(schema)
    for n, row in enumerate(rows):
        error = next(iter(validator.iter_errors(row["item"])), None)
        if error is not None:
            at = ".".join(str(p) for p in error.absolute_path)
            raise EvalInputError(f"item {n}{' field ' + at if at else ''} does not fit the eval's item_schema: "
                                 f"{error.message[:300]}", "data_source.source")


def _input_messages(value: Any) -> dict:
    if not isinstance(value, dict):
        raise EvalInputError("input_messages must be {\"type\": \"template\", \"template\": [...]} or "
                             "{\"type\": \"item_reference\", \"item_reference\": \"item.messages\"}.",
                             "data_source.input_messages")
    if value.get("type") == "template":
        template = value.get("template")
        if not isinstance(template, list) or not template:
            raise EvalInputError("input_messages.template must be a non-empty list of {role, content} messages.",
                                 "data_source.input_messages.template")
        if len(template) > MAX_TEMPLATE_MESSAGES:
            raise EvalInputError(f"input_messages.template holds at most {MAX_TEMPLATE_MESSAGES} messages.",
                                 "data_source.input_messages.template")
        from trainer.grading.templates import compile_template

        clean = []
        for i, m in enumerate(template):
            where = f"data_source.input_messages.template[{i}]"
            if not isinstance(m, dict) or m.get("role") not in ("system", "developer", "user", "assistant"):
                raise EvalInputError(f"{where} must be a message with role system, developer, user or assistant.",
                                     where)
            content = m.get("content")
            if isinstance(content, dict) and isinstance(content.get("text"), str):
                content = content["text"]  # {type: input_text, text}
            if not isinstance(content, str):
                raise EvalInputError(f"{where}.content must be text (with {{{{item.x}}}} placeholders).",
                                     f"{where}.content")
            try:
                compile_template(content, f"{where}.content")
            except Exception as exc:  # noqa: BLE001 - a GraderValidationError naming the place
                raise EvalInputError(f"{where}.content: {exc}", f"{where}.content") from None
            clean.append({"role": "system" if m["role"] == "developer" else m["role"], "content": content})
        return {"type": "template", "template": clean}
    if value.get("type") == "item_reference":
        ref = value.get("item_reference")
        if not isinstance(ref, str) or not re.fullmatch(r"item(\.[A-Za-z0-9_\-]+)+", ref):
            raise EvalInputError("item_reference must name the item's messages, e.g. 'item.messages'.",
                                 "data_source.input_messages.item_reference")
        return {"type": "item_reference", "item_reference": ref}
    raise EvalInputError("input_messages.type must be 'template' or 'item_reference'.",
                         "data_source.input_messages.type")


def _sampling(value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise EvalInputError("sampling_params must be an object.", "data_source.sampling_params")
    out = {}
    for key, v in value.items():
        if key not in SAMPLING_MAP:
            raise EvalInputError(f"Unknown sampling parameter {str(key)[:40]!r}; known: max_completion_tokens, "
                                 "temperature, top_p, seed.", f"data_source.sampling_params.{str(key)[:40]}")
        if v is not None:
            out[SAMPLING_MAP[key]] = v
    if isinstance(out.get("seed"), int) and not isinstance(out["seed"], bool) and not 0 <= out["seed"] < 2**63:
        raise EvalInputError("seed must be from 0 to 2^63-1.", "data_source.sampling_params.seed")
    try:
        return sampling_clean(out)
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise EvalInputError(f"sampling_params.{field}: {messages[0]}", f"data_source.sampling_params.{field}") \
            from None


def render_messages(input_messages: dict, item: dict) -> list[dict]:
    """The chat messages the model sees for one item (ValueError says what is missing)."""
    if input_messages["type"] == "item_reference":
        value: Any = {"item": item}
        for part in input_messages["item_reference"].split("."):
            if not isinstance(value, dict) or part not in value:
                raise ValueError(f"the item has no {input_messages['item_reference']}")
            value = value[part]
        if isinstance(value, str):
            return [{"role": "user", "content": value}]
        if not isinstance(value, list) or not all(isinstance(m, dict) and isinstance(m.get("content"), str)
                                                  for m in value):
            raise ValueError(f"{input_messages['item_reference']} is not a list of chat messages")
        return [{"role": str(m.get("role") or "user"), "content": m["content"]} for m in value]
    from trainer.grading.templates import Sample, compile_template

    return [{"role": m["role"], "content": compile_template(m["content"]).render(Sample(""), item)}
            for m in input_messages["template"]]


@transaction.atomic
def eval_run_create(*, definition: EvalDefinition, user, name: Any = None, data_source: Any,
                    metadata: Any = None) -> Evaluation:
    """Validate, record and queue one run of an eval (an `Evaluation` with its link)."""
    project = definition.project
    if not isinstance(data_source, dict):
        raise EvalInputError("data_source must be an object of type 'jsonl' or 'completions'.", "data_source")
    kind = data_source.get("type")
    name, metadata = _name(name), _metadata(metadata)
    sampling: dict = {}
    ref = None
    if kind == "jsonl":
        rows = _rows(project, data_source.get("source"), with_samples=True)
        stored = {"type": "jsonl", "source": data_source["source"]}
        model_name = GIVEN_ANSWERS
    elif kind == "completions":
        model = data_source.get("model")
        ref = model_resolve(project=project, name=model) if isinstance(model, str) else None
        if ref is None:
            raise EvalInputError(f"No model {str(model)[:120]!r} in this project: use one GET /v1/models lists.",
                                 "data_source.model")
        input_messages = _input_messages(data_source.get("input_messages"))
        sampling = _sampling(data_source.get("sampling_params"))
        rows = _rows(project, data_source.get("source"), with_samples=False)
        stored = {"type": "completions", "model": ref.name, "source": data_source["source"],
                  "input_messages": input_messages,
                  "sampling_params": {k: v for k, v in sampling.items() if k in SAMPLING_MAP}}
        model_name = ref.name
    else:
        raise EvalInputError("data_source.type must be 'jsonl' (graded as given) or 'completions' (a model "
                             "answers first).", "data_source.type")
    _check_schema(definition, rows)
    spec = criteria_grader(definition.name, definition.testing_criteria)
    evaluation = Evaluation.objects.create(
        project=project, name=(name or f"{definition.name or definition.pk}: {model_name}")[:200],
        purpose=EvalPurpose.MANUAL, model_name=model_name, base_model=ref.base_model if ref else "",
        run=ref.run if ref else None, checkpoint=ref.checkpoint if ref else None,
        checkpoint_step=ref.checkpoint.step if ref and ref.checkpoint else None,
        checkpoint_path=ref.checkpoint.path if ref and ref.checkpoint else "", dataset=None, split="all",
        grader_spec=spec, sampling=sampling, metadata=metadata, total_items=len(rows), created_by=user)
    EvalRunLink.objects.create(evaluation=evaluation, definition=definition, data_source=stored, rows=rows)
    from .tasks import openai_eval_run_task

    pk = evaluation.pk
    transaction.on_commit(lambda: openai_eval_run_task.apply_async(args=[pk], queue=settings.STUDIO_EVAL_QUEUE))
    return evaluation


@transaction.atomic
def eval_run_delete(*, evaluation: Evaluation) -> None:
    evaluation = Evaluation.objects.select_for_update().get(pk=evaluation.pk)
    if evaluation.status == EvalStatus.IN_PROGRESS:
        raise EvalInputError("The run is in progress: cancel it first.", "run_id")
    evaluation.delete()


# --- execution (in the worker) -----------------------------------------------------------------


def _sample_text(sample: dict | None) -> str:
    """The answer text of a given sample: output_text, the last output message, or choices[0]."""
    if not sample:
        return ""
    if isinstance(sample.get("output_text"), str):
        return sample["output_text"]
    output = sample.get("output")
    if isinstance(output, list) and output and isinstance(output[-1], dict):
        return str(output[-1].get("content") or "")
    choices = sample.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return str((choices[0].get("message") or {}).get("content") or "")
    return ""


def _passed(info: list[dict], sub_rewards: dict, reward: float, has_error: bool) -> bool:
    if has_error:
        return False
    return all(r["passed"] for r in item_scores(sub_rewards, reward, info))


def eval_run_execute(*, evaluation_id: str, flush_seconds: float = 1.0, on_item=None) -> None:
    """Answer (completions) and grade every item; ends completed, failed or canceled."""
    from trainer.hooks import clean_json

    evaluation = evaluation_claim(evaluation_id=evaluation_id, progress="Starting…")
    if evaluation is None:
        return
    link = EvalRunLink.objects.select_related("definition").get(evaluation=evaluation)
    info = criteria_info(link.definition.testing_criteria)
    EvalItem.objects.filter(evaluation=evaluation).delete()
    scope = grading_scope(project_id=evaluation.project_id)
    buffer: list[EvalItem] = []
    last_flush = [time.monotonic()]

    def flush() -> None:
        if buffer:
            EvalItem.objects.bulk_create(buffer)
            done = evaluation.items.count()
            Evaluation.objects.filter(pk=evaluation.pk).update(
                done_items=done, progress=f"Graded {done} of {evaluation.total_items} items")
            buffer.clear()
        last_flush[0] = time.monotonic()

    def stop_requested() -> bool:
        flush()
        return Evaluation.objects.filter(pk=evaluation.pk, requested_cancel=True).exists()

    def add(index: int, prompt: list, item: dict, samples: list[dict], prompt_tokens: int) -> None:
        first = samples[0]
        reward = sum(s["reward"] for s in samples) / len(samples)
        names = sorted({k for s in samples for k in s["sub_rewards"]})
        subs = {k: sum(s["sub_rewards"].get(k, 0.0) for s in samples) / len(samples) for k in names}
        has_error = any(s["has_error"] for s in samples)
        buffer.append(EvalItem(
            # the same key as the browser's evaluations for the same prompt, so the comparison
            # page pairs an API run's tasks with theirs; given answers without a prompt: the item
            evaluation=evaluation, index=index, task_key=task_key(prompt or item), prompt=clean_json(prompt),
            item=clean_json(item),
            samples=clean_json(samples), output_text=first["output_text"][:100_000], reward=reward,
            sub_rewards=clean_json(subs), errors=clean_json(first["errors"] or {}), has_error=has_error,
            passed=_passed(info, subs, reward, has_error), prompt_tokens=prompt_tokens,
            completion_tokens=sum(s["completion_tokens"] for s in samples)))
        if on_item is not None:
            on_item(index)
        if time.monotonic() - last_flush[0] >= flush_seconds:
            flush()

    try:
        sync_judges()
        if link.data_source.get("type") == "jsonl":
            _grade_given(evaluation, link.rows, scope, add, stop_requested)
        else:
            _answer_and_grade(evaluation, link, scope, add, stop_requested)
        flush()
    except Exception as exc:  # every failure becomes a readable error on the run
        log.exception("eval run %s failed", evaluation_id)
        buffer.clear()
        Evaluation.objects.filter(pk=evaluation.pk).update(
            status=EvalStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:5000], progress="",
            finished_at=timezone.now())
        return
    evaluation_summarise(evaluation=evaluation)


def _grade_given(evaluation, rows, scope, add, stop_requested) -> None:
    from trainer.grading import grade_batch

    chunk = 64
    for c0 in range(0, len(rows), chunk):
        if stop_requested():
            return
        part = rows[c0:c0 + chunk]
        samples = [{"output_text": _sample_text(r.get("sample")), **{k: v for k, v in (r.get("sample") or {}).items()
                                                                    if k == "output_json"}} for r in part]
        results = grade_batch(evaluation.grader_spec, samples, [r["item"] for r in part], scope=scope)
        for j, (row, sample, res) in enumerate(zip(part, samples, results, strict=True)):
            given = row.get("sample") or {}
            usage = given.get("usage") if isinstance(given.get("usage"), dict) else {}
            completion = usage.get("completion_tokens") if isinstance(usage.get("completion_tokens"), int) else 0
            prompt_tokens = usage.get("prompt_tokens") if isinstance(usage.get("prompt_tokens"), int) else 0
            has_error = any(bool(v) for v in (res.errors or {}).values())
            prompt = given.get("input") if isinstance(given.get("input"), list) else \
                row["item"].get("messages") if isinstance(row["item"].get("messages"), list) else []
            add(c0 + j, prompt, row["item"], [{
                "output_text": sample["output_text"], "reward": float(res.reward),
                "sub_rewards": dict(res.sub_rewards), "errors": dict(res.errors or {}), "has_error": has_error,
                "completion_tokens": max(0, completion), "truncated": given.get("finish_reason") == "length",
                "finish_reason": str(given.get("finish_reason") or "stop")}], max(0, prompt_tokens))


def _answer_and_grade(evaluation, link, scope, add, stop_requested) -> None:
    from trainer.evaluation import SamplingSettings, evaluate, load_for_inference
    from trainer.grading import run_grader

    items = [r["item"] for r in link.rows]
    input_messages = link.data_source["input_messages"]
    rows, failed = [], {}
    for i, item in enumerate(items):
        try:
            rows.append({"messages": render_messages(input_messages, item), "tools": item.get("tools"), "_i": i})
        except Exception as exc:  # noqa: BLE001 - a missing {{item.x}} fails that item, not the run
            failed[i] = str(exc)
    for i, message in failed.items():
        add(i, [], items[i], [{"output_text": "", "reward": 0.0, "sub_rewards": {}, "has_error": True,
                               "errors": {"invalid_variable_error": True, "details": message[:2000]},
                               "completion_tokens": 0, "truncated": False, "finish_reason": "error"}], 0)
    if not rows:
        return
    Evaluation.objects.filter(pk=evaluation.pk).update(progress="Loading the model…")
    model = load_for_inference(evaluation.base_model, evaluation.checkpoint_path or None)
    spec = evaluation.grader_spec

    def grade(sample, row):
        return run_grader(spec, sample, items[row["_i"]], scope=scope)

    def on_item(result) -> None:
        row = rows[result.index]
        add(row["_i"], row["messages"], items[row["_i"]], result.samples, result.prompt_tokens)

    evaluate(model, rows, grade, SamplingSettings(**evaluation.sampling), scope=scope, on_item=on_item,
             should_stop=stop_requested)


# --- reads -------------------------------------------------------------------------------------


def run_counts(evaluation: Evaluation, info: list[dict]) -> dict:
    """result_counts and per_testing_criteria_results from the stored items."""
    counts = {"total": 0, "passed": 0, "failed": 0, "errored": 0}
    per = [{"testing_criteria": c["name"], "passed": 0, "failed": 0} for c in info]
    for sub_rewards, reward, has_error, passed in evaluation.items.values_list("sub_rewards", "reward", "has_error",
                                                                               "passed"):
        counts["total"] += 1
        if has_error:
            counts["errored"] += 1
        elif passed:
            counts["passed"] += 1
        else:
            counts["failed"] += 1
        for slot, r in zip(per, item_scores(sub_rewards, reward, info), strict=True):
            slot["passed" if r["passed"] else "failed"] += 1  # each criterion on its own score
    return {"result_counts": counts, "per_testing_criteria_results": per}
