"""What happened: experiments, runs and everything logged to them.

Times are epoch milliseconds (BigIntegerField), as on the MLflow wire, so that search and
ordering compare integers and nothing is converted per row on the hot paths."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Left


class LifecycleStage(models.TextChoices):
    ACTIVE = "active"
    DELETED = "deleted"


class RunStatus(models.TextChoices):
    RUNNING = "RUNNING"
    SCHEDULED = "SCHEDULED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"


class LoggedModelStatus(models.TextChoices):
    PENDING = "LOGGED_MODEL_PENDING"
    READY = "LOGGED_MODEL_READY"
    FAILED = "LOGGED_MODEL_UPLOAD_FAILED"


# Tag and param values can be thousands of characters: too long for a btree entry on
# PostgreSQL. Equality and prefix searches use an index on this many leading characters and
# then compare the full value.
VALUE_INDEX_PREFIX = 200


class Experiment(models.Model):
    experiment_id = models.BigAutoField(primary_key=True)
    name = models.CharField(max_length=500, unique=True)
    # casefold(NFKC(name)): "Fraud", "fraud" and "ｆｒａｕｄ" are one identity.
    name_key = models.CharField(max_length=500, unique=True, null=True)  # noqa: DJ001 - NULL only before backfill
    artifact_location = models.CharField(max_length=1000)
    lifecycle_stage = models.CharField(
        max_length=16, choices=LifecycleStage.choices, default=LifecycleStage.ACTIVE
    )
    creation_time = models.BigIntegerField()
    last_update_time = models.BigIntegerField()
    created_by = models.CharField(max_length=256, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["lifecycle_stage", "-creation_time"], name="exp_stage_ctime_idx")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.experiment_id})"


class ExperimentTag(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="tags")
    key = models.CharField(max_length=250)
    value = models.TextField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experiment", "key"], name="uniq_experiment_tag")
        ]
        indexes = [models.Index("key", Left("value", VALUE_INDEX_PREFIX), name="exptag_kv_idx")]


class Run(models.Model):
    run_id = models.CharField(max_length=32, primary_key=True)
    experiment = models.ForeignKey(Experiment, on_delete=models.PROTECT, related_name="runs")
    name = models.CharField(max_length=250, blank=True)
    user_id = models.CharField(max_length=256, blank=True)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING)
    start_time = models.BigIntegerField()
    end_time = models.BigIntegerField(null=True, blank=True)
    lifecycle_stage = models.CharField(
        max_length=16, choices=LifecycleStage.choices, default=LifecycleStage.ACTIVE
    )
    deleted_time = models.BigIntegerField(null=True, blank=True)
    artifact_uri = models.CharField(max_length=1000)

    class Meta:
        indexes = [
            # The default search order within experiments: start_time DESC, run_id ASC.
            models.Index(
                fields=["experiment", "lifecycle_stage", "-start_time", "run_id"],
                name="run_exp_stage_start_idx",
            ),
            models.Index(fields=["experiment", "name"], name="run_exp_name_idx"),
        ]

    def __str__(self) -> str:
        return self.run_id


class Param(models.Model):
    # No index of its own (nor Django's varchar_pattern_ops twin): the unique constraint's
    # index leads with run and serves every look-up by run; two more only cost each write.
    # The same for RunTag, Metric and LatestMetric, the tables every logging call writes.
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="params", db_index=False)
    key = models.CharField(max_length=250)
    value = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="uniq_run_param")]
        indexes = [models.Index("key", Left("value", VALUE_INDEX_PREFIX), name="param_kv_idx")]


class RunTag(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="tags", db_index=False)
    key = models.CharField(max_length=250)
    value = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="uniq_run_tag")]
        indexes = [models.Index("key", Left("value", VALUE_INDEX_PREFIX), name="runtag_kv_idx")]


class Metric(models.Model):
    """Every logged point. NaN is stored as value 0 with is_nan set, because SQLite turns a
    NaN REAL into NULL; infinities are stored as they are."""

    id = models.BigAutoField(primary_key=True)
    # The point's run must exist: kept by triggers rather than a foreign-key constraint
    # (tracking migration 0011), which checked (and locked) the run once per inserted point,
    # about half of what PostgreSQL spent storing a log-batch of 1,000 points; the trigger
    # checks and locks each run once per statement.
    run = models.ForeignKey(
        Run,
        on_delete=models.CASCADE,
        related_name="metric_history",
        db_index=False,
        db_constraint=False,
    )
    key = models.CharField(max_length=250)
    value = models.FloatField()
    is_nan = models.BooleanField(default=False)
    timestamp = models.BigIntegerField()
    step = models.BigIntegerField(default=0)
    model_id = models.CharField(max_length=64, blank=True, default="")
    dataset_name = models.CharField(max_length=500, blank=True, default="")
    dataset_digest = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        constraints = [
            # A re-sent point (the client re-logs metrics with model_id after log_model) is
            # the same point: inserts ignore conflicts on this identity.
            models.UniqueConstraint(
                fields=["run", "key", "timestamp", "step", "value", "is_nan"],
                name="uniq_metric_point",
            )
        ]
        indexes = [models.Index(fields=["model_id"], name="metric_model_idx")]


class LatestMetric(models.Model):
    """The latest value per (run, key): the largest (step, timestamp, value). Searches and
    run payloads read this table, never the history."""

    run = models.ForeignKey(
        Run, on_delete=models.CASCADE, related_name="latest_metrics", db_index=False
    )
    key = models.CharField(max_length=250)
    value = models.FloatField()
    is_nan = models.BooleanField(default=False)
    timestamp = models.BigIntegerField()
    step = models.BigIntegerField(default=0)
    # Raised by every write of points for this key, by the number of points it sent (re-sent
    # ones included), in the statement that stores them; never lowered. A chart sampled from
    # the history at one version still shows every point while the version stays the same.
    history_version = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="uniq_latest_metric")]
        indexes = [models.Index(fields=["key", "value"], name="latest_metric_kv_idx")]


class ExperimentKey(models.Model):
    """A metric, param or tag key an active run of the experiment has: what the runs table's
    column chooser offers, read without reading the runs' rows (on a shared server most rows
    with a given key belong to other experiments). Kept by triggers (migration 0009),
    whatever writes: a latest metric, param or tag row inserted for an active run adds its
    key; a run deleted takes out its keys no other active run has, a run restored brings
    them back. Not unique: a trigger adds a key it does not find, so that concurrent writers
    never wait on each other, and two may add it at once."""

    class Kind(models.TextChoices):
        METRIC = "metric"
        PARAM = "param"
        TAG = "tag"

    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    kind = models.CharField(max_length=6, choices=Kind.choices)
    key = models.CharField(max_length=250)

    class Meta:
        indexes = [models.Index(fields=["experiment", "kind", "key"], name="experiment_key_idx")]


class Dataset(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=500)
    digest = models.CharField(max_length=36)
    source_type = models.CharField(max_length=36, blank=True)
    source = models.TextField(blank=True)
    schema = models.TextField(blank=True)
    profile = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "name", "digest"], name="uniq_dataset_per_experiment"
            )
        ]
        indexes = [models.Index(fields=["name", "digest"], name="dataset_name_digest_idx")]


class RunInput(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="dataset_inputs")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="run_inputs")
    # Copied from the `mlflow.data.context` input tag so searches need no extra join.
    context = models.CharField(max_length=500, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "dataset"], name="uniq_run_dataset_input")
        ]


class RunInputTag(models.Model):
    run_input = models.ForeignKey(RunInput, on_delete=models.CASCADE, related_name="tags")
    key = models.CharField(max_length=255)
    value = models.CharField(max_length=500)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run_input", "key"], name="uniq_run_input_tag")
        ]


class LoggedModel(models.Model):
    model_id = models.CharField(max_length=64, primary_key=True)
    experiment = models.ForeignKey(
        Experiment, on_delete=models.PROTECT, related_name="logged_models"
    )
    name = models.CharField(max_length=500)
    model_type = models.CharField(max_length=500, blank=True)
    source_run = models.ForeignKey(
        Run, on_delete=models.SET_NULL, null=True, blank=True, related_name="logged_models"
    )
    # A `source_run_id` that names no run of this model's experiment: MLflow stores any
    # value, so Custody reports it as given, but it links nothing (no lineage edge, and a
    # version registered from the model does not inherit it as its run).
    source_run_reference = models.CharField(max_length=256, blank=True)
    status = models.CharField(
        max_length=32, choices=LoggedModelStatus.choices, default=LoggedModelStatus.PENDING
    )
    status_message = models.TextField(blank=True)
    creation_timestamp = models.BigIntegerField()
    last_updated_timestamp = models.BigIntegerField()
    artifact_uri = models.CharField(max_length=1000)
    lifecycle_stage = models.CharField(
        max_length=16, choices=LifecycleStage.choices, default=LifecycleStage.ACTIVE
    )
    creator_id = models.CharField(max_length=256, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["experiment", "lifecycle_stage", "-creation_timestamp"],
                name="lm_exp_ctime_idx",
            ),
            models.Index(fields=["experiment", "name"], name="lm_exp_name_idx"),
        ]


class LoggedModelTag(models.Model):
    model = models.ForeignKey(LoggedModel, on_delete=models.CASCADE, related_name="tags")
    key = models.CharField(max_length=250)
    value = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "key"], name="uniq_lm_tag")]


class LoggedModelParam(models.Model):
    model = models.ForeignKey(LoggedModel, on_delete=models.CASCADE, related_name="params")
    key = models.CharField(max_length=250)
    value = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "key"], name="uniq_lm_param")]


class RunOutput(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="model_outputs")
    model = models.ForeignKey(LoggedModel, on_delete=models.CASCADE, related_name="outputs")
    step = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "model", "step"], name="uniq_run_output")
        ]


class RunModelInput(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="model_inputs")
    model = models.ForeignKey(LoggedModel, on_delete=models.CASCADE, related_name="inputs")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "model"], name="uniq_run_model_input")
        ]


class PermissionLevel(models.TextChoices):
    NONE = "NONE"
    READ = "READ"
    EDIT = "EDIT"
    MANAGE = "MANAGE"


class ExperimentPermission(models.Model):
    """A grant on one experiment to one user or one group (a role). Runs, their artifacts and
    the experiment's logged models follow the experiment's grants."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="permissions")
    user = models.ForeignKey(
        "auth.User", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    group = models.ForeignKey(
        "auth.Group", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    level = models.CharField(max_length=8, choices=PermissionLevel.choices)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(user__isnull=False, group__isnull=True)
                | models.Q(user__isnull=True, group__isnull=False),
                name="experiment_grant_user_xor_group",
            ),
            models.UniqueConstraint(
                fields=["experiment", "user"],
                condition=models.Q(user__isnull=False),
                name="uniq_experiment_user_grant",
            ),
            models.UniqueConstraint(
                fields=["experiment", "group"],
                condition=models.Q(group__isnull=False),
                name="uniq_experiment_group_grant",
            ),
        ]

    def __str__(self) -> str:
        who = f"user {self.user_id}" if self.user_id else f"group {self.group_id}"
        return f"{who}: {self.level} on experiment {self.experiment_id}"
