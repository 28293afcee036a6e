"""Reads of the registry: lookups, `models:/` resolution, searches and MLflow wire payloads
(a fixed number of queries per page)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, cast

from django.db import connection
from django.db.models import Exists, F, Model, OuterRef, Q, QuerySet
from django.db.models import Field as DjangoField

from core import identifiers
from core.errors import InvalidParameterValue, ResourceDoesNotExist
from core.pagination import decode_page_token, encode_page_token, validate_max_results
from core.prepared import OneOrMany, PreparedQuery, server_prepared_cursor
from registry.models import (
    ModelVersion,
    ModelVersionTag,
    RegisteredModel,
    RegisteredModelAlias,
    RegisteredModelTag,
)
from registry.transitions import Stage, canonical_stage
from tracking.search import grammar as search_grammar
from tracking.search import registry as registry_search
from tracking.search import sql as search_sql

PROMPT_TAG = "mlflow.prompt.is_prompt"


_VERSION_OF_MODEL: PreparedQuery[ModelVersion] = PreparedQuery(
    lambda model_id, number: ModelVersion.objects.filter(
        registered_model_id=model_id, version=number, deleted=False
    ),
    int,
    int,
)
# What a model's or a version's payload holds, by one owner (prepared) or several.
_VERSION_TAGS = OneOrMany(
    lambda **where: ModelVersionTag.objects.filter(**where).values_list(
        "version_id", "key", "value"
    ),
    "version_id",
    int,
)
_VERSION_ALIASES = OneOrMany(
    lambda **where: RegisteredModelAlias.objects.filter(**where).values_list("version_id", "alias"),
    "version_id",
    int,
)


def registered_model_get(name: Any, *, for_update: bool = False) -> RegisteredModel:
    """The model a name names: parsed once (`core.identifiers`), found by its identity key, so
    every spelling the access layer accepted finds the same model here."""
    given = identifiers.model_name(name)
    qs = RegisteredModel.objects.select_for_update() if for_update else RegisteredModel.objects
    model = qs.filter(name_key=identifiers.name_key(given)).first()
    if model is None:
        raise ResourceDoesNotExist(f"Registered Model with name={given} not found")
    return model


def parse_version(version: Any) -> int:
    return identifiers.model_version(version)


def model_version_get(model: RegisteredModel, version: Any) -> ModelVersion:
    number = parse_version(version)
    mv = _VERSION_OF_MODEL.first(model.pk, number)
    if mv is None:
        raise ResourceDoesNotExist(f"Model Version (name={model.name}, version={number}) not found")
    mv.registered_model = model
    return mv


def model_version_by_name(name: Any, version: Any) -> ModelVersion:
    given = identifiers.model_name(name)
    number = parse_version(version)
    mv = (
        ModelVersion.objects.select_related("registered_model")
        .filter(
            registered_model__name_key=identifiers.name_key(given), version=number, deleted=False
        )
        .first()
    )
    if mv is None:
        registered_model_get(given)
        raise ResourceDoesNotExist(f"Model Version (name={given}, version={number}) not found")
    return mv


def latest_versions(model: RegisteredModel, stages: list[str]) -> list[ModelVersion]:
    """For each stage (every stage when none is given), the highest non-deleted version."""
    wanted = [canonical_stage(s) for s in stages] if stages else [s.value for s in Stage]
    newest: dict[str, ModelVersion] = {}
    for mv in ModelVersion.objects.filter(
        registered_model=model, deleted=False, current_stage__in=wanted
    ).order_by("-version"):
        mv.registered_model = model
        newest.setdefault(mv.current_stage, mv)
    return sorted(newest.values(), key=lambda mv: mv.version)


def resolve_model_uri(uri: Any, *, include_archived: bool = False) -> ModelVersion:
    """`models:/name/<Stage>`, `models:/name/latest`, `models:/name/<N>`, `models:/name@alias`
    to one version with one indexed lookup. Archived versions are never resolved by stage or
    `latest`, nor by number unless `include_archived`; an alias resolves to whatever version it
    points at, archived included, as in MLflow (the aliases a policy protects only ever point
    at the Production version). `uri` is raw input or an already parsed `identifiers.ModelUri`."""
    parsed = uri if isinstance(uri, identifiers.ModelUri) else identifiers.model_uri(uri)
    name = parsed.name
    base = ModelVersion.objects.select_related("registered_model").filter(
        registered_model__name_key=identifiers.name_key(name), deleted=False
    )
    if parsed.alias is not None:
        # MLflow semantics: the alias's version whatever its stage.
        mv = base.filter(aliases__alias=parsed.alias).first()
        what = f"version with alias '{parsed.alias}'"
    elif parsed.version is not None:
        mv = base.filter(version=parsed.version).first()
        if mv is not None and mv.current_stage == Stage.ARCHIVED and not include_archived:
            mv = None
        what = f"version {parsed.version}"
    elif parsed.latest:
        mv = base.exclude(current_stage=Stage.ARCHIVED).order_by("-version").first()
        what = "version that is not archived"
    else:
        stage = canonical_stage(parsed.stage)
        if stage == Stage.ARCHIVED:
            raise InvalidParameterValue("Archived versions are never resolved by stage.")
        mv = base.filter(current_stage=stage).order_by("-version").first()
        what = f"version in stage {stage}"
    if mv is None:
        if not RegisteredModel.objects.filter(name_key=identifiers.name_key(name)).exists():
            raise ResourceDoesNotExist(f"Registered Model with name={name} not found")
        raise ResourceDoesNotExist(f"Registered model '{name}' has no {what} to serve.")
    return mv


# ---------------------------------------------------------------------------------------------
# Wire payloads


def _version_payload(
    name: str, v: ModelVersion, tags: list[dict[str, str]], aliases: list[str] | None
) -> dict[str, Any]:
    """One MLflow `ModelVersion`, fields in MLflow's order; `aliases` None leaves them out (a
    registered model's `latest_versions` carry none)."""
    payload: dict[str, Any] = {
        "name": name,
        "version": str(v.version),
        "creation_timestamp": v.creation_timestamp,
        "last_updated_timestamp": v.last_updated_timestamp,
        "user_id": v.user_id,
        "current_stage": v.current_stage,
        "description": v.description,
        "source": v.source,
        "status": "READY",
        "tags": tags,
    }
    if aliases is not None:
        payload["aliases"] = sorted(aliases)
    if v.run_id:
        payload["run_id"] = v.run_id
    if v.run_link:
        payload["run_link"] = v.run_link
    if v.model_id:
        payload["model_id"] = v.model_id
    return payload


def version_payloads(versions: Sequence[ModelVersion]) -> list[dict[str, Any]]:
    ids = [v.pk for v in versions]
    tags: dict[int, list] = defaultdict(list)
    for vid, key, value in _VERSION_TAGS.rows(ids):
        tags[vid].append({"key": key, "value": value})
    aliases: dict[int, list] = defaultdict(list)
    for vid, alias in _VERSION_ALIASES.rows(ids):
        aliases[vid].append(alias)
    # Names of the models already loaded with their versions cost no query.
    names = {
        v.registered_model_id: v.registered_model.name
        for v in versions
        if ModelVersion.registered_model.is_cached(v)
    }
    missing = {v.registered_model_id for v in versions} - names.keys()
    if missing:
        names.update(RegisteredModel.objects.filter(pk__in=missing).values_list("pk", "name"))
    return [
        _version_payload(names[v.registered_model_id], v, tags.get(v.pk, []), aliases.get(v.pk, []))
        for v in versions
    ]


# The columns of a model version that a registered model's `latest_versions` show, in the
# order `_model_children_sql` reads them.
_LATEST_VERSION_FIELDS = (
    "id",
    "version",
    "creation_timestamp",
    "last_updated_timestamp",
    "user_id",
    "current_stage",
    "description",
    "source",
    "run_id",
    "run_link",
    "model_id",
)
# The kinds of row `_model_children_sql` returns.
_LATEST_VERSION, _MODEL_TAG, _MODEL_ALIAS, _LATEST_VERSION_TAG = 0, 1, 2, 3
_MODEL_CHILDREN_SQL: dict[str, str] = {}
_OWNERS = "<owners>"  # where the model ids' condition goes


def _model_children_sql(count: int) -> str:
    """One round trip for what `count` registered models' payloads hold besides the model
    rows, as rows of (kind, model id, version id, version number, creation and update
    timestamps, seven texts): the newest non-deleted version per stage (a grouped read of the
    models' version numbers picks them, so only those rows are read whole), the models' tags
    and aliases, and the newest versions' tags. The versions come first: their typed columns
    give the NULLs of the later branches their types on PostgreSQL. Parameters: the model ids,
    False (not deleted), the model ids twice more."""
    sql = _MODEL_CHILDREN_SQL.get(connection.vendor)
    if sql is None:
        quote = connection.ops.quote_name

        def table(model: type[Model]) -> str:
            return quote(model._meta.db_table)

        def col(alias: str, model: type[Model], name: str) -> str:
            field = model._meta.get_field(name)
            assert isinstance(field, DjangoField)  # a concrete column, not a reverse relation
            return f"{alias}.{quote(str(field.column))}"

        MV, MT, MA, VT = ModelVersion, RegisteredModelTag, RegisteredModelAlias, ModelVersionTag
        no_texts = ", ".join(["NULL"] * 5)
        latest = (
            f"SELECT {', '.join(col('v', MV, f) for f in _LATEST_VERSION_FIELDS)}, "
            f"{col('v', MV, 'registered_model')} AS owner "
            f"FROM {table(MV)} v INNER JOIN ("
            f"SELECT {col('n', MV, 'registered_model')} AS owner, "
            f"MAX({col('n', MV, 'version')}) AS newest FROM {table(MV)} n "
            f"WHERE {col('n', MV, 'registered_model')} {_OWNERS} "
            f"AND {col('n', MV, 'deleted')} = %s "
            f"GROUP BY {col('n', MV, 'registered_model')}, {col('n', MV, 'current_stage')}"
            f") newest ON {col('v', MV, 'registered_model')} = newest.owner "
            f"AND {col('v', MV, 'version')} = newest.newest"
        )
        sql = " UNION ALL ".join(
            [
                f"WITH latest AS ({latest}) SELECT {_LATEST_VERSION}, latest.owner, "
                + ", ".join(col("latest", MV, f) for f in _LATEST_VERSION_FIELDS)
                + " FROM latest",
                f"SELECT {_MODEL_TAG}, {col('t', MT, 'model')}, NULL, NULL, NULL, NULL, "
                f"{col('t', MT, 'key')}, {col('t', MT, 'value')}, {no_texts} "
                f"FROM {table(MT)} t WHERE {col('t', MT, 'model')} {_OWNERS}",
                f"SELECT {_MODEL_ALIAS}, {col('a', MA, 'model')}, NULL, {col('v', MV, 'version')}, "
                f"NULL, NULL, {col('a', MA, 'alias')}, NULL, {no_texts} "
                f"FROM {table(MA)} a INNER JOIN {table(MV)} v "
                f"ON {col('a', MA, 'version')} = {col('v', MV, 'id')} "
                f"WHERE {col('a', MA, 'model')} {_OWNERS}",
                f"SELECT {_LATEST_VERSION_TAG}, latest.owner, {col('t', VT, 'version')}, "
                f"NULL, NULL, NULL, {col('t', VT, 'key')}, {col('t', VT, 'value')}, {no_texts} "
                f"FROM {table(VT)} t INNER JOIN latest "
                f"ON {col('t', VT, 'version')} = {col('latest', MV, 'id')}",
            ]
        )
        _MODEL_CHILDREN_SQL[connection.vendor] = sql
    owners = "= %s" if count == 1 else f"IN ({', '.join(['%s'] * count)})"
    return sql.replace(_OWNERS, owners)


def model_payloads(models: Sequence[RegisteredModel]) -> list[dict[str, Any]]:
    """MLflow `RegisteredModel` dicts, in the given order, in one query for any number of
    models: `latest_versions` holds the newest version per stage ("None" included), by
    version number, each with its tags and without aliases (as MLflow answers)."""
    if not models:
        return []
    ids = [m.pk for m in models]
    tags: dict[int, list] = defaultdict(list)
    aliases: dict[int, list] = defaultdict(list)
    latest: dict[int, list[ModelVersion]] = defaultdict(list)
    version_tags: dict[int, list] = defaultdict(list)
    with server_prepared_cursor() as cursor:
        cursor.execute(_model_children_sql(len(ids)), [*ids, False, *ids, *ids])
        rows = cursor.fetchall()
    for kind, owner, version_id, number, created, updated, *texts in rows:
        if kind == _LATEST_VERSION:
            user_id, stage, description, source, run_id, run_link, model_id = texts
            latest[owner].append(
                ModelVersion(
                    id=version_id,
                    registered_model_id=owner,
                    version=number,
                    creation_timestamp=created,
                    last_updated_timestamp=updated,
                    user_id=user_id,
                    current_stage=stage,
                    description=description,
                    source=source,
                    run_id=run_id,
                    run_link=run_link,
                    model_id=model_id,
                )
            )
        elif kind == _MODEL_TAG:
            tags[owner].append({"key": texts[0], "value": texts[1]})
        elif kind == _MODEL_ALIAS:
            aliases[owner].append({"alias": texts[0], "version": str(number)})
        else:
            version_tags[version_id].append({"key": texts[0], "value": texts[1]})
    return [
        {
            "name": m.name,
            "creation_timestamp": m.creation_timestamp,
            "last_updated_timestamp": m.last_updated_timestamp,
            "user_id": m.user_id,
            "description": m.description,
            "latest_versions": [
                _version_payload(m.name, mv, version_tags.get(mv.pk, []), None)
                for mv in sorted(latest.get(m.pk, []), key=lambda mv: mv.version)
            ],
            "tags": tags.get(m.pk, []),
            "aliases": aliases.get(m.pk, []),
        }
        for m in models
    ]


# ---------------------------------------------------------------------------------------------
# Searches


def _tag_condition(tag_model, owner: str, c: search_grammar.Comparison) -> Q:
    rows = tag_model.objects.filter(**{owner: OuterRef("pk")}, key=c.key)
    if c.key == PROMPT_TAG and (
        (c.comparator == "!=" and c.value == "true") or (c.comparator == "=" and c.value == "false")
    ):
        # Prompts share the table; a model without the tag is not a prompt.
        return ~Q(Exists(rows.filter(value="true")))
    return Q(Exists(rows.filter(search_sql.string_condition("value", c.comparator, c.value))))


def models_search(
    *,
    filter_string: str | None,
    max_results: Any,
    order_by: list[str],
    page_token: str | None,
    readable: Q,
) -> tuple[list[RegisteredModel], str | None]:
    limit = validate_max_results(max_results, default=100, maximum=1000)
    scope = {
        "endpoint": "registered-models/search",
        "filter": filter_string or "",
        "order_by": order_by,
        "readable": str(readable),
    }
    offset = decode_page_token(page_token, scope)
    qs: QuerySet = RegisteredModel.objects.filter(readable)
    for c in registry_search.registry_comparisons(filter_string, "registered_model"):
        if c.entity == "tag":
            qs = qs.filter(_tag_condition(RegisteredModelTag, "model", c))
        else:
            qs = qs.filter(search_sql.string_condition("name", c.comparator, c.value))
    ordering = registry_search.parse_registry_order_by(
        order_by,
        {
            "name": "name",
            "timestamp": "last_updated_timestamp",
            "last_updated_timestamp": "last_updated_timestamp",
        },
    )
    fields = [F(col).asc() if asc else F(col).desc() for col, asc in ordering]
    if not any(col == "name" for col, _ in ordering):
        fields.append(F("name").asc())
    rows = list(qs.order_by(*fields)[offset : offset + limit + 1])
    token = encode_page_token(offset + limit, scope) if len(rows) > limit else None
    return rows[:limit], token


def versions_search(
    *,
    filter_string: str | None,
    max_results: Any,
    order_by: list[str],
    page_token: str | None,
    readable: Q,
) -> tuple[list[ModelVersion], str | None]:
    limit = validate_max_results(max_results, default=200_000, maximum=200_000)
    scope = {
        "endpoint": "model-versions/search",
        "filter": filter_string or "",
        "order_by": order_by,
        "readable": str(readable),
    }
    offset = decode_page_token(page_token, scope)
    qs: QuerySet = ModelVersion.objects.filter(readable, deleted=False)
    columns = {"name": "registered_model__name", "run_id": "run_id", "source_path": "source"}
    for c in registry_search.registry_comparisons(filter_string, "model_version"):
        if c.entity == "tag":
            qs = qs.filter(_tag_condition(ModelVersionTag, "version", c))
        elif c.key == "version_number":
            # The grammar only admits a number after version_number.
            bound = cast(float, c.value)
            qs = qs.filter(
                search_sql.number_condition("version", c.comparator, bound, integer=True)
            )
        else:
            qs = qs.filter(search_sql.string_condition(columns[c.key], c.comparator, c.value))
    ordering = registry_search.parse_registry_order_by(
        order_by,
        {
            "name": "registered_model__name",
            "version_number": "version",
            "creation_timestamp": "creation_timestamp",
            "last_updated_timestamp": "last_updated_timestamp",
            "timestamp": "last_updated_timestamp",
        },
    )
    fields = [F(col).asc() if asc else F(col).desc() for col, asc in ordering]
    if not ordering:
        fields = [
            F("last_updated_timestamp").desc(),
            F("registered_model__name").asc(),
            F("version").desc(),
        ]
    fields.append(F("pk").asc())
    rows = list(qs.order_by(*fields)[offset : offset + limit + 1])
    token = encode_page_token(offset + limit, scope) if len(rows) > limit else None
    return rows[:limit], token
