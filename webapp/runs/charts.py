"""Metric series for the run page's charts, the runs list's sparklines and the compare page.

All rows stay in the database; what goes to the browser is downsampled: a series longer
than `max_points` becomes `max_points` bucket means (x = mean step of the bucket), so a run
of 20,000 steps draws as fast as one of 1,000. Incremental polls (`after=<step>`) send only
the new steps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from django.utils.html import escape

from .models import Run, RunMetric

MAX_POINTS = 1000
BAND_KEYS = (("train/reward_mean", "train/reward_std", "train/reward"),
             ("valid/reward_mean", "valid/reward_std", "valid/reward"))
# What the run page draws (static/js/runs.js); other keys stay in the database and the API.
CHART_KEYS = frozenset({
    "train/reward_mean", "valid/reward_mean", "train/kl", "train/entropy", "train/completion_tokens_mean",
    "train/completion_tokens_max", "time/sampling", "time/grading", "time/training",
})
CHART_PREFIXES = ("train/grader/",)


def is_chart_key(key: str) -> bool:
    return key in CHART_KEYS or key.startswith(CHART_PREFIXES)


def _short(value: float) -> float:
    """6 significant digits: plenty for a chart, and a third of the JSON of a full float."""
    return float(f"{value:.6g}")


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def reward_band(data: dict, mean_key: str, std_key: str) -> tuple[float, float] | None:
    """The shaded band around a reward curve, inside [0, 1] where rewards live.

    Training: mean ± one standard deviation of the step's answers (how much they differ).
    Validation: the 95 % range of the mean itself (± 1.96 std / √n over its `n` tasks): the
    spread of single tasks (often 0 or 1) would cover the whole chart and say nothing about
    whether the score moved.
    """
    mean, std = _number(data.get(mean_key)), _number(data.get(std_key))
    if mean is None or std is None:
        return None
    if mean_key.startswith("valid/"):
        n = _number(data.get("valid/n_samples"))
        if not n or n < 2:
            return None
        std = 1.96 * std / math.sqrt(n)
    return max(0.0, mean - std), min(1.0, mean + std)


def series_from_rows(rows: Iterable[tuple[int, dict]], wanted=None) -> dict[str, dict[str, list]]:
    """{key: {"x": steps, "y": values}} for every numeric key (or those `wanted(key)` accepts);
    nulls are left out, not zeroed. Adds `<split>/reward_lo` / `_hi`, the band (`reward_band`).
    """
    out: dict[str, dict[str, list]] = {}

    def put(key, step, value):
        s = out.get(key)
        if s is None:
            s = out[key] = {"x": [], "y": []}
        s["x"].append(step)
        s["y"].append(value)

    for step, data in rows:
        for key, raw in (data or {}).items():
            if wanted is not None and not wanted(key):
                continue
            value = _number(raw)
            if value is not None and "/" in key:
                put(key, step, value)
        for mean_key, std_key, prefix in BAND_KEYS:
            band = reward_band(data or {}, mean_key, std_key)
            if band is not None:
                put(f"{prefix}_lo", step, band[0])
                put(f"{prefix}_hi", step, band[1])
    return out


def downsample(xs: Sequence[float], ys: Sequence[float], max_points: int = MAX_POINTS) -> tuple[list, list]:
    """Bucket means: at most `max_points` points, each the mean of consecutive points."""
    n = len(xs)
    if n <= max_points:
        return list(xs), list(ys)
    out_x, out_y = [], []
    for b in range(max_points):
        lo, hi = b * n // max_points, (b + 1) * n // max_points
        size = hi - lo
        out_x.append(round(sum(xs[lo:hi]) / size, 3))
        out_y.append(sum(ys[lo:hi]) / size)
    return out_x, out_y


def run_series(run: Run, *, after: int | None = None, wanted=is_chart_key,
               max_points: int = MAX_POINTS) -> tuple[dict[str, dict[str, list]], int]:
    """(series, last step) for steps after `after` (all when None), downsampled for display.

    Only the keys `wanted(key)` accepts (by default what the run page draws); None: all.
    """
    qs = RunMetric.objects.filter(run=run).order_by("step")
    if after is not None:
        qs = qs.filter(step__gt=after)
    last = 0
    rows = []
    for step, data in qs.values_list("step", "data").iterator(chunk_size=2000):
        rows.append((step, data))
        last = step
    if after is None:
        # the run page's other panels (findings) read the same rows: read them once per request
        run._metric_rows = rows
    series = series_from_rows(rows, wanted)
    for s in series.values():
        xs, ys = downsample(s["x"], s["y"], max_points)
        s["x"], s["y"] = xs, [_short(y) for y in ys]
    return series, last


def reward_curves(runs: Sequence[Run], *, max_points: int = MAX_POINTS) -> dict[str, dict]:
    """Train and valid reward mean per run, for sparklines and the compare page."""
    curves: dict[str, dict] = {r.pk: {"train": ([], []), "valid": ([], [])} for r in runs}
    qs = (RunMetric.objects.filter(run__in=[r.pk for r in runs]).order_by("run_id", "step")
          .values_list("run_id", "step", "data__train/reward_mean", "data__valid/reward_mean"))
    for run_id, step, train, valid in qs.iterator(chunk_size=5000):
        for split, value in (("train", _number(train)), ("valid", _number(valid))):
            if value is not None:
                curves[run_id][split][0].append(step)
                curves[run_id][split][1].append(value)
    return {pk: _downsampled(c, max_points) for pk, c in curves.items()}


def _downsampled(curve: dict, max_points: int) -> dict:
    return {split: dict(zip(("x", "y"), downsample(*xy, max_points), strict=True)) for split, xy in curve.items()}


def run_reward_curve(run: Run, *, max_points: int = MAX_POINTS) -> dict:
    """`reward_curves([run])[run.pk]`, from the rows `run_series` already read this request
    (the run page) when there are any, so the page reads the run's metrics once."""
    rows = getattr(run, "_metric_rows", None)
    if rows is None:
        return reward_curves([run], max_points=max_points)[run.pk]
    curve: dict = {"train": ([], []), "valid": ([], [])}
    for step, data in rows:
        for split in ("train", "valid"):
            value = _number((data or {}).get(f"{split}/reward_mean"))
            if value is not None:
                curve[split][0].append(step)
                curve[split][1].append(value)
    return _downsampled(curve, max_points)


def reward_summary(curve: dict) -> dict:
    """What a run's reward did, for the run page's headline and the runs list: the latest
    and best validation scores, and the training trend (mean of the first few steps against
    the last few), never one noisy step. `curve` is one run of `reward_curves`."""
    train_y, valid_x, valid_y = curve["train"]["y"], curve["valid"]["x"], curve["valid"]["y"]
    out: dict = {"valid": None, "valid_first": None, "valid_best": None, "trend": None}
    if valid_y:
        best = max(range(len(valid_y)), key=lambda i: valid_y[i])
        out.update(valid=valid_y[-1], valid_step=valid_x[-1], valid_first=valid_y[0], valid_checks=len(valid_y),
                   valid_best=valid_y[best], valid_best_step=valid_x[best])
    if len(train_y) >= 2:
        k = max(1, min(10, len(train_y) // 4))
        early, late = sum(train_y[:k]) / k, sum(train_y[-k:]) / k
        out["trend"] = {"early": early, "late": late, "change": late - early, "steps": k}
    return out


def sparkline_svg(xs: Sequence[float], ys: Sequence[float], *, width: int = 120, height: int = 28,
                  label: str = "") -> str:
    """A tiny inline SVG polyline (no JS). Numbers only go into attributes; the label is escaped."""
    title = f"<title>{escape(label)}</title>" if label else ""
    if len(xs) < 2:
        return (f'<svg class="sparkline empty" width="{width}" height="{height}" role="img" '
                f'aria-label="no data yet">{title}</svg>')
    xs, ys = downsample(xs, ys, width)
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(min(ys), 0.0), max(max(ys), 1.0)  # rewards live in [0, 1]; widen if not
    pad = 2
    sx = (width - 2 * pad) / ((x1 - x0) or 1)
    sy = (height - 2 * pad) / ((y1 - y0) or 1)
    points = " ".join(f"{pad + (x - x0) * sx:.1f},{height - pad - (y - y0) * sy:.1f}" for x, y in zip(xs, ys, strict=True))
    return (f'<svg class="sparkline" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'role="img" aria-label="{escape(label)}">{title}'
            f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{points}"/></svg>')


def flatten_config(value, prefix: str = "") -> dict[str, str]:
    """{"lora.rank": "8", ...}: nested dicts become dotted keys, values shown as JSON-ish text."""
    import json

    if isinstance(value, dict):
        out: dict[str, str] = {}
        for k, v in value.items():
            out.update(flatten_config(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: json.dumps(value, ensure_ascii=False, sort_keys=True)}


def config_diff(configs: Sequence[dict]) -> list[dict]:
    """Rows {key, values, differs} over the union of keys; a key missing in a run shows “—”."""
    flat = [flatten_config(c) for c in configs]
    keys = sorted(set().union(*flat)) if flat else []
    rows = []
    for key in keys:
        values = [f.get(key, "—") for f in flat]
        rows.append({"key": key, "values": values, "differs": len(set(values)) > 1})
    return rows
