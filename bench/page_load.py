"""How fast each screen becomes usable in a real browser. Prints figures.

    .venv/bin/python bench/page_load.py                  # 5 loads per page
    .venv/bin/python bench/page_load.py --loads 10 --history 2000

What it does, all on 127.0.0.1 in a fresh temporary data folder:

1. builds the same project, dataset and run (`--history` steps of metrics and samples) as
   `bench/run_page_load.py`, then runs `collectstatic` and starts gunicorn as `make run` does;
2. opens headless Debian chromium (Playwright, no downloads) logged in as that user and
   loads each screen `--loads` times in one browser context: the first load has a cold
   cache, the others a warm one, as an expert clicking around has;
3. for each load records, from the browser's own Navigation Timing: when the page was
   interactive (DOM parsed, deferred scripts run: `domContentLoadedEventEnd`) and, on chart
   pages, when the first plotly chart was drawn (a `.main-svg` element exists).

"Interactive" is the later of the two. The target is under 1 s for every screen.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run_page_load import free_port, setup, wait_for  # noqa: E402

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

TIMING_JS = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  return {dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd,
          transferred: performance.getEntriesByType('resource').reduce((a, r) => a + r.transferSize, nav.transferSize)};
}"""


def measure(page, url: str, chart: bool) -> dict:
    page.goto(url, wait_until="load")
    if chart:
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
        drawn = page.evaluate("() => performance.now()")
    else:
        drawn = 0.0
    timing = page.evaluate(TIMING_JS)
    return {"interactive_ms": max(timing["dcl"], drawn), "dcl_ms": timing["dcl"],
            "chart_ms": drawn, "kb": timing["transferred"] / 1024}


def before_after(run, *, n_tasks: int) -> None:
    """The base and trained model's evaluations on `n_tasks` validation tasks, as the evaluation
    worker leaves them once a run has finished: the run page then shows its before/after summary."""
    from webapp.evals.models import EvalItem, EvalStatus, Evaluation
    from webapp.runs.hooks import task_key

    spec = run.grader_spec
    for purpose, model, shift in (("run_base", run.base_model, 0.0), ("run_trained", f"ft:{run.pk}", 0.3)):
        rewards = [min(1.0, ((i * 37) % 100) / 100 + shift) for i in range(n_tasks)]
        ev = Evaluation.objects.create(project=run.project, run=run, purpose=purpose, model_name=model,
                                       base_model=run.base_model, dataset=run.dataset, split="valid",
                                       grader_spec=spec, sampling={"max_completion_tokens": 128},
                                       status=EvalStatus.COMPLETED, total_items=n_tasks, done_items=n_tasks,
                                       reward_mean=sum(rewards) / n_tasks, checkpoint_step=10)
        items = []
        for i, r in enumerate(rewards):
            prompt = [{"role": "user", "content": f"Validation question {i}: where should this ticket go? " * 3}]
            answer = {"output_text": f"Route {i} to the billing team. " * 8, "reward": r,
                      "sub_rewards": {"correct": r, "polite": 1 - r}}
            items.append(EvalItem(evaluation=ev, index=i, task_key=task_key(prompt), prompt=prompt,
                                  item={"reference_answer": "billing"}, output_text=answer["output_text"],
                                  reward=r, sub_rewards=answer["sub_rewards"], samples=[answer]))
        EvalItem.objects.bulk_create(items)


def extra_objects(info: dict) -> dict:
    """A grader (for its page and the New run form), a second run (for the compare page) and the
    run's before/after evaluations (100 validation tasks: the run page leads with them)."""
    from django.db import connection

    from webapp.graders.services import grader_create
    from webapp.runs.models import Run, new_run_id

    run = Run.objects.get(pk=info["run"])
    grader = grader_create(project=run.project, name="Route", user=run.created_by, dataset=run.dataset, spec={
        "type": "string_check", "name": "route", "input": "{{sample.output_text}}",
        "reference": "{{item.reference_answer}}", "operation": "eq"})
    before_after(run, n_tasks=100)
    other = Run.objects.get(pk=run.pk)
    other.id, other.suffix, other.config = new_run_id(), "load-bench-2", {"learning_rate": 2e-5}
    other.save(force_insert=True)
    connection.close()
    return {"grader": grader.pk, "other_run": other.pk}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--history", type=int, default=500, help="steps of metrics the run already has")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="page-load-"))
    env = {**os.environ, "STUDIO_DATA_DIR": str(data_dir), "DJANGO_SETTINGS_MODULE": "webapp.settings"}
    env.pop("DATABASE_URL", None)
    info = setup(data_dir, args.history, args.history + 100)
    info.update(extra_objects(info))
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    port = free_port()
    server = subprocess.Popen([str(ROOT / ".venv/bin/gunicorn"), "webapp.wsgi", "--bind", f"127.0.0.1:{port}",
                               "--workers", "2", "--threads", "4"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(port)
        base = f"http://127.0.0.1:{port}"
        slug, run = info["slug"], info["run"]
        from django.urls import reverse

        screens = [
            ("projects", reverse("projects:list"), False),
            ("project", reverse("projects:detail", args=[slug]), False),
            ("runs list", reverse("runs:list", args=[slug]), False),
            ("run page", reverse("runs:detail", args=[slug, run]), True),
            ("samples", reverse("runs:samples", args=[slug, run]), False),
            ("new run", reverse("runs:launch", args=[slug]), False),
            ("grader", reverse("graders:detail", args=[slug, info["grader"]]), False),
            ("compare", reverse("runs:compare", args=[slug]) + f"?run={run}&run={info['other_run']}", True),
        ]
        from playwright.sync_api import sync_playwright

        rows = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.add_cookies([{"name": "sessionid", "value": info["session"], "url": base}])
            page = context.new_page()
            for name, path, chart in screens:
                loads = [measure(page, base + path, chart) for _ in range(args.loads)]
                warm = loads[1:] or loads
                rows.append((name, loads[0], statistics.median(x["interactive_ms"] for x in warm),
                             max(x["interactive_ms"] for x in warm), statistics.median(x["kb"] for x in warm)))
            browser.close()
        print(f"{'screen':<12} {'cold: interactive':>18} {'KB':>7} {'warm: median':>13} {'max':>7} {'KB':>6}")
        for name, cold, median, worst, kb in rows:
            print(f"{name:<12} {cold['interactive_ms']:>15.0f} ms {cold['kb']:>7.0f} {median:>10.0f} ms "
                  f"{worst:>4.0f} ms {kb:>6.0f}")
        slowest = max(r[2] for r in rows)
        print(f"\nslowest warm screen: {slowest:.0f} ms (target < 1000 ms)")
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
