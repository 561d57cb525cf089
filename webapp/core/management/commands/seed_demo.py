from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from webapp.core.demo import DEMO_FILE, DEMO_GRADER, DEMO_RUBRIC, HOLDOUT_PERCENT, SPLIT_SEED
from webapp.datasets.services import Upload, dataset_import_jsonl
from webapp.graders.services import grader_create
from webapp.projects.models import Project
from webapp.projects.services import project_create

DEMO_SLUG = "demo"


class Command(BaseCommand):
    help = "Create the demo project (customer-review triage, 60 train / 20 valid tasks) if missing."

    @transaction.atomic
    def handle(self, *args, **options):
        if Project.objects.filter(slug=DEMO_SLUG).exists():
            self.stdout.write("Demo project exists.")
            return
        admin = get_user_model().objects.filter(is_superuser=True).order_by("pk").first()
        if admin is None:
            self.stderr.write("No admin account yet; run `manage.py ensure_admin` first.")
            return
        project = project_create(
            name="Demo", owner=admin,
            description="Review triage: tell whether a customer review is positive or negative, in "
                        "one word. Small enough for the built-in 135M model to learn on a CPU.",
        )
        data = DEMO_FILE.read_bytes()
        dataset = dataset_import_jsonl(
            project=project, name="Customer reviews", user=admin,
            train=Upload(name=DEMO_FILE.name, size=len(data), read=lambda: data),
            holdout_percent=HOLDOUT_PERCENT, seed=SPLIT_SEED,
        )
        grader = grader_create(project=project, name=DEMO_GRADER["name"], spec=DEMO_GRADER, user=admin,
                               rubric=DEMO_RUBRIC, dataset=dataset,
                               description="Right label (weight 3), answered in one word (weight 1).")
        self.stdout.write(self.style.SUCCESS(
            f"Created demo project with dataset “{dataset.name}” ({dataset.tasks.count()} tasks) "
            f"and grader “{grader.name}”."
        ))
