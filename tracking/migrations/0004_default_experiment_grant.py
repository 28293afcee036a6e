from django.db import migrations


def grant(apps, schema_editor):
    # The Default experiment (0) is the shared scratch space `mlflow.start_run()` logs to
    # when no experiment is set: data scientists may write there.
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("tracking", "ExperimentPermission")
    group, _ = Group.objects.get_or_create(name="data-scientist")
    Permission.objects.get_or_create(experiment_id=0, group=group, defaults={"level": "EDIT"})


class Migration(migrations.Migration):
    dependencies = [
        ("tracking", "0003_experiment_permissions"),
        ("accounts", "0002_roles"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
