"""Evals API speed on given answers (a `jsonl` run, no model): grading throughput and the
time of the API calls a script makes. Prints figures; asserts nothing.

    .venv/bin/python bench/openai_evals_speed.py                 # 2000 items
    .venv/bin/python bench/openai_evals_speed.py --items 5000

In a fresh temporary data folder and SQLite database: an eval with a `string_check` and a
`python` criterion; `runs.create` with the items inline; the worker's `eval_run_execute`
(grading in the python sandbox, items stored as they are graded); then `runs.retrieve`
(counts computed from the items) and paging through every output item 100 at a time,
through Django's test client (the whole request path: auth, JSON, the views).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run_page_load import django_setup  # noqa: E402

CRITERIA = [
    {"type": "string_check", "name": "exact", "operation": "eq", "input": "{{sample.output_text}}",
     "reference": "{{item.answer}}"},
    {"type": "python", "name": "short", "pass_threshold": 0.5,
     "source": "def grade(sample, item):\n    return 1.0 if len(sample['output_text']) < 12 else 0.0\n"},
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=2000)
    args = parser.parse_args()
    django_setup(Path(tempfile.mkdtemp(prefix="evals-bench-")))
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from webapp.accounts.services import api_key_create
    from webapp.evals.openai_evals import eval_run_execute
    from webapp.projects.services import project_create

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("bench", password="bench-pw")
    project = project_create(name="Evals bench", owner=user)
    client = Client(SERVER_NAME="127.0.0.1", headers={"Authorization": f"Bearer {api_key_create(user=user, name='b')[1]}",
                             "OpenAI-Project": project.slug})
    labels = ["billing", "shipping", "technical", "account"]
    content = [{"item": {"answer": labels[i % 4], "ticket": f"Ticket {i}"},
                "sample": {"output_text": labels[(i * 7) % 4] if i % 3 else "a much longer answer"}}
               for i in range(args.items)]

    def post(url, body):
        response = client.post(url, json.dumps(body), content_type="application/json")
        assert response.status_code == 200, response.content[:300]
        return response.json()

    ev = post("/v1/evals", {"name": "bench", "data_source_config": {"type": "custom", "item_schema": {
        "type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}},
        "testing_criteria": CRITERIA})
    t = time.perf_counter()
    run = post(f"/v1/evals/{ev['id']}/runs", {"data_source": {"type": "jsonl", "source": {
        "type": "file_content", "content": content}}})
    create_s = time.perf_counter() - t
    t = time.perf_counter()
    eval_run_execute(evaluation_id=run["id"])
    grade_s = time.perf_counter() - t
    t = time.perf_counter()
    done = client.get(f"/v1/evals/{ev['id']}/runs/{run['id']}").json()
    retrieve_s = time.perf_counter() - t
    t, after, pages, seen = time.perf_counter(), None, 0, 0
    while True:
        page = client.get(f"/v1/evals/{ev['id']}/runs/{run['id']}/output_items",
                          {"limit": 100, **({"after": after} if after else {})}).json()
        pages, seen, after = pages + 1, seen + len(page["data"]), page["last_id"]
        if not page["has_more"]:
            break
    list_s = time.perf_counter() - t
    print(f"items: {args.items}  status: {done['status']}  result_counts: {done['result_counts']}")
    print(f"runs.create (validate {args.items} items against the item schema, store, queue): {create_s * 1000:.0f} ms")
    print(f"grading (2 criteria, python in the sandbox): {grade_s:.2f} s = {args.items / grade_s:.0f} items/s")
    print(f"runs.retrieve (counts over every item): {retrieve_s * 1000:.0f} ms")
    print(f"output_items.list, {pages} pages of 100 ({seen} items): {list_s * 1000:.0f} ms "
          f"= {list_s * 1000 / pages:.0f} ms per page")


if __name__ == "__main__":
    main()
