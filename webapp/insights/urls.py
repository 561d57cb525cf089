from django.urls import path

from . import views

app_name = "insights"
urlpatterns = [
    path("runs/<str:pk>/findings/", views.run_findings, name="run_findings"),
    path("runs/<str:pk>/regrade/", views.regrade_start, name="regrade"),
    path("datasets/<int:pk>/difficulty/", views.difficulty, name="difficulty"),
    path("datasets/<int:pk>/difficulty/start/", views.difficulty_start, name="difficulty_start"),
    path("difficulty/<int:profile_pk>/", views.difficulty_status, name="difficulty_status"),
    path("difficulty/<int:profile_pk>/apply/", views.difficulty_apply, name="difficulty_apply"),
    path("difficulty/<int:profile_pk>/review/", views.difficulty_review, name="difficulty_review"),
]
