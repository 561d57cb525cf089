from django import forms

from .models import Role


class ProjectForm(forms.Form):
    name = forms.CharField(max_length=120)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)


class MemberAddForm(forms.Form):
    username = forms.CharField(max_length=150, help_text="An existing user's username.")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.EDITOR)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
