"""Small column types shared by several tables, and the limits of a column as producers need them."""

from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Integer

# BIGINT ids on PostgreSQL; SQLite only auto-increments a column declared INTEGER.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def room(column: Any, prefix: str = "") -> int:
    """How many characters of a value fit in a String column when stored after ``prefix``: a
    producer's limit for a field, read from the model so that the two cannot drift apart."""
    return int(column.type.length) - len(prefix)


def largest(column: Any) -> Decimal:
    """The largest amount a Numeric(precision, scale) column holds (9999.99 for Numeric(6, 2))."""
    precision, scale = column.type.precision, column.type.scale
    return Decimal(10) ** (precision - scale) - Decimal(1).scaleb(-scale)


# An INTEGER column (what a plain ``Mapped[int]`` is): PostgreSQL's 32-bit range.
INTEGER_RANGE = (-(2**31), 2**31 - 1)
