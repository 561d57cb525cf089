from django.urls import path

from . import views

app_name = "evals"
urlpatterns = [
    path("", views.evaluation_list, name="list"),
    path("new/", views.evaluation_new, name="new"),
    path("compare/", views.evaluation_compare, name="compare"),
    path("run/<str:run_pk>/summary/", views.run_summary, name="run_summary"),
    path("run/<str:run_pk>/evaluate/", views.run_evaluate, name="run_evaluate"),
    path("review/new/", views.ab_new, name="ab_new"),
    path("review/<int:pk>/", views.ab_review, name="ab_review"),
    path("review/<int:pk>/results/", views.ab_results, name="ab_results"),
    path("review/<int:pk>/calibrate/", views.ab_calibrate, name="ab_calibrate"),
    path("<str:pk>/", views.evaluation_detail, name="detail"),
    path("<str:pk>/progress/", views.evaluation_progress, name="progress"),
    path("<str:pk>/items/", views.evaluation_items, name="items"),
    path("<str:pk>/cancel/", views.evaluation_cancel, name="cancel"),
]
