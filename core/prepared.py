"""Hot queries compiled to SQL once per process.

Building a queryset and compiling it costs the ORM about 0.2–0.3 ms of CPU per query, more
than the database spends answering a primary-key look-up; on the hot routes that was the
largest share of a request (docs/performance.md). A `PreparedQuery` is written as an ordinary
queryset, compiled the first time it runs on a database, and afterwards runs the same SQL with
the new parameter values: the model and its migrations stay the one description of the
tables, and the rows come back through the ORM's own converters (so SQLite's and
PostgreSQL's types read the same).

Only simple shapes are accepted, each checked when the query is first compiled: a
`values_list()` query, or a query of whole model rows without `select_related`, `defer` or
annotations. Each parameter of `build` must reach the SQL as one placeholder value
unchanged (a primary key, a name, a foreign key); `__in` lists and expressions computed from
a parameter are refused, since their SQL would differ from one call to the next.

On PostgreSQL a hot statement is also prepared on the server (`server_prepared_cursor`):
Django binds parameters on the client, so every execution would otherwise be parsed and
planned again; for the seven-branch read of a run's payload planning was four times its
execution (0.28 against 0.07 ms).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

import psycopg
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.db.backends.postgresql import base as postgresql
from django.db.backends.utils import CursorWrapper
from django.db.models import Model, QuerySet
from django.db.models.query import FlatValuesListIterable, ModelIterable, ValuesListIterable
from django.db.models.sql import InsertQuery

T = TypeVar("T")


@contextmanager
def server_prepared_cursor(alias: str = "default") -> Iterator[Any]:
    """A cursor whose statements PostgreSQL parses and plans once per connection: parameters
    are bound on the server and each statement text is prepared on its first execution
    (psycopg keeps them by text and parameter types, at most `prepared_max` per connection,
    and prepares again after a schema change). Elsewhere, the connection's own cursor.

    It is wrapped as Django wraps its cursors, so the statements are logged, counted by
    query-count tests and the request log, and their errors mapped to Django's. The SQL must
    suit server-side binding: each `%s` a value PostgreSQL can type from its context or a
    cast (as the ORM's SQL and the hot statements here do). Prepared statements belong to
    their session: behind a pooler, session pooling (docs/operations.md)."""
    connection = connections[alias]
    if connection.vendor == "postgresql":
        connection.close_if_health_check_failed()
        connection.ensure_connection()
    if connection.vendor != "postgresql" or connection.connection.prepare_threshold is None:
        # SQLite; or a PostgreSQL backend other than core.postgresql, with preparing off
        with connection.cursor() as cursor:
            yield cursor
        return
    connection.validate_thread_sharing()
    with connection.wrap_database_errors:
        raw = _PreparingCursor(connection.connection)
    wrapper = _LoggedPrepared if connection.queries_logged else CursorWrapper
    with wrapper(raw, connection) as cursor:
        yield cursor


class _PreparingCursor(psycopg.Cursor):
    """Binds on the server and prepares every statement it runs."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=True, binary=binary)


class _LoggedPrepared(postgresql.CursorDebugWrapper):
    """Django's query log (DEBUG, query-count tests) with the statement and its values.
    Django renders a logged statement from what the cursor last sent, which it cannot read
    from a server-binding cursor; here it is rendered as a client-side cursor would send it."""

    def execute(self, sql, params=None):
        try:
            shown = self.db.ops.compose_sql(sql, params)
        except psycopg.DataError:
            shown = sql
        with self.debug_sql(shown):
            return self._execute_with_wrappers(sql, params, many=False, executor=self._execute)


# Stand-ins given to `build` while compiling, twice with different values: a placeholder whose
# value follows the stand-in is that argument's; one that stays the same is a constant. They
# are small positive numbers so that every integer field's range check accepts them.
def _sentinels(kinds: tuple[type, ...], round_: int) -> list[Any]:
    return [
        20_000 + 100 * round_ + index if kind is int else f"\x1fprepared-{round_}-{index}\x1f"
        for index, kind in enumerate(kinds)
    ]


class _Compiled:
    __slots__ = (
        "sql",
        "slots",
        "constants",
        "compiler",
        "converters",
        "model",
        "attnames",
        "shape",
    )

    def __init__(self, build: Callable[..., QuerySet], kinds: tuple[type, ...], alias: str) -> None:
        first, second = _sentinels(kinds, 0), _sentinels(kinds, 1)
        queryset = build(*first)
        compiler = queryset.query.get_compiler(using=alias)
        self.sql, params = compiler.as_sql()
        other_sql, other_params = build(*second).query.get_compiler(using=alias).as_sql()
        if other_sql != self.sql or len(other_params) != len(params):
            raise ImproperlyConfigured(
                f"PreparedQuery: the SQL depends on the arguments: {self.sql}"
            )
        # For each placeholder: the index of the caller's argument, or None for a constant.
        self.slots: list[int | None] = []
        for value, other in zip(params, other_params, strict=True):
            if value == other:
                self.slots.append(None)
                continue
            matches = [
                index
                for index in range(len(kinds))
                if value == first[index] and other == second[index]
            ]
            if len(matches) != 1:
                raise ImproperlyConfigured(
                    f"PreparedQuery: an argument does not reach the SQL unchanged: {self.sql}"
                )
            self.slots.append(matches[0])
        self.constants = list(params)
        if set(range(len(kinds))) - set(self.slots):
            raise ImproperlyConfigured(f"PreparedQuery: an argument is not used: {self.sql}")
        self.compiler = compiler
        columns = [column[0] for column in compiler.select[: compiler.col_count]]
        self.converters = compiler.get_converters(columns)
        self.model = queryset.model
        iterable = queryset._iterable_class
        if iterable is ModelIterable:
            klass_info = compiler.klass_info or {}
            if (
                queryset.query.select_related
                or klass_info.get("related_klass_infos")
                or compiler.annotation_col_map
                or queryset.query.deferred_loading[0]
            ):
                raise ImproperlyConfigured(
                    "PreparedQuery: whole rows of one model only (no select_related, "
                    "annotations or deferred fields)."
                )
            self.shape = "model"
            self.attnames = [column[0].target.attname for column in compiler.select]
        elif iterable is FlatValuesListIterable:
            self.shape = "flat"
        elif iterable is ValuesListIterable:
            self.shape = "tuples"
        else:
            raise ImproperlyConfigured(
                "PreparedQuery: use values_list() or whole model rows, not values() or named tuples."
            )

    def params(self, args: tuple[Any, ...]) -> list[Any]:
        return [
            self.constants[index] if slot is None else args[slot]
            for index, slot in enumerate(self.slots)
        ]


class PreparedQuery(Generic[T]):
    """`build(*args)` returns the queryset; `kinds` gives each argument's type (int or str).

    `PreparedQuery(lambda pk: Experiment.objects.filter(pk=pk)[:1], int).first(7)`.
    """

    def __init__(self, build: Callable[..., QuerySet], *kinds: type) -> None:
        if any(kind not in (int, str) for kind in kinds):
            raise ImproperlyConfigured("PreparedQuery parameters are int or str.")
        self._build = build
        self._kinds = kinds
        self._compiled: dict[tuple[str, str], _Compiled] = {}
        self._lock = threading.Lock()

    def _for(self, alias: str) -> _Compiled:
        connection = connections[alias]
        key = (alias, connection.vendor)
        compiled = self._compiled.get(key)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.get(key)
                if compiled is None:
                    compiled = _Compiled(self._build, self._kinds, alias)
                    self._compiled[key] = compiled
        return compiled

    def all(self, *args: Any, using: str = "default") -> list[T]:
        """Every row, as model instances or value tuples (or single values for `flat`)."""
        if len(args) != len(self._kinds):
            raise TypeError(f"expected {len(self._kinds)} argument(s), got {len(args)}")
        for arg, kind in zip(args, self._kinds, strict=True):
            if type(arg) is not kind:
                raise TypeError(f"PreparedQuery argument {arg!r} is not {kind.__name__}")
        compiled = self._for(using)
        with server_prepared_cursor(using) as cursor:
            cursor.execute(compiled.sql, compiled.params(args))
            rows = cursor.fetchall()
        if not rows:
            return []
        converted = (
            compiled.compiler.apply_converters(rows, compiled.converters)
            if compiled.converters
            else rows
        )
        result: list[Any]
        if compiled.shape == "model":
            from_db = compiled.model.from_db
            attnames = compiled.attnames
            result = [from_db(using, attnames, row) for row in converted]
        elif compiled.shape == "flat":
            result = [row[0] for row in converted]
        else:
            result = [tuple(row) for row in converted]
        return result

    def first(self, *args: Any, using: str = "default") -> T | None:
        rows = self.all(*args, using=using)
        return rows[0] if rows else None


class OneOrMany:
    """A `values_list()` query by one column, asked for one value (prepared: the common,
    hot case) or for several (the ORM with `__in`, whose SQL varies with the count).

    `build` takes the filter keyword arguments: `lambda **where: Tag.objects.filter(**where)
    .values_list(...)`."""

    def __init__(self, build: Callable[..., QuerySet], column: str, kind: type) -> None:
        self._build = build
        self._column = column
        self._one: PreparedQuery[tuple] = PreparedQuery(
            lambda value: build(**{column: value}), kind
        )

    def rows(self, values: Sequence[Any]) -> list:
        if len(values) == 1:
            return self._one.all(values[0])
        return list(self._build(**{f"{self._column}__in": list(values)}))


def insert_of(instance: Model, alias: str = "default") -> tuple[str, list[Any]]:
    """The ORM's own INSERT of one unsaved instance (every concrete field but an automatic
    primary key, which it returns), compiled for `alias`: for a statement that wraps it, such
    as a data-modifying CTE that writes something else in the same round trip. Once that
    statement has run, `stored` marks the instance saved."""
    meta = instance._meta
    query = InsertQuery(type(instance))
    query.insert_values([f for f in meta.concrete_fields if f is not meta.auto_field], [instance])
    compiler = query.get_compiler(using=alias)
    if meta.auto_field is not None:
        compiler.returning_fields = [meta.pk]
    ((sql, params),) = compiler.as_sql()
    return sql, list(params)


def stored(instance: Model, alias: str = "default", pk: Any = None) -> None:
    """Mark an instance written by an `insert_of` statement as saved (with its new primary
    key, when the database gave it one)."""
    if pk is not None:
        instance.pk = pk
    instance._state.adding = False
    instance._state.db = alias
