"""The web process never loads torch or transformers just to serve pages: importing them takes
seconds on a small machine, so the first page of every web worker would be slow."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = """
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
import django
django.setup()
from django.urls import get_resolver
for pattern in get_resolver().url_patterns:  # loads every app's urls and views
    getattr(pattern, "url_patterns", None)
import webapp.api_urls, webapp.runs.plan, webapp.runs.launch, webapp.runs.hooks, webapp.evals.exports  # noqa
from webapp.runs.plan import training_device
training_device()
print(sorted(m for m in ("torch", "transformers", "peft") if m in sys.modules))
"""


def test_web_modules_do_not_import_torch(tmp_path):
    env = {"STUDIO_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", "STUDIO_TRAINING_DEVICE": "auto"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
