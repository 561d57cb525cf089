"""The agreement report reads a fixed number of queries however many answers were reviewed."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.webapp.reviews.calibration import make_calibration_run
from webapp.reviews import selectors, services
from webapp.runs.models import SampleFeedback

pytestmark = pytest.mark.django_db


def _queries(fn) -> int:
    with CaptureQueriesContext(connection) as ctx:
        fn()
    return len(ctx.captured_queries)


def test_report_queries_do_not_grow_with_the_reviews(project_with_roles, dataset, client_for):
    project, users = project_with_roles
    grader, run, verdicts = make_calibration_run(project, dataset, users["owner"])
    owner, editor = users["owner"], users["editor"]

    def add_and_review(count):
        for item in services.review_items_add_from_run(grader=grader, run=run, count=count, user=owner):
            for user in (owner, editor):
                services.review_save(item=item, user=user, scores={"correct": 1, "polite": 0}, spec=grader.spec)
            SampleFeedback.objects.get_or_create(sample=item.sample, user=editor, criterion="correct")

    add_and_review(3)
    small = _queries(lambda: selectors.grader_agreement(grader=grader))
    page_small = _queries(lambda: client_for(owner).get(reverse("reviews:grader", args=[project.slug, grader.pk])))
    add_and_review(5)
    report = selectors.grader_agreement(grader=grader)
    assert report["reviewed"] == 8 and report["overall"]["n"] > 0
    assert _queries(lambda: selectors.grader_agreement(grader=grader)) == small
    page = _queries(lambda: client_for(owner).get(reverse("reviews:grader", args=[project.slug, grader.pk])))
    assert page == page_small
