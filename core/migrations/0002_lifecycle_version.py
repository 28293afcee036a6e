"""The `lifecycle` cache family's version row (core.process_cache), which triggers on the
tracking tables keep (tracking migration 0010)."""

from django.db import migrations


def create_row(apps, schema_editor):
    CacheVersion = apps.get_model("core", "CacheVersion")
    CacheVersion.objects.get_or_create(name="lifecycle", defaults={"version": 0})


class Migration(migrations.Migration):
    dependencies = [("core", "0001_cache_versions")]

    operations = [migrations.RunPython(create_row, migrations.RunPython.noop)]
