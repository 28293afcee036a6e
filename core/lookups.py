"""Lookups the ORM lacks."""

from __future__ import annotations

import json
from typing import Any

from django.db.models import Lookup


class AnyOf(Lookup):
    """`qs.filter(AnyOf(F("run_id"), ids))`: the column equals one of the values, sent as one
    parameter however many there are (an array on PostgreSQL, a JSON array on SQLite).
    `__in` compiles a placeholder per value, which for the thousands of run ids of a grouped
    page's groups cost more than the query that used them."""

    lookup_name = "any_of"
    prepare_rhs = False

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, Any]:
        lhs, params = self.process_lhs(compiler, connection)
        field = self.lhs.output_field
        values = [field.get_db_prep_value(value, connection) for value in self.rhs]
        if connection.vendor == "postgresql":
            return f"{lhs} = ANY(%s)", [*params, values]
        return f"{lhs} IN (SELECT value FROM json_each(%s))", [*params, json.dumps(values)]
