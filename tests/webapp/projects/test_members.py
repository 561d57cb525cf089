from django.urls import reverse

from webapp.projects.models import Membership, Role


def test_owner_adds_changes_and_removes_members(project_with_roles, client_for, make_user):
    project, users = project_with_roles
    newcomer = make_user("newcomer")
    client = client_for(users["owner"])
    response = client.post(reverse("projects:member_add", args=[project.slug]), {"username": "newcomer", "role": "editor"})
    assert response.status_code == 302
    membership = Membership.objects.get(project=project, user=newcomer)
    assert membership.role == Role.EDITOR
    page = client.get(reverse("projects:members", args=[project.slug])).content.decode()
    assert "newcomer" in page and "added as editor" in page

    client.post(reverse("projects:member_role", args=[project.slug, membership.pk]), {"role": "viewer"})
    membership.refresh_from_db()
    assert membership.role == Role.VIEWER
    client.post(reverse("projects:member_remove", args=[project.slug, membership.pk]))
    assert not Membership.objects.filter(pk=membership.pk).exists()


def test_add_member_errors_are_clear(project_with_roles, client_for, make_user):
    project, users = project_with_roles
    client = client_for(users["owner"])
    url = reverse("projects:member_add", args=[project.slug])
    assert "No active user called “ghost”" in client.post(url, {"username": "ghost", "role": "viewer"}).content.decode()
    assert "already a member" in client.post(url, {"username": "viewer-user", "role": "viewer"}).content.decode()
    make_user("gone", is_active=False)
    assert "No active user called “gone”" in client.post(url, {"username": "gone", "role": "viewer"}).content.decode()


def test_last_owner_cannot_leave_or_be_demoted(project_with_roles, client_for):
    project, users = project_with_roles
    owner = Membership.objects.get(project=project, user=users["owner"])
    client = client_for(users["owner"])
    client.post(reverse("projects:member_role", args=[project.slug, owner.pk]), {"role": "viewer"})
    client.post(reverse("projects:member_remove", args=[project.slug, owner.pk]))
    owner.refresh_from_db()
    assert owner.role == Role.OWNER
    page = client.get(reverse("projects:members", args=[project.slug])).content.decode()
    assert "must keep at least one owner" in page


def test_superuser_sees_every_project_as_owner(project_with_roles, client_for, make_user):
    project, _ = project_with_roles
    admin = make_user("root", is_superuser=True, is_staff=True)
    assert client_for(admin).get(reverse("projects:members", args=[project.slug])).status_code == 200
    assert "Add a member" in client_for(admin).get(reverse("projects:members", args=[project.slug])).content.decode()


def test_create_project_makes_creator_owner_with_unique_slug(client_for, make_user):
    user = make_user("maker")
    client = client_for(user)
    client.post(reverse("projects:create"), {"name": "Radiology"})
    response = client.post(reverse("projects:create"), {"name": "Radiology"})
    assert response.url == reverse("projects:detail", args=["radiology-2"])
    assert Membership.objects.filter(user=user, role=Role.OWNER).count() == 2


def test_project_page_shows_latest_runs_and_new_run_for_editors(project_with_roles, client_for, dataset):
    from tests.webapp.runs.factories import make_run
    from webapp.graders.services import grader_create

    project, users = project_with_roles
    run = make_run(project, dataset, users["owner"], steps=2)
    grader_create(project=project, name="Exact", user=None, dataset=dataset, spec={
        "type": "string_check", "name": "exact", "operation": "eq",
        "input": "{{sample.output_text}}", "reference": "{{item.reference_answer}}"})
    editor_page = client_for(users["editor"]).get(reverse("projects:detail", args=[project.slug])).content.decode()
    assert reverse("runs:detail", args=[project.slug, run.pk]) in editor_page and "New run" in editor_page
    viewer_page = client_for(users["viewer"]).get(reverse("projects:detail", args=[project.slug])).content.decode()
    assert reverse("runs:detail", args=[project.slug, run.pk]) in viewer_page and "New run" not in viewer_page


def test_an_empty_project_leads_to_tasks_first_then_a_grader(project_with_roles, client_for):
    from tests.helpers import jsonl, rft_row
    from webapp.datasets.services import Upload, dataset_import_jsonl

    project, users = project_with_roles
    editor = client_for(users["editor"])
    page = editor.get(reverse("projects:detail", args=[project.slug])).content.decode()
    assert 'id="get-started"' in page and "New run" not in page
    assert reverse("datasets:upload", args=[project.slug]) in page
    assert reverse("graders:new", args=[project.slug]) not in page  # tasks come first
    data = jsonl([rft_row("2+2?", "4")])
    dataset_import_jsonl(project=project, name="Sums", user=users["owner"],
                         train=Upload("s.jsonl", len(data), lambda: data), holdout_percent=0)
    page = editor.get(reverse("projects:detail", args=[project.slug])).content.decode()
    assert reverse("graders:new", args=[project.slug]) in page and "New run" not in page
    viewer_page = client_for(users["viewer"]).get(reverse("projects:detail", args=[project.slug])).content.decode()
    assert 'id="get-started"' not in viewer_page  # viewers cannot act on it


def test_a_403_logs_one_line_without_a_traceback(project_with_roles, client_for, caplog):
    import logging

    project, users = project_with_roles
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client_for(users["viewer"]).post(reverse("projects:member_add", args=[project.slug]),
                                                    {"username": "x", "role": "viewer"})
    assert response.status_code == 403
    [record] = [r for r in caplog.records if r.name == "django.request"]
    assert "Forbidden" in record.getMessage() and record.exc_info is None
