from __future__ import annotations

from datetime import UTC, datetime

from django import template
from django.http import QueryDict
from django.utils.html import format_html

from tracking.search.grammar import _BARE

register = template.Library()


@register.filter
def timestamp(value) -> str:
    """The one way a moment is shown: a <time> element that reads "2026-12-05 14:03 UTC" as
    served; web/static/web/local-time.js rewrites it to the reader's local time and puts the
    UTC offset and the UTC time in its hover title. Takes epoch milliseconds, a datetime or
    an ISO 8601 string (as audit events record moments)."""
    if value in (None, ""):
        return ""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        moment = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    else:
        moment = datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    shown = moment.strftime("%Y-%m-%d %H:%M UTC")
    full = moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return format_html(
        '<time class="ts" datetime="{}" title="{}">{}</time>',
        moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        full,
        shown,
    )


ms_datetime = register.filter("ms_datetime", timestamp)
ms_time = register.filter("ms_time", timestamp)


@register.filter
def duration(info: dict) -> str:
    start, end = info.get("start_time"), info.get("end_time")
    if not start or not end:
        return ""
    seconds = max(0, (int(end) - int(start)) / 1000)
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


@register.filter
def metric(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


@register.simple_tag(takes_context=True)
def query_with(context, **changes) -> str:
    """The current query string with some parameters replaced (None removes one)."""
    params: QueryDict = context["request"].GET.copy()
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    return "?" + params.urlencode()


def order_identifier(column: str) -> str:
    """A column ("metrics.my metric") as the search grammar's identifier: keys with spaces or
    punctuation are backtick-quoted (a backtick inside doubled, a backslash escaped)."""
    entity, _, key = column.partition(".")
    if not key or _BARE.fullmatch(key):
        return column
    return f"{entity}.`{key.replace(chr(92), chr(92) * 2).replace('`', '``')}`"


@register.filter
def sort_link_order(column: str, current: str) -> str:
    """Clicking a column sorts by it descending, then ascending."""
    identifier = order_identifier(column)
    return f"{identifier} ASC" if current == f"{identifier} DESC" else f"{identifier} DESC"


@register.filter
def sort_direction(column: str, current: str) -> str:
    """The direction ("descending", "ascending" or "") of a column under the order clause."""
    identifier = order_identifier(column)
    if current == f"{identifier} DESC":
        return "descending"
    if current in (f"{identifier} ASC", identifier):
        return "ascending"
    return ""
