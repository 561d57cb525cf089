from django.urls import path

from . import views

app_name = "datasets"
urlpatterns = [
    path("new/", views.dataset_upload, name="upload"),
    path("new/csv/<str:token>/", views.dataset_csv_map, name="csv_map"),
    path("<int:pk>/", views.dataset_detail, name="detail"),
    path("<int:pk>/download.jsonl", views.dataset_download, name="download"),
    path("<int:pk>/duplicate/", views.dataset_duplicate, name="duplicate"),
    path("<int:pk>/delete/", views.dataset_delete, name="delete"),
    path("<int:pk>/tasks/new/", views.task_new, name="task_new"),
    path("<int:pk>/tasks/preview/", views.task_preview, name="task_preview"),
    path("<int:pk>/tasks/<int:task_pk>/", views.task_detail, name="task_detail"),
    path("<int:pk>/tasks/<int:task_pk>/row/", views.task_row, name="task_row"),
    path("<int:pk>/tasks/<int:task_pk>/edit/", views.task_edit, name="task_edit"),
    path("<int:pk>/tasks/<int:task_pk>/delete/", views.task_delete, name="task_delete"),
]
