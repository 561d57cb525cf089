from django import forms
from django.contrib import admin

from webapp.core import crypto

from .models import Grader, GraderCheck, JudgeEndpoint


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


class JudgeEndpointForm(forms.ModelForm):
    api_key = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False),
                              help_text="Stored on the server and never shown again; leave empty to keep the current key.")

    class Meta:
        model = JudgeEndpoint
        fields = ["name", "base_url", "model", "api_key", "timeout_s"]

    def save(self, commit=True):
        if self.cleaned_data.get("api_key"):  # empty: keep the stored key
            self.instance.api_key = self.cleaned_data["api_key"]  # encrypted by the model
        return super().save(commit)


@admin.register(JudgeEndpoint)
class JudgeEndpointAdmin(admin.ModelAdmin):
    form = JudgeEndpointForm
    list_display = ["name", "base_url", "model", "has_key", "updated_at"]

    @admin.display(description="key")
    def has_key(self, obj):
        if not obj.api_key_encrypted:
            return "none"
        try:
            obj.api_key  # noqa: B018 - only checks that it decrypts
        except crypto.DecryptionError:
            return "unreadable (SECRET_KEY changed): enter it again"
        return "set"
