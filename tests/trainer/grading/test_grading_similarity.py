"""text_similarity: every metric on the real libraries (and the real MiniLM for cosine)."""

from __future__ import annotations

import pytest

from trainer.grading import run_grader, similarity

REFERENCE = "the cat sat on the mat"


def similarity_of(metric: str, text: str, reference: str = REFERENCE) -> float:
    grader = {
        "type": "text_similarity",
        "name": "sim",
        "input": "{{sample.output_text}}",
        "reference": "{{item.ref}}",
        "evaluation_metric": metric,
    }
    result = run_grader(grader, text, {"ref": reference})
    assert result.ok, result.error_message
    return result.reward


@pytest.mark.parametrize(
    "metric",
    [
        "fuzzy_match",
        "bleu",
        "gleu",
        "rouge_1",
        "rouge_2",
        "rouge_3",
        "rouge_4",
        "rouge_5",
        "rouge_l",
    ],
)
def test_identical_is_one_and_unrelated_is_lower(metric: str) -> None:
    assert similarity_of(metric, REFERENCE) == pytest.approx(1.0)
    close = similarity_of(metric, "the cat sat on the mat today")
    far = similarity_of(metric, "quarterly revenue grew by four percent")
    assert 0.0 <= far < close < 1.0


def test_known_values() -> None:
    assert similarity_of("fuzzy_match", "kitten", "sitting") == pytest.approx(1 - 5 / 13)
    assert similarity_of("rouge_1", "the cat", REFERENCE) == pytest.approx(
        2 * (1.0 * 2 / 6) / (1.0 + 2 / 6)
    )


def test_meteor_without_wordnet_says_so() -> None:
    try:
        similarity.load_wordnet()
    except Exception:
        pass
    else:
        pytest.skip("WordNet data is installed here")
    grader = {
        "type": "text_similarity",
        "name": "m",
        "input": "{{sample.output_text}}",
        "reference": REFERENCE,
        "evaluation_metric": "meteor",
    }
    result = run_grader(grader, REFERENCE, {})
    assert result.reward == 0.0 and result.errors == {"other_error": True}
    assert "WordNet" in result.error_message and "nltk.downloader wordnet" in result.error_message


class _NoSynonyms:
    """A stand-in WordNet with no synonyms: METEOR then uses exact and stem matches."""

    def synsets(self, *args: object, **kwargs: object) -> list:
        return []


def test_meteor_with_wordnet_available(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(similarity, "load_wordnet", lambda: _NoSynonyms())
    assert similarity_of("meteor", REFERENCE) > 0.99
    assert similarity_of("meteor", "the cats sat") < similarity_of("meteor", "the cat sat on mat")


def test_cosine_uses_the_packaged_minilm() -> None:
    same_meaning = similarity_of("cosine", "A kitten was sitting on the rug.")
    unrelated = similarity_of("cosine", "Interest rates rose in March.")
    assert same_meaning > 0.5 > unrelated >= 0.0
    assert similarity_of("cosine", REFERENCE) == pytest.approx(1.0, abs=1e-5)
