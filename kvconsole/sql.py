"""Helpers for the hand-written SQL of the data-plane hot path.

Compiling an ORM query with a few joins costs more than an RSA signature, and every key
operation looks its key up. That lookup runs fixed SQL written once from model metadata;
these helpers build its select lists and turn its row into ordinary model instances with
the same converters the ORM applies, so callers still work with models.
"""

import functools
from collections.abc import Callable, Sequence
from typing import Any, cast

from django.db import connection, models

Converter = Callable[[Any, Any, Any], Any]


def columns(model: type[models.Model], alias: str) -> str:
    """The select list for every concrete field of `model`, in field order."""
    quote = connection.ops.quote_name
    return ", ".join(
        f"{alias}.{quote(cast(str, field.column))}" for field in model._meta.concrete_fields
    )


@functools.cache
def _converters(
    model: type[models.Model], vendor: str
) -> tuple[tuple[Any, tuple[Converter, ...]], ...]:
    """Per field: the column expression and the converters the ORM would apply to it."""
    result = []
    for field in model._meta.concrete_fields:
        column = field.get_col(model._meta.db_table)
        converters = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
        result.append((column, tuple(converters)))
    return tuple(result)


def hydrate[M: models.Model](model: type[M], values: Sequence[Any]) -> M:
    """A model instance from one row's values for `model`'s concrete fields, in order."""
    converted = []
    for value, (column, converters) in zip(
        values, _converters(model, connection.vendor), strict=True
    ):
        for converter in converters:
            value = converter(value, column, connection)
        converted.append(value)
    field_names = [field.attname for field in model._meta.concrete_fields]
    return model.from_db(connection.alias, field_names, converted)


def field_count(model: type[models.Model]) -> int:
    return len(model._meta.concrete_fields)
