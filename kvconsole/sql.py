"""Helpers for the hand-written SQL of the data-plane hot path.

Compiling an ORM query with a few joins costs more than an RSA signature, and every key
operation looks its key up. That lookup runs fixed SQL written once from model metadata;
these helpers build its select lists and turn its row into ordinary model instances with
the same converters the ORM applies, so callers still work with models.
"""

import functools
from collections.abc import Sequence
from typing import Any, cast

from django.db import DEFAULT_DB_ALIAS, connection, connections, models


def columns(model: type[models.Model], alias: str) -> str:
    """The select list for every concrete field of `model`, in field order."""
    quote = connection.ops.quote_name
    return ", ".join(
        f"{alias}.{quote(cast(str, field.column))}" for field in model._meta.concrete_fields
    )


@functools.cache
def _plan(
    model: type[models.Model], vendor: str
) -> tuple[list[str], list[tuple[int, Any, list[Any]]]]:
    """The field names of `model` and, for the fields that need them, the converters the
    ORM would apply (index, column expression, converters). Fields without converters
    are taken as the database returns them."""
    names, conversions = [], []
    for index, field in enumerate(model._meta.concrete_fields):
        names.append(field.attname)
        column = field.get_col(model._meta.db_table)
        converters = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
        if converters:
            conversions.append((index, column, converters))
    return names, conversions


def hydrate(row: Sequence[Any], *row_models: type[models.Model]) -> list[models.Model]:
    """Instances of `row_models` from one row that selects each one's columns in turn
    (as `columns()` lists them), converted as the ORM would convert them."""
    # One lookup of the connection proxy: each one costs microseconds on a hot path.
    db = connections[DEFAULT_DB_ALIAS]
    instances, start = [], 0
    for model in row_models:
        names, conversions = _plan(model, db.vendor)
        values = list(row[start : start + len(names)])
        start += len(names)
        for index, column, converters in conversions:
            value = values[index]
            for converter in converters:
                value = converter(value, column, db)
            values[index] = value
        instances.append(model.from_db(db.alias, names, values))
    return instances
