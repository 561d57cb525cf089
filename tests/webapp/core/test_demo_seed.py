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
    assert answers == {"positive", "negative"}
    # Balanced splits: a run that collapses to one label scores 0.5 on validation, not more.
    for split, n in (("train", 30), ("valid", 10)):
        labels = [t.data["reference_answer"] for t in dataset.tasks.filter(split=split)]
        assert labels.count("positive") == labels.count("negative") == n, (split, labels)
    assert len({t.data["messages"][0]["content"] for t in dataset.tasks.all()}) == 80  # no repeated review
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
    wrong = run_grader(grader.spec, {"output_text": "negative"}, {"reference_answer": "positive"})
    assert wrong.reward == 0.25 and wrong.sub_rewards == {"correct_label": 0.0, "one_word": 1.0}


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
    assert {c.key: float(c.weight) for c in rubric.criteria} == {"correct_label": 3.0, "one_word": 1.0}
    two_words = run_grader(grader.spec, {"output_text": "Mostly positive"}, {"reference_answer": "positive"})
    assert two_words.sub_rewards["one_word"] == 0.0 and two_words.reward == 0.75
    # The base model's usual sentence names the label: the label counts, the length does not.
    sentence = run_grader(grader.spec, {"output_text": "This review is negative."}, {"reference_answer": "negative"})
    assert sentence.sub_rewards == {"correct_label": 1.0, "one_word": 0.0}
    hedged = run_grader(grader.spec, {"output_text": "positive or negative"}, {"reference_answer": "negative"})
    assert hedged.sub_rewards["correct_label"] == 0.0  # naming both labels picks neither
