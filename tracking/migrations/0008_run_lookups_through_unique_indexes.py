"""The run foreign keys of the tables every logging call writes lose their own indexes: each
table's unique constraint leads with run and serves the same look-ups. Only the indexes are
dropped (the constraints stay as they are, so no table is scanned to validate them again)."""

import django.db.models.deletion
from django.db import migrations, models

TABLES = {
    "latestmetric": ("latest_metrics", "tracking_latestmetric_run_id_dea11c9a"),
    "metric": ("metric_history", "tracking_metric_run_id_2d7b2d89"),
    "param": ("params", "tracking_param_run_id_f1876676"),
    "runtag": ("tags", "tracking_runtag_run_id_7c3de316"),
}


class Migration(migrations.Migration):
    dependencies = [
        ("tracking", "0007_latest_metric_history_version"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name=model,
                    name="run",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name=related_name,
                        to="tracking.run",
                    ),
                )
                for model, (related_name, _) in TABLES.items()
            ],
            database_operations=[
                migrations.RunSQL(
                    sql=[f'DROP INDEX IF EXISTS "{index}"', f'DROP INDEX IF EXISTS "{index}_like"'],
                    reverse_sql=[f'CREATE INDEX "{index}" ON "tracking_{model}" ("run_id")'],
                )
                for model, (_, index) in TABLES.items()
            ],
        ),
    ]
