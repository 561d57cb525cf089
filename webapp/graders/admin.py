from django.contrib import admin

from .models import Grader, GraderCheck


@admin.register(Grader)
class GraderAdmin(admin.ModelAdmin):
    list_display = ["name", "version", "project", "dataset", "locked_reason", "created_by", "created_at"]
    list_filter = ["project"]
    search_fields = ["id", "name", "project__name"]
    readonly_fields = ["id", "parent", "created_at"]
    raw_id_fields = ["project", "dataset", "created_by"]


@admin.register(GraderCheck)
class GraderCheckAdmin(admin.ModelAdmin):
    list_display = ["pk", "grader", "status", "checked", "total", "full_marks", "created_at"]
    list_filter = ["status"]
    readonly_fields = ["rewards", "failing"]
    raw_id_fields = ["grader", "dataset", "created_by"]
