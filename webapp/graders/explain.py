"""Graders in words, for the expert: what each criterion checks, and why an answer did not
get full marks on it.

`criterion_words(spec)` turns one criterion's settings into a sentence (“The answer contains
the reference answer, ignoring upper/lower case”), for the grader page. `criterion_reason`
says why a graded answer lost marks on one criterion (“it has 3 words; at most 1 allowed”),
for *Try it*. Both read the grader JSON the engine runs, so they say what the engine does;
the engine itself is never re-implemented here beyond re-reading the texts it compared.
"""

from __future__ import annotations

import re
from typing import Any

from trainer.grading import GRADER_TYPES
from trainer.grading.templates import Sample, compile_template

MAX_QUOTE = 80
_WORD = re.compile(r"\S+")  # the engine's word count (trainer/grading/text_types.py)
_VARIABLE = re.compile(r"\{\{\s*(sample|item)\.([\w.]+)\s*\}\}")
STRING_OPERATIONS = {"eq": "is exactly", "ne": "is not", "like": "contains", "ilike": "contains (ignoring case)"}
METRIC_WORDS = {"fuzzy_match": "spelling (fuzzy match)", "rouge_l": "shared wording (ROUGE-L)",
                "bleu": "shared phrases (BLEU)", "cosine": "meaning (embeddings)",
                "gleu": "shared phrases (GLEU)", "meteor": "wording and synonyms (METEOR)"}


def type_label(type_: str) -> str:
    """A check's name in plain words (“Text matches”), never its code name."""
    return GRADER_TYPES.get(type_, {}).get("label") or type_.replace("_", " ")


def _quote(text: Any) -> str:
    text = str(text)
    return f"“{text[:MAX_QUOTE]}{'…' if len(text) > MAX_QUOTE else ''}”"


def template_words(source: Any) -> str:
    """`{{sample.output_text}}` -> the answer; `{{item.reference_answer}}` -> the task's
    “reference_answer”; fixed text is quoted."""
    if not isinstance(source, str):
        return _quote(source)
    match = _VARIABLE.fullmatch(source.strip())
    if match:
        where, path = match.groups()
        if where == "sample":
            return {"output_text": "the answer", "output_json": "the answer (as JSON)"}.get(path, f"the answer's {path}")
        return f"the task's “{path}”"
    if _VARIABLE.search(source):
        return f"the text {_quote(source)}"
    return _quote(source)


def criterion_words(spec: dict[str, Any]) -> str:
    """What one criterion checks, as a sentence."""
    t, g = spec.get("type", ""), spec
    subject = template_words(g.get("input", "{{sample.output_text}}"))
    subject = subject[0].upper() + subject[1:]
    if t == "string_check":
        return f"{subject} {STRING_OPERATIONS.get(g.get('operation'), g.get('operation'))} {template_words(g.get('reference'))}."
    if t == "length_bounds":
        unit = g.get("unit", "words")
        low, high = g.get("min"), g.get("max")
        if low is not None and high is not None:
            limits = f"between {low} and {high} {unit}"
        elif high is not None:
            limits = f"at most {high} {unit if high != 1 else unit.rstrip('s')}"
        else:
            limits = f"at least {low} {unit if low != 1 else unit.rstrip('s')}"
        return f"{subject} is {limits} long."
    if t == "keywords":
        words = ", ".join(_quote(k) for k in (g.get("keywords") or [])[:10])
        how = "any one of" if g.get("mode") == "any" else "all of"
        extras = [x for x, on in (("upper/lower case matters", g.get("case_sensitive")),
                                  ("whole words only", g.get("whole_words")),
                                  ("partial credit for some", g.get("partial_credit"))) if on]
        return f"{subject} mentions {how} {words}{' (' + ', '.join(extras) + ')' if extras else ''}."
    if t == "regex_match":
        where = "as a whole" if g.get("mode") == "full" else "somewhere"
        case = ", ignoring upper/lower case" if g.get("ignore_case") else ""
        return f"{subject} matches the pattern {_quote(g.get('pattern', ''))} {where}{case}."
    if t == "numeric_match":
        tol = []
        if g.get("abs_tol"):
            tol.append(f"give or take {g['abs_tol']:g}")
        if g.get("rel_tol") and g["rel_tol"] >= 1e-6:
            tol.append(f"within {g['rel_tol'] * 100:g} %")
        return (f"The last number in {template_words(g.get('input', '{{sample.output_text}}'))} equals "
                f"{template_words(g.get('reference'))}{' (' + ', '.join(tol) + ')' if tol else ''}.")
    if t == "choice_match":
        options = g.get("options") or []
        among = f" among {', '.join(_quote(o) for o in options[:10])}" if options else ""
        return f"{subject} picks the option {template_words(g.get('reference'))}{among}."
    if t == "text_similarity":
        metric = METRIC_WORDS.get(g.get("evaluation_metric"), g.get("evaluation_metric"))
        return f"Scores from 0 to 1 how close {template_words(g.get('input'))} is to {template_words(g.get('reference'))} in {metric}."
    if t == "json_schema":
        return f"{subject} is JSON of the required shape."
    if t == "json_field_equals":
        return f"The answer's JSON field “{g.get('field', '')}” equals {template_words(g.get('reference'))}."
    if t in ("score_model", "label_model"):
        judge = g.get("model", "an AI judge")
        if t == "label_model":
            passing = ", ".join(_quote(x) for x in g.get("passing_labels") or [])
            return f"The AI judge {judge} labels the answer; full marks for {passing or 'a passing label'}."
        rng = g.get("range") or [0, 1]
        return f"The AI judge {judge} gives a score from {rng[0]} to {rng[1]}."
    if t == "python":
        return "Python code written for this grader scores the answer (it runs in a sandbox)."
    return type_label(t) + "."


def _render(source: Any, answer: str, item: dict) -> str | None:
    try:
        return compile_template(source).render(Sample(answer), item)
    except Exception:  # noqa: BLE001 - a template that cannot render: the engine's own error says why
        return None


def criterion_reason(spec: dict[str, Any], result, answer: str, item: dict) -> str:
    """Why `result` (the engine's GradeResult for this criterion) is below full marks, in
    words; "" when it got full marks. An engine error is the reason when there is one."""
    if result.error_message:
        return result.error_message
    if result.reward >= 1.0:
        return ""
    t, g, scores = spec.get("type", ""), spec, result.scores or {}
    text = _render(g.get("input", "{{sample.output_text}}"), answer, item)
    reference = _render(g.get("reference"), answer, item) if "reference" in g else None
    if t == "string_check" and text is not None and reference is not None:
        verb = {"eq": "is not exactly", "ne": "is the same as", "like": "does not contain",
                "ilike": "does not contain (even ignoring case)"}.get(g.get("operation"), "does not match")
        return f"{_quote(text)} {verb} {_quote(reference)}."
    if t == "length_bounds" and text is not None:
        words = g.get("unit", "words") == "words"
        size = len(_WORD.findall(text)) if words else len(text.strip())
        unit = "word" if words else "character"
        have = f"It has {size} {unit}{'s' if size != 1 else ''}"
        if g.get("max") is not None and size > g["max"]:
            return f"{have}; at most {g['max']} allowed."
        if g.get("min") is not None and size < g["min"]:
            return f"{have}; at least {g['min']} needed."
    if t == "keywords" and text is not None:
        flags = 0 if g.get("case_sensitive") else re.IGNORECASE
        missing = []
        for k in g.get("keywords") or []:
            word = _render(k, answer, item) or str(k)
            pattern = rf"(?<!\w){re.escape(word)}(?!\w)" if g.get("whole_words") else re.escape(word)
            if not re.search(pattern, text, flags):
                missing.append(_quote(word))
        if missing:
            return f"Missing {', '.join(missing[:8])}."
    if t == "regex_match" and text is not None:
        return f"{_quote(text)} does not match the pattern {_quote(g.get('pattern', ''))}."
    if t == "numeric_match":
        if scores.get("extracted") is None:
            return "No number found in the answer."
        return f"It says {scores['extracted']:g}; the correct number is {reference}."
    if t == "choice_match":
        chosen = scores.get("choice")
        if chosen is None:
            return "It does not pick exactly one of the options."
        return f"It picks {_quote(chosen)}; the correct option is {_quote(reference)}."
    if t == "text_similarity" and reference is not None:
        metric = METRIC_WORDS.get(g.get("evaluation_metric"), g.get("evaluation_metric"))
        return f"Its {metric} similarity to {_quote(reference)} is {result.reward:.2f} of 1."
    if t == "json_schema" and scores.get("violation"):
        return f"Not the required shape: {scores['violation']}."
    if t == "json_field_equals":
        if scores.get("missing_field"):
            return f"The answer has no field “{scores['missing_field']}”."
        return f"The field “{g.get('field', '')}” is not {_quote(reference if reference is not None else g.get('reference'))}."
    if t in ("score_model", "label_model"):
        said = scores.get("label", scores.get("score"))
        return f"The judge said {_quote(said)}." if said is not None else "The judge gave it less than full marks."
    if t == "python" and result.logs:
        return f"The code printed: {_quote(result.logs)}"
    return f"Scored {result.reward:.2f} of 1."
