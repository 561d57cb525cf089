"""Small helpers tests import (fixtures live in conftest.py)."""

import json


def rft_row(prompt: str, answer: str, **extra) -> dict:
    return {"messages": [{"role": "user", "content": prompt}], "reference_answer": answer, **extra}


def jsonl(rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()
