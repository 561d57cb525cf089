"""Blind A/B review: hidden labels, a stable per-task random order, picks stored as which
model won, the experts' win rate with its interval next to the grader's verdict, and the
disagreements."""

import pytest

from tests.webapp.evals.factories import make_eval
from tests.webapp.runs.factories import make_run
from webapp.evals import ab
from webapp.evals.models import AbChoice, AbPick, AbReview
from webapp.runs.models import RunStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def review(dataset, project_with_roles):
    project, users = project_with_roles
    run = make_run(project, dataset, users["owner"], status=RunStatus.SUCCEEDED)
    base = make_eval(project, run, "run_base", [0.0] * 6 + [1.0] * 2, model_name="smollm2-base-SECRETNAME")
    trained = make_eval(project, run, "run_trained", [1.0] * 6 + [0.0] * 2, model_name="ft:trained-SECRETNAME")
    review = ab.ab_review_create(project=project, user=users["editor"], baseline=base, candidate=trained)
    # the seed is random; 1 in 128 puts every task's candidate on the same side: pin one that does not
    while len({ab.left_side(review, k) for k in ab.shared_tasks(review)}) < 2:
        review.seed += 1
    review.save(update_fields=["seed"])
    return review, users


def test_order_is_hidden_random_per_task_and_stable(review, client_for):
    rv, users = review
    keys = ab.shared_tasks(rv)
    sides = [ab.left_side(rv, k) for k in keys]
    assert len(keys) == 8 and {"baseline", "candidate"} == set(sides)
    assert sides == [ab.left_side(AbReview.objects.get(pk=rv.pk), k) for k in keys]
    c = client_for(users["viewer"])  # viewers are experts too: they may review
    url = f"/p/{rv.project.slug}/evals/review/{rv.pk}/"
    page = c.get(url).content.decode()
    assert "SECRETNAME" not in page and rv.baseline_id not in page and rv.candidate_id not in page
    assert "Answer 1" in page and "0 of 8 tasks judged" in page
    first = keys[0]
    pair = ab.ab_pair(review=rv, task_key=first)
    response = c.post(url, {"task_key": first, "pick": "first", "note": "clearer"})
    assert response.status_code == 302
    pick = AbPick.objects.get()
    assert pick.choice == pair["left"] and pick.shown_left == pair["left"] and pick.note == "clearer"
    assert "1 of 8 tasks judged" in c.get(url).content.decode()
    c.post(url, {"task_key": first, "pick": "tie"})  # changing one's mind replaces the pick
    assert AbPick.objects.get().choice == AbChoice.TIE
    bad = c.post(url, {"task_key": first, "pick": "both"})
    assert bad.status_code == 400 and "Pick the first answer" in bad.content.decode()


def test_results_win_rate_interval_grader_verdict_and_disagreements(review, client_for):
    rv, users = review
    keys = ab.shared_tasks(rv)
    cand = {i.task_key: i.reward for i in rv.candidate.items.all()}
    for k in keys:  # the expert prefers the candidate everywhere, but the grader does not on 2 tasks
        pair = ab.ab_pair(review=rv, task_key=k)
        ab.ab_pick_record(review=rv, user=users["viewer"], task_key=k,
                          pick="first" if pair["left"] == "candidate" else "second")
    r = ab.ab_results(review=rv)
    assert (r.n, r.wins, r.losses, r.ties) == (8, 8, 0, 0) and r.win_rate == 1.0
    low, high = r.ci
    assert 0.6 < low < 0.7 and high == 1.0  # Wilson 95% for 8/8: 0.676..1
    assert r.grader["wins"] == 6 and r.grader["losses"] == 2 and r.grader["agreement"] == 0.75
    assert sorted(d["pick"].task_key for d in r.disagreements) == sorted(k for k in keys if cand[k] == 0.0)
    html = client_for(users["viewer"]).get(f"/p/{rv.project.slug}/evals/review/{rv.pk}/results/").content.decode()
    assert "Candidate wins 100%" in html and "68% to 100%" in html and "Agrees with the experts on 75%" in html
    assert html.count('class="card disagreement"') == 2 and "Edit the task" not in html  # factory items have no task


def test_wilson_interval():
    assert ab.wilson(0, 0) == (0.0, 1.0)
    low, high = ab.wilson(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-3) and high == pytest.approx(0.7634, abs=1e-3)


def test_only_editors_start_reviews_and_outsiders_see_nothing(review, client_for):
    rv, users = review
    url = f"/p/{rv.project.slug}/evals/review/new/"
    assert client_for(users["viewer"]).post(url, {"a": rv.baseline_id, "b": rv.candidate_id}).status_code == 403
    r = client_for(users["editor"]).post(url, {"a": rv.baseline_id, "b": rv.candidate_id})
    assert r.status_code == 302 and AbReview.objects.count() == 2
    assert client_for(users["outsider"]).get(f"/p/{rv.project.slug}/evals/review/{rv.pk}/").status_code == 404
