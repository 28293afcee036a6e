from django.db import migrations, models


def create_rows(apps, schema_editor):
    CacheVersion = apps.get_model("core", "CacheVersion")
    for name in ("access", "resolution", "throttle"):
        CacheVersion.objects.get_or_create(name=name, defaults={"version": 0})


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="CacheVersion",
            fields=[
                ("name", models.CharField(max_length=32, primary_key=True, serialize=False)),
                ("version", models.BigIntegerField(default=0)),
            ],
        ),
        migrations.RunPython(create_rows, migrations.RunPython.noop),
    ]
