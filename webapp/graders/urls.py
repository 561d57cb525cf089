from django.urls import path

from . import views

app_name = "graders"
urlpatterns = [
    path("", views.grader_list, name="list"),
    path("new/", views.grader_new, name="new"),
    path("import/", views.grader_import, name="import"),
    path("builder/criterion/", views.builder_criterion, name="builder_criterion"),
    path("builder/fields/", views.builder_fields, name="builder_fields"),
    path("builder/formula/", views.builder_formula, name="builder_formula"),
    path("<str:pk>/", views.grader_detail, name="detail"),
    path("<str:pk>/edit/", views.grader_edit, name="edit"),
    path("<str:pk>/edit/json/", views.grader_edit_json, name="edit_json"),
    path("<str:pk>/delete/", views.grader_delete, name="delete"),
    path("<str:pk>/try/", views.grader_try, name="try"),
    path("<str:pk>/check/", views.grader_check, name="check"),
    path("<str:pk>/check/<int:check_pk>/", views.grader_check_status, name="check_status"),
]
