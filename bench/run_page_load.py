"""Readers vs. a writing run on the embedded defaults (SQLite in WAL mode). Prints figures.

    .venv/bin/python bench/run_page_load.py                 # 20 clients, 30 s
    .venv/bin/python bench/run_page_load.py --clients 40 --seconds 60 --history 5000
    .venv/bin/python bench/run_page_load.py --think-ms 1000  # clients pause like polling browsers

What it does, all on 127.0.0.1 in a fresh temporary data folder:

1. migrates a new SQLite database and creates a user, a project, a dataset and a run that
   already has `--history` steps of metrics and samples (the charts' downsampling path);
2. starts the web app with gunicorn as `make run` does (Procfile: 2 workers x 4 threads);
3. starts a writer process that feeds the real `webapp.runs.hooks.DbHooks` synthetic steps
   at `--steps-per-s` (batched flushes every 2 s, samples, events, a checkpoint every 10
   steps) with the real heartbeat thread, exactly as a training worker writes;
4. runs `--clients` threads that each loop over what a browser on the run page and an API
   script fetch: the run page, metrics.json (incremental, as runs.js polls), the live
   partial (htmx poll), the samples page, and /v1/fine_tuning/jobs/<id> (skipped if the
   API answers 404).

An error is any 5xx, a failed connection, or a body mentioning "database is locked".
Also reported: steps the writer managed to write (it must keep up) and its slowest flush.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CRITERIA = ("correct", "polite", "format")


def django_setup(data_dir: Path) -> None:
    os.environ["STUDIO_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    os.environ.pop("DATABASE_URL", None)  # the embedded default: SQLite
    import django

    django.setup()


def synthetic_step(step: int, total: int, rng: random.Random, eval_every: int = 10) -> tuple[dict, list[dict]]:
    r = min(0.95, 0.2 + 0.7 * step / total + rng.uniform(-0.05, 0.05))
    metrics = {
        "step": step, "total_steps": total, "trained_tokens": step * 4096,
        "train/reward_mean": r, "train/reward_std": 0.15, "train/kl": 0.0005 * step, "train/entropy": 1.2,
        "train/loss": 0.01, "train/clip_ratio": 0.0, "train/completion_tokens_mean": 60.0,
        "train/completion_tokens_max": 128, "train/truncated_frac": 0.02,
        **{f"train/grader/{c}_mean": min(1.0, r + i * 0.03) for i, c in enumerate(CRITERIA)},
        "time/sampling": 0.6, "time/grading": 0.1, "time/training": 0.3, "time/step": 1.0,
        "throughput/tokens_per_s": 4000.0,
    }
    split_steps = [("train", 8)]
    if step % eval_every == 0:
        metrics.update({"valid/reward_mean": r - 0.05, "valid/reward_std": 0.2,
                        **{f"valid/grader/{c}_mean": r for c in CRITERIA}})
        split_steps.append(("valid", 4))
    samples = []
    for split, n in split_steps:
        for i in range(n):
            sub = {c: round(rng.random(), 3) for c in CRITERIA}
            samples.append({
                "split": split, "prompt": [{"role": "user", "content": f"Ticket {i}: where does it go?"}],
                "item": {"reference_answer": "billing", "id": f"t{i}"},
                "output_text": "Route to billing. " * rng.randint(1, 40), "reward": sum(sub.values()) / 3,
                "sub_rewards": sub, "errors": {}, "completion_tokens": 60, "truncated": False,
            })
    return metrics, samples


# --- setup (in this process) ------------------------------------------------------------------


def setup(data_dir: Path, history: int, total: int) -> dict:
    django_setup(data_dir)
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command

    from webapp.accounts.services import api_key_create
    from webapp.datasets.services import Upload, dataset_import_jsonl
    from webapp.projects.services import project_create
    from webapp.runs.hooks import DbHooks
    from webapp.runs.models import Run, RunStatus

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("bench", password="bench-pw")
    project = project_create(name="Load bench", owner=user)
    rows = [{"messages": [{"role": "user", "content": f"Ticket {i}"}], "reference_answer": "billing"}
            for i in range(50)]
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    dataset = dataset_import_jsonl(project=project, name="Tickets", user=user,
                                   train=Upload("t.jsonl", len(data), lambda: data), holdout_percent=20)
    run = Run.objects.create(project=project, dataset=dataset, created_by=user, base_model="bench-model",
                             grader_spec={"type": "multi", "name": "rubric"}, status=RunStatus.RUNNING,
                             total_steps=total, config={"learning_rate": 1e-5}, suffix="load-bench")
    hooks = DbHooks(run, flush_seconds=1e9)
    rng = random.Random(0)
    for step in range(1, history + 1):
        metrics, samples = synthetic_step(step, total, rng)
        hooks.on_step(step, metrics, samples[:2])  # history: fewer samples, it is only setup
        if step % 500 == 0:
            hooks.flush()
    hooks.flush()

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    _, key = api_key_create(user=user, name="bench")
    from django.db import connection

    connection.close()
    return {"run": run.pk, "slug": project.slug, "session": session.session_key, "api_key": key}


# --- the writer (a separate process, like a training worker) ----------------------------------


def writer(data_dir: Path, run_id: str, start: int, total: int, steps_per_s: float, seconds: float) -> None:
    django_setup(data_dir)
    from django.conf import settings

    from webapp.runs.hooks import DbHooks, Heartbeat
    from webapp.runs.models import Run

    run = Run.objects.get(pk=run_id)
    hooks = DbHooks(run)  # the real batching: a flush every 2 s
    rng = random.Random(1)
    slowest = 0.0
    written = 0
    t_end = time.monotonic() + seconds
    step = start
    with Heartbeat(run_id, settings.STUDIO_HEARTBEAT_SECONDS):
        while time.monotonic() < t_end and step < total:
            t0 = time.monotonic()
            step += 1
            metrics, samples = synthetic_step(step, total, rng)
            hooks.on_step(step, metrics, samples)
            if step % 10 == 0:
                hooks.on_event("info", f"Evaluated at step {step}.")
                folder = data_dir / "runs" / run_id / "checkpoints" / f"step-{step:06d}"
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "model.safetensors").write_bytes(b"\0" * 4096)
                hooks.on_checkpoint(step, str(folder), metrics)
            hooks.should_stop()
            slowest = max(slowest, time.monotonic() - t0)
            written += 1
            time.sleep(max(0.0, 1.0 / steps_per_s - (time.monotonic() - t0)))
        hooks.flush()
    print(json.dumps({"written": written, "last_step": step, "slowest_step_s": slowest}), flush=True)


# --- the readers ------------------------------------------------------------------------------


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency = defaultdict(list)
        self.errors = defaultdict(int)
        self.samples_of_errors: list[str] = []

    def add(self, name: str, seconds: float, error: str | None):
        with self.lock:
            self.latency[name].append(seconds)
            if error:
                self.errors[name] += 1
                if len(self.samples_of_errors) < 5:
                    self.samples_of_errors.append(f"{name}: {error}")


def reader(port: int, info: dict, t_end: float, stats: Stats, use_api: bool, client_no: int, think: float):
    base = f"/p/{info['slug']}/runs/{info['run']}"
    cookie = {"Cookie": f"sessionid={info['session']}"}
    api = {"Authorization": f"Bearer {info['api_key']}", "OpenAI-Project": info["slug"]}
    last_step = None
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    i = client_no
    while time.monotonic() < t_end:
        i += 1
        kind = ["page", "metrics", "live", "metrics", "samples", "api"][i % 6]
        if kind == "api" and not use_api:
            kind = "metrics"
        if kind == "page":
            path, headers = base + "/", cookie
        elif kind == "metrics":
            path = base + "/metrics.json" + (f"?after={last_step}" if last_step is not None else "")
            headers = cookie
        elif kind == "live":
            path, headers = base + "/live/", {**cookie, "HX-Request": "true"}
        elif kind == "samples":
            path = base + "/samples/" + random.choice(["", "?order=worst", "?split=valid", "?criterion=polite&max_score=0.5"])
            headers = cookie
        else:
            path, headers = f"/v1/fine_tuning/jobs/{info['run']}", api
        t0 = time.monotonic()
        error = None
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            if response.status >= 500 or (response.status != 200 and kind != "api"):
                error = f"HTTP {response.status} {path}"
            if b"database is locked" in body:
                error = f"database is locked {path}"
            if kind == "metrics" and response.status == 200:
                last_step = json.loads(body)["last_step"]
                if random.random() < 0.05:
                    last_step = None  # now and then a fresh page load: the full, downsampled series
        except (OSError, http.client.HTTPException) as exc:
            error = f"{type(exc).__name__}: {exc}"
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        stats.add(kind, time.monotonic() - t0, error)
        if think:
            time.sleep(random.uniform(0.5, 1.5) * think)
    conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, timeout: float = 60) -> None:
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("gunicorn did not come up")


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--history", type=int, default=2000, help="steps already written before the bench")
    parser.add_argument("--steps-per-s", type=float, default=1.0)
    parser.add_argument("--think-ms", type=float, default=0,
                        help="pause between a client's requests (0: back to back, the worst case)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--writer", nargs=4, metavar=("DATA_DIR", "RUN", "START", "TOTAL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.writer:
        data_dir, run_id, start, total = args.writer
        writer(Path(data_dir), run_id, int(start), int(total), args.steps_per_s, args.seconds)
        return

    data_dir = Path(tempfile.mkdtemp(prefix="rft-bench-"))
    total = args.history + int(args.seconds * args.steps_per_s) + 100
    try:
        t0 = time.monotonic()
        info = setup(data_dir, args.history, total)
        print(f"setup: run {info['run']} with {args.history} steps of history in {time.monotonic() - t0:.1f} s")
        port = free_port()
        env = dict(os.environ, STUDIO_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="webapp.settings")
        env.pop("DATABASE_URL", None)
        web = subprocess.Popen(
            [str(ROOT / ".venv/bin/gunicorn"), "webapp.wsgi", "--bind", f"127.0.0.1:{port}",
             "--workers", str(args.workers), "--threads", str(args.threads), "--timeout", "120"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(data_dir / "gunicorn.log", "w"))
        try:
            wait_for(port)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", f"/v1/fine_tuning/jobs/{info['run']}",
                         headers={"Authorization": f"Bearer {info['api_key']}", "OpenAI-Project": info["slug"]})
            api_status = conn.getresponse().status
            use_api = api_status == 200
            print(f"API /v1/fine_tuning/jobs/<id>: {'included' if use_api else f'skipped (HTTP {api_status})'}")
            writer_proc = subprocess.Popen(
                [sys.executable, __file__, "--seconds", str(args.seconds), "--steps-per-s", str(args.steps_per_s),
                 "--writer", str(data_dir), info["run"], str(args.history), str(total)],
                cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
            stats = Stats()
            t_start = time.monotonic()
            t_end = t_start + args.seconds
            threads = [threading.Thread(target=reader, args=(port, info, t_end, stats, use_api, n, args.think_ms / 1000), daemon=True)
                       for n in range(args.clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - t_start
            out, _ = writer_proc.communicate(timeout=120)
            written = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
        finally:
            web.terminate()
            web.wait(timeout=30)
        locked_in_log = (data_dir / "gunicorn.log").read_text(errors="replace").count("database is locked")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)

    every = [x for v in stats.latency.values() for x in v]
    n_errors = sum(stats.errors.values())
    think = f", {args.think_ms:g} ms think time" if args.think_ms else ", back to back"
    print(f"\n{args.clients} clients{think}, {elapsed:.1f} s, gunicorn {args.workers} workers x {args.threads} threads, "
          f"SQLite WAL, {args.history} steps of history")
    print(f"{'endpoint':<10} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'errors':>7}")
    for name in sorted(stats.latency):
        v = stats.latency[name]
        print(f"{name:<10} {len(v):>9} {len(v) / elapsed:>8.1f} {1000 * statistics.median(v):>8.1f} "
              f"{1000 * pct(v, 0.95):>8.1f} {1000 * max(v):>8.1f} {stats.errors[name]:>7}")
    print(f"{'all':<10} {len(every):>9} {len(every) / elapsed:>8.1f} {1000 * statistics.median(every):>8.1f} "
          f"{1000 * pct(every, 0.95):>8.1f} {1000 * max(every):>8.1f} {n_errors:>7}")
    print(f"writer: {written.get('written', '?')} steps written in {args.seconds:.0f} s "
          f"(target {args.steps_per_s:g}/s), slowest step incl. flush {written.get('slowest_step_s', float('nan')):.3f} s")
    print(f"'database is locked' in the server log: {locked_in_log}")
    for e in stats.samples_of_errors:
        print("  error:", e)
    if n_errors or locked_in_log:
        sys.exit(1)


if __name__ == "__main__":
    main()
