from django.urls import path

from . import views

app_name = "insights"
urlpatterns = [
    path("runs/<str:pk>/findings/", views.run_findings, name="run_findings"),
]
