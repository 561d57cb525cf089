from django.core.management import call_command

from webapp.datasets.models import Dataset
from webapp.projects.models import Project


def test_seed_demo_is_idempotent_and_has_60_train_20_valid(db, monkeypatch, capsys):
    monkeypatch.setenv("STUDIO_ADMIN_PASSWORD", "pw-demo-12345")
    call_command("ensure_admin")
    call_command("seed_demo")
    call_command("seed_demo")
    project = Project.objects.get(slug="demo")
    dataset = Dataset.objects.get(project=project)
    assert dataset.tasks.filter(split="train").count() == 60
    assert dataset.tasks.filter(split="valid").count() == 20
    answers = {t.data["reference_answer"] for t in dataset.tasks.all()}
    assert answers == {"billing", "shipping", "technical", "account"}
    assert project.memberships.get().user.username == "admin"


def test_demo_grader_gives_reference_answers_full_marks(db, monkeypatch):
    from trainer.grading import run_grader
    from webapp.graders.models import Grader

    monkeypatch.setenv("STUDIO_ADMIN_PASSWORD", "pw-demo-12345")
    call_command("ensure_admin")
    call_command("seed_demo")
    grader = Grader.objects.get(project__slug="demo")
    for task in Dataset.objects.get(project__slug="demo").tasks.all():
        result = run_grader(grader.spec, {"output_text": task.data["reference_answer"]}, task.data)
        assert result.reward == 1.0, (task.data, result)
    wrong = run_grader(grader.spec, {"output_text": "shipping"}, {"reference_answer": "billing"})
    assert wrong.reward == 0.25 and wrong.sub_rewards == {"correct_category": 0.0, "one_word": 1.0}


def test_demo_rubric_weights_are_the_weights_used_and_one_word_means_one(db, monkeypatch):
    from trainer.grading import run_grader
    from webapp.graders.models import Grader
    from webapp.graders.rubric import rubric_from_grader

    monkeypatch.setenv("STUDIO_ADMIN_PASSWORD", "pw-demo-12345")
    call_command("ensure_admin")
    call_command("seed_demo")
    grader = Grader.objects.get(project__slug="demo")
    rubric = rubric_from_grader(grader.spec, grader.rubric)
    assert rubric.combine == "weighted_mean"  # the builder's weighted mean, not a custom formula
    assert {c.key: float(c.weight) for c in rubric.criteria} == {"correct_category": 3.0, "one_word": 1.0}
    two_words = run_grader(grader.spec, {"output_text": "billing issue"}, {"reference_answer": "billing"})
    assert two_words.sub_rewards["one_word"] == 0.0 and two_words.reward == 0.75
