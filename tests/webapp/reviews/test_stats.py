"""Agreement statistics against values worked out by hand."""

import pytest

from webapp.reviews.stats import (
    Pair,
    agreement_report,
    cohen_kappa,
    inter_rater,
    summarize,
    verdict,
)


def pairs_from(table, criterion="c", reviewer="ann"):
    """[(grader, expert, count)] -> Pairs on distinct items."""
    out, item = [], 0
    for grader, expert, count in table:
        for _ in range(count):
            out.append(Pair(item=item, criterion=criterion, reviewer=reviewer, grader=grader, expert=expert))
            item += 1
    return out


def test_cohen_kappa_hand_worked():
    # 10 answers: both pass 4, both fail 3, grader pass / expert fail 2, grader fail / expert pass 1.
    # p_o = 7/10; grader passes 6/10, expert 5/10; p_e = .6*.5 + .4*.5 = .5; kappa = (.7-.5)/(1-.5) = .4
    pairs = [(True, True)] * 4 + [(False, False)] * 3 + [(True, False)] * 2 + [(False, True)]
    assert cohen_kappa(pairs) == pytest.approx(0.4)


def test_cohen_kappa_second_table():
    # 20 answers: 9 both pass, 6 both fail, 3 grader-only pass, 2 expert-only pass.
    # p_o = 15/20 = .75; grader pass 12/20 = .6, expert 11/20 = .55
    # p_e = .6*.55 + .4*.45 = .33 + .18 = .51; kappa = (.75 - .51) / .49 = .489796
    pairs = [(True, True)] * 9 + [(False, False)] * 6 + [(True, False)] * 3 + [(False, True)] * 2
    assert cohen_kappa(pairs) == pytest.approx(0.24 / 0.49)


def test_kappa_is_undefined_when_everyone_always_agrees_on_one_answer():
    assert cohen_kappa([(True, True)] * 5) is None
    assert cohen_kappa([]) is None


def test_perfect_and_opposite_agreement():
    assert cohen_kappa([(True, True), (False, False)]) == pytest.approx(1.0)
    assert cohen_kappa([(True, False), (False, True)]) == pytest.approx(-1.0)


def test_summarize_pass_fail():
    s = summarize(pairs_from([(1.0, 1.0, 4), (0.0, 0.0, 3), (1.0, 0.0, 2), (0.0, 1.0, 1)]), pass_fail=True)
    assert s == {"n": 10, "agreement": 0.7, "kappa": 0.4, "mean_abs_diff": 0.3}


def test_summarize_graded_uses_the_tolerance_and_mean_abs_diff():
    # |diffs| = .1, .2, .5, 0 -> agree (<= .2): 3 of 4; mean abs diff = .8 / 4 = .2
    pairs = pairs_from([(0.9, 0.8, 1), (0.5, 0.7, 1), (0.0, 0.5, 1), (0.3, 0.3, 1)])
    assert summarize(pairs, pass_fail=False) == {"n": 4, "agreement": 0.75, "kappa": None, "mean_abs_diff": 0.2}


def test_report_overall_and_per_criterion():
    a = pairs_from([(1.0, 1.0, 4), (0.0, 0.0, 3), (1.0, 0.0, 2), (0.0, 1.0, 1)], criterion="accuracy")
    g = [Pair(item=i, criterion="tone", reviewer="ann", grader=gr, expert=ex)
         for i, (gr, ex) in enumerate([(0.9, 0.8), (0.5, 0.7), (0.0, 0.5), (0.3, 0.3)])]
    report = agreement_report(a + g)
    assert report["criteria"]["accuracy"] == {"n": 10, "agreement": 0.7, "kappa": 0.4, "mean_abs_diff": 0.3,
                                              "kind": "pass_fail"}
    assert report["criteria"]["tone"]["kind"] == "graded" and report["criteria"]["tone"]["agreement"] == 0.75
    overall = report["overall"]
    # 14 pairs, 7 + 3 agree -> 10/14; mean abs diff (3 + .8) / 14
    assert overall["n"] == 14 and overall["agreement"] == round(10 / 14, 4)
    assert overall["mean_abs_diff"] == round(3.8 / 14, 4) and overall["items"] == 10
    # pass/fail verdicts of all 14: grader passes 6 + (.9, .5) = 8, expert 5 + (.8, .7, .5) = 8
    # (tone verdicts: .9/.8 and .5/.7 both pass, .0/.5 differ, .3/.3 both fail)
    # p_o = 10/14, p_e = (8/14)^2 + (6/14)^2 = (64 + 36) / 196; kappa = (10/14 - 100/196) / (1 - 100/196)
    p_o, p_e = 10 / 14, 100 / 196
    assert overall["kappa"] == round((p_o - p_e) / (1 - p_e), 4)
    assert len(report["disagreements"]) == 4  # 3 accuracy, 1 tone


def test_inter_rater_pairs_of_experts():
    ratings = {
        (1, "c"): {"ann": 1.0, "bob": 1.0},                # agree
        (2, "c"): {"ann": 1.0, "bob": 0.0},                # disagree
        (3, "c"): {"ann": 0.0, "bob": 0.0, "cy": 1.0},     # pairs: agree, disagree, disagree
        (4, "c"): {"ann": 1.0},                            # one rater: not counted
    }
    r = inter_rater(ratings, {"c": True})
    # 5 pairs, 2 agree -> .4; verdicts 1,1,1,0,0,0,1 -> p = 4/7; p_e = 16/49 + 9/49 = 25/49
    assert r["n_items"] == 3 and r["n_pairs"] == 5 and r["agreement"] == 0.4
    assert r["kappa"] == round((0.4 - 25 / 49) / (1 - 25 / 49), 4)


def test_verdict_needs_enough_reviewed_answers():
    few = agreement_report(pairs_from([(1.0, 1.0, 5)]))
    assert verdict(few) == "unmeasured"
    low = agreement_report(pairs_from([(1.0, 1.0, 6), (1.0, 0.0, 4)]))
    assert verdict(low) == "low"
    ok = agreement_report(pairs_from([(1.0, 1.0, 9), (1.0, 0.0, 1)]))
    assert verdict(ok) == "ok"
    assert verdict(agreement_report([])) == "unmeasured"
