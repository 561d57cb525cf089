import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Create the `admin` superuser if no superuser exists. The password comes from "
        "STUDIO_ADMIN_PASSWORD, or is generated and printed once."
    )

    def handle(self, *args, **options):
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            names = ", ".join(User.objects.filter(is_superuser=True).values_list("username", flat=True))
            self.stdout.write(f"Admin account exists ({names}); log in with the password set earlier.")
            return
        password = os.environ.get("STUDIO_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        User.objects.create_superuser("admin", email="", password=password)
        shown = "from STUDIO_ADMIN_PASSWORD" if os.environ.get("STUDIO_ADMIN_PASSWORD") else password
        self.stdout.write(self.style.SUCCESS(
            f"Created admin account: username `admin`, password {shown} (printed only this once)."
        ))
