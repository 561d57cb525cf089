from django.urls import path

from . import launch, views

app_name = "runs"
urlpatterns = [
    path("", views.run_list, name="list"),
    path("compare/", views.run_compare, name="compare"),
    path("new/", launch.run_launch, name="launch"),
    path("new/estimate/", launch.run_estimate, name="estimate"),
    path("new/preflight/<int:pk>/", launch.preflight_status, name="preflight"),
    path("<str:pk>/", views.run_detail, name="detail"),
    path("<str:pk>/live/", views.run_live, name="live"),
    path("<str:pk>/metrics.json", views.run_metrics, name="metrics"),
    path("<str:pk>/cancel/", views.run_cancel, name="cancel"),
    path("<str:pk>/pause/", views.run_pause, name="pause"),
    path("<str:pk>/resume/", views.run_resume, name="resume"),
    path("<str:pk>/checkpoints/<str:ckpt>/download/", views.checkpoint_download, name="checkpoint_download"),
    path("<str:pk>/samples/", views.sample_list, name="samples"),
    path("<str:pk>/samples/task/<str:task_key>/", views.sample_task, name="sample_task"),
    path("<str:pk>/samples/<int:sample_pk>/feedback/", views.sample_feedback, name="sample_feedback"),
    path("<str:pk>/samples/<int:sample_pk>/feedback/<int:feedback_pk>/delete/", views.sample_feedback_delete,
         name="sample_feedback_delete"),
]
