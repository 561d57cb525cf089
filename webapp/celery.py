"""The Celery app. Tasks take ids, load rows and call one service; no logic of their own."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
# Before torch loads: idle OpenMP threads sleep instead of spinning. On a machine whose cores
# are shared (web server, graders, other workers) spinning threads made generation 10-15x
# slower (measured: 62.9 s -> 5.8 s for the same rollout with 2 threads under load).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

app = Celery("webapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
