from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from webapp.core import views as core_views

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="projects:list", permanent=False), name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/", include("webapp.accounts.urls")),
    path("p/", include("webapp.projects.urls")),
    path("p/<slug:slug>/datasets/", include("webapp.datasets.urls")),
    path("p/<slug:slug>/runs/", include("webapp.runs.urls")),
    path("p/<slug:slug>/graders/", include("webapp.graders.urls")),
    path("p/<slug:slug>/insights/", include("webapp.insights.urls")),
    path("p/<slug:slug>/reviews/", include("webapp.reviews.urls")),
    path("p/<slug:slug>/evals/", include("webapp.evals.urls")),
    path("p/<slug:slug>/playground/", include("webapp.evals.playground_urls")),
    path("system/", core_views.system_status, name="system_status"),
    path("system/ping/", core_views.system_ping, name="system_ping"),
    path("system/ping/<int:pk>/", core_views.system_ping_status, name="system_ping_status"),
    path("system/pings/", core_views.system_recent_pings, name="system_recent_pings"),
    path("healthz", core_views.healthz, name="healthz"),
    path("favicon.ico", core_views.favicon, name="favicon"),
    path("v1/", include("webapp.api_urls")),
    path("admin/", admin.site.urls),
]

handler404 = "webapp.core.views.not_found"
