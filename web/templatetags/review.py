"""Filters for the review, queue and audit pages: ISO timestamps from payloads, metric values
and signed deltas."""

from __future__ import annotations

from django import template

from web.templatetags.custody import timestamp

register = template.Library()


@register.filter
def when(value) -> str:
    """An ISO 8601 timestamp (as the payloads carry them) as every page shows a moment (the
    `<time>` element of web.templatetags.custody.timestamp); text that is not one, as it is."""
    try:
        return timestamp(value)
    except ValueError:
        return str(value)


@register.filter
def number(value) -> str:
    """A metric value to five significant digits (the full value is in the cell's title)."""
    if isinstance(value, float):
        return f"{value:.5g}"
    return "—" if value is None else str(value)


@register.filter
def signed(value) -> str:
    """A delta with its sign: +0.012, −0.3, 0."""
    if value is None:
        return "—"
    if not isinstance(value, int | float):
        return str(value)  # "inf", "nan": stored as text (governance.selectors.reviews._json_safe)
    if value == 0:
        return "0"
    text = f"{abs(value):.4g}"
    return f"+{text}" if value > 0 else f"−{text}"
