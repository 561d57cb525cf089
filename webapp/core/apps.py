from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "webapp.core"
    label = "core"

    def ready(self) -> None:
        from django.contrib import admin

        admin.site.site_header = "RFT Studio administration"
        admin.site.site_title = "RFT Studio admin"
        admin.site.index_title = "Users, projects, judge endpoints and local base models"
