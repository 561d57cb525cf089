"""A grader to calibrate and a run whose answers experts disagree with (shared by the web and
browser tests).

The rubric's "correct" criterion wants the answer to *equal* the reference, so an answer
that says "The answer is 4" fails it although an expert passes it. Changing the check to
"contains" fixes that: agreement rises from 60 % to 100 % on the 10 answers below.
"""

from __future__ import annotations

import copy

from trainer.grading import run_grader
from webapp.graders.services import grader_create
from webapp.runs.hooks import task_key
from webapp.runs.models import RunSample

STRICT = {
    "type": "multi", "name": "rubric", "calculate_output": "(3 * correct + 1 * polite) / 4",
    "graders": {
        "correct": {"type": "string_check", "name": "correct", "operation": "eq",
                    "input": "{{sample.output_text}}", "reference": "{{item.reference_answer}}"},
        "polite": {"type": "string_check", "name": "polite", "operation": "like",
                   "input": "{{sample.output_text}}", "reference": "please"},
    },
}


def lenient() -> dict:
    spec = copy.deepcopy(STRICT)
    spec["graders"]["correct"]["operation"] = "like"
    return spec


def answers(task_rows) -> list[tuple[dict, str, dict]]:
    """10 (task, answer, the expert's verdicts): 4 bare numbers, 4 sentences, 2 wrong."""
    out = []
    for i, row in enumerate(task_rows[:10]):
        ref = row["reference_answer"]
        if i < 4:
            out.append((row, ref, {"correct": 1, "polite": 0}))
        elif i < 8:
            out.append((row, f"The answer is {ref}, please check.", {"correct": 1, "polite": 1}))
        else:
            out.append((row, str(int(ref) + 1), {"correct": 0, "polite": 0}))
    return out


def make_calibration_run(project, dataset, user):
    """A finished run graded by the strict grader, with the 10 answers as its samples."""
    from tests.webapp.runs.factories import make_run

    grader = grader_create(project=project, name="Sums rubric", spec=copy.deepcopy(STRICT), user=user,
                           dataset=dataset)
    rows = [t.data for t in dataset.tasks.order_by("position")]
    run = make_run(project, dataset, user, steps=0, total_steps=10, status="succeeded", grader=grader,
                   suffix="sums-1")
    run.grader_spec = grader.spec
    run.save(update_fields=["grader_spec"])
    verdicts = []
    for step, (row, text, verdict) in enumerate(answers(rows), start=1):
        grade = run_grader(grader.spec, text, row)
        RunSample.objects.create(run=run, step=step, split="train", task_key=task_key(row["messages"]),
                                 prompt=row["messages"], item={k: v for k, v in row.items() if k != "messages"},
                                 output_text=text, reward=grade.reward, sub_rewards=grade.sub_rewards)
        verdicts.append(verdict)
    grader.locked_reason = f"used by run {run.pk}"
    grader.save(update_fields=["locked_reason"])
    return grader, run, verdicts
