"""Judge endpoints' API keys: encrypted at rest (webapp.core.crypto) instead of plaintext."""

from django.db import migrations, models


def encrypt_keys(apps, schema_editor):
    from webapp.core import crypto

    for endpoint in apps.get_model("graders", "JudgeEndpoint").objects.all():
        if endpoint.api_key:
            endpoint.api_key_encrypted = crypto.encrypt(endpoint.api_key)
            endpoint.save(update_fields=["api_key_encrypted"])


def decrypt_keys(apps, schema_editor):
    from webapp.core import crypto

    for endpoint in apps.get_model("graders", "JudgeEndpoint").objects.all():
        if endpoint.api_key_encrypted:
            endpoint.api_key = crypto.decrypt(endpoint.api_key_encrypted)[:500]
            endpoint.save(update_fields=["api_key"])


class Migration(migrations.Migration):
    dependencies = [("graders", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="judgeendpoint",
            name="api_key_encrypted",
            field=models.TextField(blank=True, default="", editable=False),
        ),
        migrations.RunPython(encrypt_keys, decrypt_keys),
        migrations.RemoveField(model_name="judgeendpoint", name="api_key"),
    ]
