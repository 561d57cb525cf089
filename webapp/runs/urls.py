from django.urls import path

from . import launch

app_name = "runs"
urlpatterns = [
    path("new/", launch.run_launch, name="launch"),
    path("new/estimate/", launch.run_estimate, name="estimate"),
    path("new/preflight/<int:pk>/", launch.preflight_status, name="preflight"),
]
