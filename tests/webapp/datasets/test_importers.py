"""The task-file readers: every problem named with its line/row and field, or clean rows."""

import json

import pytest

from tests.helpers import jsonl, rft_row
from webapp.datasets import importers
from webapp.datasets.importers import CsvMapping, ImportProblems


def problems_of(fn, *args, **kwargs) -> ImportProblems:
    with pytest.raises(ImportProblems) as info:
        fn(*args, **kwargs)
    return info.value


def test_valid_jsonl_rows_are_kept_verbatim():
    rows = [rft_row("Capital of France?", "Paris", meta={"difficulty": 2, "tags": ["geo"]}),
            {"messages": [{"role": "system", "content": "Be brief."},
                          {"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
             "tools": [], "answer": 3}]
    assert importers.parse_jsonl(jsonl(rows).decode()) == rows


def test_blank_lines_are_skipped_but_line_numbers_stay_true():
    text = "\n" + json.dumps(rft_row("a", "b")) + "\n\n{bad json\n"
    err = problems_of(importers.parse_jsonl, text)
    assert err.problems == ["line 4: invalid JSON (Expecting property name enclosed in double quotes at column 2)"]


@pytest.mark.parametrize("row, expected", [
    ({"prompt": "x"}, "line 1: `messages` is missing"),
    ({"messages": "hello"}, "line 1: `messages` must be a non-empty list"),
    ({"messages": []}, "line 1: `messages` must be a non-empty list"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
     "line 1: `messages` must end with a user message (the prompt), not 'assistant'"),
    ({"messages": [{"role": "user", "content": "   "}]}, "line 1: the prompt (last user message) is empty"),
    ({"messages": [{"role": "robot", "content": "q"}]}, "line 1: `messages[0]`.role must be one of"),
    ({"messages": [{"role": "user", "content": 42}]}, "line 1: `messages[0]`.content must be a string"),
    ({"messages": ["hi"]}, "line 1: `messages[0]` must be an object"),
    ([1, 2], "line 1: each line must be a JSON object"),
    ({"messages": [{"role": "user", "content": "q"}], "tools": {}}, "line 1: `tools` must be a list"),
    ({"messages": [{"role": "user", "content": "q"}], "id": [1]}, "line 1: `id` must be a string or a number"),
])
def test_wrong_types_and_empty_prompts_are_named(row, expected):
    err = problems_of(importers.parse_jsonl, json.dumps(row))
    assert err.problems[0].startswith(expected), err.problems


def test_duplicate_ids_name_both_lines():
    rows = [rft_row("a", "1", id="x"), rft_row("b", "2", id="y"), rft_row("c", "3", id="x")]
    err = problems_of(importers.parse_jsonl, jsonl(rows).decode())
    assert err.problems == ["line 3: duplicate id 'x' (first used on line 1)"]


def test_at_most_fifty_problems_are_listed_and_the_rest_counted():
    text = "not json\n" * 120
    err = problems_of(importers.parse_jsonl, text, source="big.jsonl")
    assert len(err.problems) == 50 and err.total == 120 and err.hidden == 70
    assert err.problems[0].startswith("big.jsonl: line 1: invalid JSON")
    assert err.summary().endswith("… and 70 more problems.")


def test_row_limit():
    line = json.dumps(rft_row("q", "a")) + "\n"
    err = problems_of(importers.parse_jsonl, line * 12, max_rows=10)
    assert err.problems == ["the file has 12 tasks; the limit is 10. Split it or trim it."]
    assert importers.MAX_ROWS == 50_000


def test_empty_binary_and_non_utf8_files_are_refused():
    assert problems_of(importers.decode_upload, b"", source="e.jsonl").problems == ["e.jsonl: the file is empty."]
    assert problems_of(importers.decode_upload, b" \n\n", source="e.jsonl").problems == ["e.jsonl: the file is empty."]
    binary = problems_of(importers.decode_upload, b"\x89PNG\r\n\x1a\n\x00\x00\x00", source="pic.jsonl")
    assert "binary file" in binary.problems[0]
    latin1 = problems_of(importers.decode_upload, b'{"a": 1}\n{"b": "caf\xe9"}\n', source="l.jsonl")
    assert latin1.problems[0].startswith("l.jsonl: line 2: the file is not UTF-8 text (byte 0xe9")


def test_utf8_bom_is_accepted_and_dropped():
    data = importers.UTF8_BOM + jsonl([rft_row("Grüße?", "Hallo")])
    assert importers.parse_jsonl(importers.decode_upload(data, source="bom.jsonl"))[0]["reference_answer"] == "Hallo"


def test_whitespace_only_lines_mean_no_tasks():
    err = problems_of(importers.parse_jsonl, "\n   \n")
    assert err.problems == ["the file has no tasks (every line is blank)"]


# --- CSV -----------------------------------------------------------------------------------


CSV = 'question,answer,topic\n"What is 2+2?",4,math\n"Capital of Peru, please",Lima,geo\n'


def test_csv_mapping_builds_rft_rows_with_system_prompt_and_extras():
    table = importers.read_csv(CSV)
    assert table.header == ["question", "answer", "topic"]
    rows = importers.csv_to_rows(table, CsvMapping("question", "answer", ("topic",), "Answer briefly."))
    assert rows[1] == {
        "messages": [{"role": "system", "content": "Answer briefly."},
                     {"role": "user", "content": "Capital of Peru, please"}],
        "reference_answer": "Lima", "topic": "geo",
    }


def test_csv_empty_prompt_names_spreadsheet_row_and_column():
    table = importers.read_csv('q,a\nfine,1\n"",2\nok,3\n')
    err = problems_of(importers.csv_to_rows, table, CsvMapping("q", "a"))
    assert err.problems == ["row 3: the prompt column 'q' is empty"]


def test_csv_ragged_rows_and_bad_header():
    err = problems_of(importers.read_csv, "a,b\n1,2,3\n4,5\n", source="r.csv")
    assert err.problems == ["r.csv: row 2: has 3 cells but the header has 2 columns"]
    err = problems_of(importers.read_csv, "a,a\n1,2\n")
    assert err.problems == ["row 1: column name 'a' appears twice"]
    err = problems_of(importers.read_csv, "a,b\n")
    assert err.problems == ["the file has a header but no rows"]


def test_csv_mapping_to_unknown_columns():
    table = importers.read_csv(CSV)
    err = problems_of(importers.csv_to_rows, table, CsvMapping("prompt", "answer", ("nope",)))
    assert "the prompt column 'prompt' is not in the header" in err.problems
    assert "the extra column 'nope' is not in the header" in err.problems


def test_csv_semicolon_dialect_is_sniffed():
    table = importers.read_csv("frage;antwort\nWie viel ist 3+3?;6\n")
    assert table.header == ["frage", "antwort"] and table.rows == [(2, ["Wie viel ist 3+3?", "6"])]


# --- splitting ------------------------------------------------------------------------------


def test_holdout_is_fixed_by_seed_and_never_empties_a_split():
    a = importers.holdout_split(100, percent=20, seed=3)
    assert a == importers.holdout_split(100, percent=20, seed=3) and len(a) == 20
    assert a != importers.holdout_split(100, percent=20, seed=4)
    assert len(importers.holdout_split(3, percent=1, seed=0)) == 1
    assert len(importers.holdout_split(2, percent=50, seed=0)) == 1
    assert importers.holdout_split(10, percent=0, seed=0) == set()
    with pytest.raises(ValueError):
        importers.holdout_split(10, percent=80, seed=0)
