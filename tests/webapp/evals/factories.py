"""Evaluations built with the ORM, as a finished evaluation leaves them (no model runs)."""

from tests.webapp.evals.conftest import RUBRIC
from webapp.evals.models import EvalItem, EvalStatus, Evaluation
from webapp.runs.hooks import task_key


def make_eval(project, run, purpose, rewards, *, dataset=None, crit=None, prompts=None, outputs=None, refs=None,
              model_name=None, task_ids=None):
    ev = Evaluation.objects.create(project=project, run=run, purpose=purpose, model_name=model_name or f"model-{purpose}",
                                   base_model="tiny", dataset=dataset or run.dataset, split="valid",
                                   grader_spec=RUBRIC, sampling={"max_completion_tokens": 8},
                                   status=EvalStatus.COMPLETED, total_items=len(rewards), done_items=len(rewards),
                                   reward_mean=sum(rewards) / len(rewards), checkpoint_step=10)
    for i, r in enumerate(rewards):
        prompt = [{"role": "user", "content": prompts[i] if prompts else f"say <b>{i}</b>"}]
        EvalItem.objects.create(evaluation=ev, index=i, task_key=task_key(prompt), prompt=prompt,
                                task_id=task_ids[i] if task_ids else None,
                                item={"reference_answer": refs[i] if refs else f"ref {i}"},
                                output_text=outputs[i] if outputs else f"<i>answer {i} of {purpose}</i>",
                                reward=r, sub_rewards={"short": r, "has_a": (crit or {}).get(i, 0.5)},
                                samples=[{"output_text": "x", "reward": r}])
    return ev
