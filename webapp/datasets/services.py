"""Writes for datasets, tasks and files. Every import is all-or-nothing."""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from webapp.projects.models import Project

from . import importers
from .importers import ImportProblems, Problems
from .models import Dataset, File, Split, Task
from .selectors import StagedCsv, staging_dir

BULK_BATCH = 2000
STAGING_MAX_AGE_S = 24 * 3600


@dataclass(frozen=True)
class Upload:
    """An uploaded file as the services need it: its name, size and a way to read it."""

    name: str
    size: int
    read: Callable[[], bytes]

    @classmethod
    def from_django(cls, upload) -> Upload:
        return cls(name=upload.name, size=upload.size, read=upload.read)


def check_upload_size(*, name: str, size: int) -> None:
    limit = settings.STUDIO_MAX_UPLOAD_BYTES
    if size > limit:
        raise ImportProblems([
            f"{name}: the file is {size / 1e6:.1f} MB; the limit is {limit / 1e6:.0f} MB "
            "(STUDIO_MAX_UPLOAD_MB)."
        ])


def read_upload_text(upload: Upload) -> str:
    """Size first (before reading anything), then bytes, then strict UTF-8."""
    check_upload_size(name=upload.name, size=upload.size)
    return importers.decode_upload(upload.read(), source=upload.name)


def _search_text(row: dict) -> str:
    fields = importers.reference_fields(row)
    return (importers.prompt_text(row) + "\n" + json.dumps(fields, ensure_ascii=False)).lower()


def _task(dataset: Dataset, row: dict, split: str, position: int) -> Task:
    return Task(dataset=dataset, split=split, position=position, data=row, search_text=_search_text(row))


def _ensure_editable(dataset: Dataset) -> None:
    if dataset.is_locked:
        raise ValidationError(
            f"This dataset can no longer be edited: {dataset.locked_reason}. "
            "Use “Duplicate as new version” to get an editable copy."
        )


@transaction.atomic
def dataset_create_from_rows(
    *, project: Project, name: str, user, train_rows: list[dict], valid_rows: list[dict],
    source: str = "", description: str = "",
) -> Dataset:
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Give the dataset a name."})
    dataset = Dataset.objects.create(
        project=project, name=name[:200], description=description, source=source[:500], created_by=user
    )
    tasks = [_task(dataset, r, Split.TRAIN, i) for i, r in enumerate(train_rows)]
    tasks += [_task(dataset, r, Split.VALID, len(train_rows) + i) for i, r in enumerate(valid_rows)]
    Task.objects.bulk_create(tasks, batch_size=BULK_BATCH)
    return dataset


def split_rows(rows: list[dict], *, holdout_percent: int, seed: int) -> tuple[list[dict], list[dict]]:
    held = importers.holdout_split(len(rows), percent=holdout_percent, seed=seed)
    train = [r for i, r in enumerate(rows) if i not in held]
    valid = [r for i, r in enumerate(rows) if i in held]
    return train, valid


def parse_task_file(upload: Upload) -> list[dict]:
    """Rows of a JSONL task file, validated. Raises ImportProblems naming the file."""
    return importers.parse_jsonl(read_upload_text(upload), source=upload.name)


def dataset_import_jsonl(
    *, project: Project, name: str, user, train: Upload, valid: Upload | None = None,
    holdout_percent: int = 0, seed: int = 0,
) -> Dataset:
    """Validate every file completely first; only a fully valid upload is saved."""
    problems = Problems()
    parsed: dict[str, list[dict]] = {}
    for label, upload in (("train", train), ("valid", valid)):
        if upload is None:
            continue
        try:
            parsed[label] = parse_task_file(upload)
        except ImportProblems as exc:
            problems.merge(Problems(shown=exc.problems, total=exc.total))
    problems.raise_if_any()
    if valid is not None:
        train_rows, valid_rows = parsed["train"], parsed["valid"]
    else:
        train_rows, valid_rows = split_rows(parsed["train"], holdout_percent=holdout_percent, seed=seed)
    source = train.name + (f" + {valid.name}" if valid else "")
    return dataset_create_from_rows(
        project=project, name=name, user=user, train_rows=train_rows, valid_rows=valid_rows, source=source
    )


def dataset_import_csv(
    *, project: Project, name: str, user, text: str, filename: str, mapping: importers.CsvMapping,
    holdout_percent: int = 0, seed: int = 0,
) -> Dataset:
    table = importers.read_csv(text, source=filename)
    rows = importers.csv_to_rows(table, mapping, source=filename)
    train_rows, valid_rows = split_rows(rows, holdout_percent=holdout_percent, seed=seed)
    return dataset_create_from_rows(
        project=project, name=name, user=user, train_rows=train_rows, valid_rows=valid_rows,
        source=filename,
    )


# --- CSV: staged on disk while the user maps its columns ------------------------------------


def _staging_prune() -> None:
    cutoff = time.time() - STAGING_MAX_AGE_S
    for f in staging_dir().glob("*"):
        if f.stat().st_mtime < cutoff:
            f.unlink(missing_ok=True)


def csv_stage(
    *, project: Project, user, name: str, train: Upload, valid: Upload | None = None,
    holdout_percent: int = 0, seed: int = 0,
) -> str:
    """Check an uploaded CSV's structure, keep it on disk for a day, and return the token
    of the column-mapping step (`dataset_import_staged_csv` finishes the import)."""
    texts = {"train": read_upload_text(train)}
    header = importers.read_csv(texts["train"], source=train.name).header
    if valid is not None:
        texts["valid"] = read_upload_text(valid)
        if importers.read_csv(texts["valid"], source=valid.name).header != header:
            raise ImportProblems([f"{valid.name}: its columns differ from {train.name}'s; both need the same header."])
    _staging_prune()
    token = secrets.token_urlsafe(16)
    folder = staging_dir()
    for split, text in texts.items():
        _write_atomically(folder / f"{token}-{split}.csv", text.encode("utf-8"))
    meta = {"project": project.pk, "user": user.pk, "name": name, "train": train.name,
            "valid": valid.name if valid else None, "holdout_percent": holdout_percent, "seed": seed}
    _write_atomically(folder / f"{token}.json", json.dumps(meta).encode())  # last: the upload is complete
    return token


def _staging_discard(token: str) -> None:
    for f in staging_dir().glob(f"{token}*"):
        f.unlink(missing_ok=True)


def dataset_import_staged_csv(*, staged: StagedCsv, mapping: importers.CsvMapping, user) -> Dataset:
    """Import a staged CSV (and its validation file) with the chosen column mapping; the staged
    files are removed once the dataset exists. Raises ImportProblems naming file and row."""
    if staged.valid is None:
        dataset = dataset_import_csv(
            project=staged.project, name=staged.name, user=user, text=staged.texts["train"],
            filename=staged.train, mapping=mapping, holdout_percent=staged.holdout_percent, seed=staged.seed,
        )
    else:
        problems, rows = Problems(), {}
        for split, filename in (("train", staged.train), ("valid", staged.valid)):
            try:
                rows[split] = importers.csv_to_rows(importers.read_csv(staged.texts[split], source=filename),
                                                    mapping, source=filename)
            except ImportProblems as exc:
                problems.merge(Problems(shown=exc.problems, total=exc.total))
        problems.raise_if_any()
        dataset = dataset_create_from_rows(
            project=staged.project, name=staged.name, user=user, train_rows=rows["train"],
            valid_rows=rows["valid"], source=f"{staged.train} + {staged.valid}",
        )
    _staging_discard(staged.token)
    return dataset


@transaction.atomic
def dataset_duplicate(*, dataset: Dataset, user) -> Dataset:
    """An editable copy as the next version of the same name."""
    latest = dataset.project.datasets.filter(name=dataset.name).order_by("-version").first()
    copy = Dataset.objects.create(
        project=dataset.project, name=dataset.name, description=dataset.description,
        version=latest.version + 1, parent=dataset, source=f"duplicate of v{dataset.version}",
        created_by=user,
    )
    Task.objects.bulk_create(
        (Task(dataset=copy, split=t.split, position=t.position, data=t.data, search_text=t.search_text)
         for t in dataset.tasks.order_by("position").iterator(chunk_size=BULK_BATCH)),
        batch_size=BULK_BATCH,
    )
    return copy


@transaction.atomic
def dataset_lock(*, dataset: Dataset, reason: str) -> Dataset:
    """Called when a run uses the dataset: its tasks are then frozen."""
    if not dataset.locked_reason:
        dataset.locked_reason = reason[:300]
        dataset.save(update_fields=["locked_reason"])
    return dataset


@transaction.atomic
def dataset_delete(*, dataset: Dataset) -> None:
    if dataset.is_locked:
        raise ValidationError(f"This dataset cannot be deleted: {dataset.locked_reason}.")
    dataset.delete()


def task_row_from_form(*, system: str, prompt: str, reference_answer: str, extra: dict,
                       base: dict | None = None) -> dict:
    """Build an RFT row from the task form, keeping earlier turns of a multi-turn base row."""
    earlier = [m for m in (base or {}).get("messages", [])[:-1] if m.get("role") != "system"]
    messages = ([{"role": "system", "content": system.strip()}] if system.strip() else [])
    messages += earlier + [{"role": "user", "content": prompt.strip()}]
    row = {"messages": messages}
    if base and "tools" in base:
        row["tools"] = base["tools"]
    if reference_answer.strip():
        row["reference_answer"] = reference_answer.strip()
    for key, value in extra.items():
        if key not in ("messages", "tools", "reference_answer"):
            row[key] = value
    return row


def _validate_row(row: dict) -> None:
    problems = importers.row_problems(row, "task")
    if problems:
        raise ValidationError(problems)


@transaction.atomic
def task_create(*, dataset: Dataset, row: dict, split: str) -> Task:
    _ensure_editable(dataset)
    _validate_row(row)
    last = dataset.tasks.order_by("-position").values_list("position", flat=True).first()
    task = _task(dataset, row, split, 0 if last is None else last + 1)
    task.save()
    return task


@transaction.atomic
def task_update(*, task: Task, row: dict, split: str) -> Task:
    _ensure_editable(task.dataset)
    _validate_row(row)
    task.data, task.split, task.search_text = row, split, _search_text(row)
    task.save(update_fields=["data", "split", "search_text", "updated_at"])
    return task


@transaction.atomic
def task_delete(*, task: Task) -> None:
    _ensure_editable(task.dataset)
    task.delete()


# --- OpenAI files -------------------------------------------------------------------------


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def file_create(*, project: Project, user, filename: str, data: bytes, purpose: str = "fine-tune") -> File:
    """Validate a JSONL task file into a new dataset (all rows in train) and store its bytes.

    An evals file (purpose "evals": `{"item", "sample"?}` lines for OpenAI's Evals API) is
    validated line by line and stored as it is, without a dataset: eval runs read it."""
    check_upload_size(name=filename, size=len(data))
    text = importers.decode_upload(data, source=filename)
    if purpose == "evals":
        importers.parse_eval_jsonl(text, source=filename)
        rows = None
    else:
        rows = importers.parse_jsonl(text, source=filename)
    file = File(project=project, filename=filename[:255], purpose=purpose, bytes=len(data), created_by=user)
    relative = Path("files") / str(project.pk) / f"{file.id}.jsonl"
    full = settings.STUDIO_DATA_DIR / relative
    _write_atomically(full, data)
    try:
        with transaction.atomic():
            if rows is not None:
                file.dataset = dataset_create_from_rows(
                    project=project, name=filename, user=user, train_rows=rows, valid_rows=[],
                    source=f"API upload {file.id}",
                )
            file.path = str(relative)
            file.save(force_insert=True)
    except BaseException:
        full.unlink(missing_ok=True)  # nothing half-written is left behind
        raise
    return file


def file_path(file: File) -> Path:
    return settings.STUDIO_DATA_DIR / file.path


@transaction.atomic
def file_delete(*, file: File) -> None:
    dataset = file.dataset
    path = file_path(file)
    file.delete()
    if dataset is not None and not dataset.is_locked and not dataset.files.exists():
        dataset.delete()
    transaction.on_commit(lambda: path.unlink(missing_ok=True))
