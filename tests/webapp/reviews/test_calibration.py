"""Grader calibration through the real URL stack: review blind, read the report, edit the
grader, re-score, see before/after; the API gives the page's numbers."""

import pytest
from django.urls import reverse

from tests.webapp.reviews.calibration import lenient, make_calibration_run
from webapp.graders.services import grader_update
from webapp.reviews import selectors, services
from webapp.reviews.models import ItemGrade, Review, ReviewItem
from webapp.runs.models import SampleFeedback

pytestmark = pytest.mark.django_db


@pytest.fixture
def calibration(project_with_roles, dataset):
    project, users = project_with_roles
    grader, run, verdicts = make_calibration_run(project, dataset, users["owner"])
    return project, users, grader, run, verdicts


def review_all(client, project, grader, verdicts, *, only=None):
    """Go through the queue as the page does: next, score, save and next."""
    url = reverse("reviews:next", args=[project.slug, grader.pk])
    items = {it.pk: i for i, it in enumerate(ReviewItem.objects.order_by("pk"))}
    for _ in range(len(verdicts)):
        response = client.get(url)
        assert response.status_code == 302
        if "/items/" not in response.url:
            break
        page = client.get(response.url)
        html = page.content.decode()
        assert "grader:" not in html  # blind: the grader's scores are not shown before the expert's
        item_pk = int(response.url.rstrip("/").rsplit("/", 1)[1])
        verdict = verdicts[items[item_pk]]
        if only:
            verdict = {k: v for k, v in verdict.items() if k in only}
        response = client.post(response.url, {f"score-{k}": str(v) for k, v in verdict.items()} | {"next": "1"})
        assert response.status_code == 302


def test_expert_reviews_ten_answers_then_an_edit_raises_agreement(calibration, client_for):
    project, users, grader, run, verdicts = calibration
    owner = client_for(users["owner"])
    response = owner.post(reverse("reviews:add", args=[project.slug, grader.pk]),
                          {"source": "run", "run": run.pk, "count": "10"})
    assert response.status_code == 302 and ReviewItem.objects.count() == 10
    review_all(owner, project, grader, verdicts)
    assert Review.objects.filter(user=users["owner"]).count() == 20

    report = selectors.grader_agreement(grader=grader)
    assert report["criteria"]["correct"]["agreement"] == 0.6  # the 4 sentences fail "equals"
    assert report["criteria"]["correct"]["kind"] == "pass_fail"
    assert report["criteria"]["polite"]["agreement"] == 1.0
    assert report["overall"]["agreement"] == 0.8 and report["overall"]["n"] == 20
    assert {d["criterion"] for d in report["disagreements"]} == {"correct"}
    page = owner.get(reverse("reviews:grader", args=[project.slug, grader.pk])).content.decode()
    assert 'id="overall-agreement">80 %' in page
    assert f"/p/{project.slug}/graders/{grader.pk}/edit/?criterion=correct" in page

    # The grader is used by a run: editing it makes v2. The reviewed answers are re-scored.
    v2 = grader_update(grader=grader, user=users["owner"], spec=lenient())
    assert v2.pk != grader.pk and v2.version == 2
    assert selectors.grader_agreement(grader=v2)["unscored"] == 10
    page = owner.get(reverse("reviews:grader", args=[project.slug, v2.pk])).content.decode()
    assert 'id="rescore-needed"' in page  # the page asks for the re-score as it loads
    response = owner.post(reverse("reviews:rescore", args=[project.slug, v2.pk]), HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert 'id="overall-agreement">100 %' in html
    assert 'id="before-agreement">80 %' in html and 'id="after-agreement">100 %' in html
    assert ItemGrade.objects.filter(spec_hash=selectors.spec_hash(v2.spec)).count() == 10
    # The old version's report still reads the run's own grades.
    assert selectors.grader_agreement(grader=grader)["overall"]["agreement"] == 0.8
    body = client_for(users["owner"]).get(f"/v1/graders/{v2.pk}/agreement").json()
    assert body["overall"]["agreement"] == 1.0 and body["version"] == 2
    assert body["before_edit"]["overall"]["agreement"] == 0.8 and "as run sums-1 graded" in body["before_edit"]["label"]


def test_after_saving_the_expert_sees_the_graders_verdict(calibration, client_for):
    project, users, grader, run, _ = calibration
    item = services.review_items_add_from_run(grader=grader, run=run, count=1, user=users["owner"])[0]
    url = reverse("reviews:item", args=[project.slug, grader.pk, item.pk])
    viewer = client_for(users["viewer"])  # viewers may review: they are often the experts
    assert "data-grader-score" not in viewer.get(url).content.decode()
    response = viewer.post(url, {"score-correct": "1", "score-polite": "0", "next": "0"})
    assert response.status_code == 302
    assert "data-grader-score" in viewer.get(url).content.decode()


def test_bad_scores_are_refused_with_the_field_named(calibration, client_for):
    project, users, grader, run, _ = calibration
    item = services.review_items_add_from_run(grader=grader, run=run, count=1, user=users["owner"])[0]
    url = reverse("reviews:item", args=[project.slug, grader.pk, item.pk])
    response = client_for(users["owner"]).post(url, {"score-correct": "7"})
    assert response.status_code == 400 and "from 0 to 1" in response.content.decode()
    response = client_for(users["owner"]).post(url, {})
    assert response.status_code == 400 and "at least one criterion" in response.content.decode()
    assert not Review.objects.exists()


def test_flags_count_as_reviews_and_new_versions_score_them(calibration):
    project, users, grader, run, _ = calibration
    sentence = run.samples.get(step=5)  # "The answer is 8, please check.": grader failed "correct"
    SampleFeedback.objects.create(sample=sentence, user=users["editor"], criterion="correct")
    report = selectors.grader_agreement(grader=grader)
    assert report["criteria"]["correct"] == {**report["criteria"]["correct"], "n": 1, "agreement": 0.0}
    assert report["reviewed"] == 1 and ReviewItem.objects.count() == 0  # read without writing

    v2 = grader_update(grader=grader, user=users["owner"], spec=lenient())
    assert selectors.grader_agreement(grader=v2)["unscored"] == 1
    services.rescore_start(grader=v2, user=users["owner"])
    assert ReviewItem.objects.get().source == "flag"
    after = selectors.grader_agreement(grader=v2)
    assert after["criteria"]["correct"]["agreement"] == 1.0 and after["unscored"] == 0


def test_two_experts_inter_rater(calibration):
    project, users, grader, run, _ = calibration
    items = services.review_items_add_from_run(grader=grader, run=run, count=2, user=users["owner"])
    for user, scores in ((users["owner"], (1, 1)), (users["editor"], (1, 0))):
        for item, s in zip(items, scores, strict=True):
            services.review_save(item=item, user=user, scores={"correct": s}, spec=grader.spec)
    inter = selectors.grader_agreement(grader=grader)["inter_rater"]
    assert inter["n_items"] == 2 and inter["n_pairs"] == 2 and inter["agreement"] == 0.5


def test_pasted_answer_is_graded_with_the_grader(calibration, client_for):
    project, users, grader, run, _ = calibration
    task = grader.dataset.tasks.order_by("position").first()
    response = client_for(users["editor"]).post(reverse("reviews:add", args=[project.slug, grader.pk]),
                                                {"source": "pasted", "task": task.pk,
                                                 "output_text": task.data["reference_answer"]})
    assert response.status_code == 302
    item = ReviewItem.objects.get(source="pasted")
    assert item.task_id == task.pk and item.grades.get().sub_rewards == {"correct": 1.0, "polite": 0.0}


def test_agreement_api_matches_the_page(calibration, api_client_for, client_for):
    project, users, grader, run, verdicts = calibration
    items = services.review_items_add_from_run(grader=grader, run=run, count=10, user=users["owner"])
    api = api_client_for(users["viewer"], project)
    by_sample = {it.sample_id: it for it in items}
    for i, sample in enumerate(run.samples.order_by("step")):
        for criterion, score in verdicts[i].items():
            r = api.post("/v1/reviews", {"grader_id": grader.pk, "sample_id": sample.pk, "criterion": criterion,
                                         "score": score, "reviewer_note": "checked"}, content_type="application/json")
            assert r.status_code == 200, r.content
            assert r.json()["review_item_id"] == by_sample[sample.pk].pk
    body = api.get(f"/v1/graders/{grader.pk}/agreement").json()
    assert body["overall"] == {"agreement": 0.8, "kappa": body["overall"]["kappa"], "n": 20,
                               "mean_abs_diff": 0.2, "items": 10}
    # correct: grader passes 4, experts 8; p_o .6, p_e .4*.8 + .6*.2 = .44, kappa = .16 / .56
    assert body["criteria"]["correct"]["kappa"] == round(0.16 / 0.56, 4)
    assert body["criteria"]["correct"]["agreement"] == 0.6 and body["criteria"]["correct"]["n"] == 10
    assert body["verdict"] == "ok" and len(body["disagreements"]) == 4
    page = client_for(users["viewer"]).get(reverse("reviews:grader", args=[project.slug, grader.pk])).content.decode()
    assert 'id="overall-agreement">80 %' in page


def test_reviews_api_errors_name_the_field(calibration, api_client_for):
    project, users, grader, run, _ = calibration
    api = api_client_for(users["owner"], project)
    sample = run.samples.first()

    def post(**body):
        return api.post("/v1/reviews", {"grader_id": grader.pk, **body}, content_type="application/json")

    error = post(sample_id=sample.pk, criterion="correct", score=2).json()["error"]
    assert error["param"] == "score" and "“correct”" in error["message"]
    assert post(sample_id=sample.pk, score="NaN").json()["error"]["param"] == "score"
    assert post(sample_id=sample.pk, criterion="nope", score=1).json()["error"]["param"] == "criterion"
    assert post(score=1).json()["error"]["param"] == "sample_id"
    assert post(eval_item_id=3, score=1).status_code == 404  # no such evaluation item
    assert post(sample_id=99999999, score=1).status_code == 404
    r = post(item={"messages": [{"role": "user", "content": "What is 1 + 1?"}], "reference_answer": "2"},
             output_text="2", criterion="correct", score=1)
    assert r.status_code == 200 and ReviewItem.objects.get(source="pasted").grades.get().reward == 0.75


def test_launch_warning_partial(calibration):
    from django.template.loader import render_to_string

    project, users, grader, run, verdicts = calibration
    html = render_to_string("reviews/_launch_warning.html", {"grader": grader, "project": project,
                                                             "verdict": "unmeasured",
                                                             "report": selectors.grader_agreement(grader=grader)})
    assert "Nobody has checked this grader" in html
    from webapp.reviews.templatetags.review_tags import grader_agreement_warning

    items = services.review_items_add_from_run(grader=grader, run=run, count=10, user=users["owner"])
    for item, verdict in zip(sorted(items, key=lambda i: i.sample.step), verdicts, strict=True):
        services.review_save(item=item, user=users["owner"], scores={"correct": verdict["correct"]}, spec=grader.spec)
    context = grader_agreement_warning(grader, project)
    assert context["verdict"] == "low"  # 60 % on "correct"
    html = render_to_string("reviews/_launch_warning.html", context)
    assert "often disagrees" in html and "60 %" in html


def test_an_edited_reference_is_graded_as_it_is_now(project_with_roles, dataset):
    from tests.webapp.reviews.calibration import STRICT
    from webapp.datasets.services import task_update
    from webapp.graders.services import grader_create

    project, users = project_with_roles
    grader = grader_create(project=project, name="Strict", spec=STRICT, user=users["owner"], dataset=dataset)
    task = dataset.tasks.order_by("position").first()
    item = services.review_item_add_answer(grader=grader, task=task, output_text="42", user=users["owner"])
    services.review_save(item=item, user=users["owner"], scores={"correct": 1}, spec=grader.spec)
    assert selectors.grader_agreement(grader=grader)["criteria"]["correct"]["agreement"] == 0.0
    # The expert decides the reference was wrong and fixes the task, then re-scores.
    task_update(task=task, row={**task.data, "reference_answer": "42"}, split=task.split)
    assert selectors.grader_agreement(grader=grader)["unscored"] == 1  # the old grade no longer fits
    services.rescore_start(grader=grader, user=users["owner"])
    item.refresh_from_db()
    assert item.item["reference_answer"] == "42"
    assert selectors.grader_agreement(grader=grader)["criteria"]["correct"]["agreement"] == 1.0
