"""Small column types shared by several tables."""

from sqlalchemy import BigInteger, Integer

# BIGINT ids on PostgreSQL; SQLite only auto-increments a column declared INTEGER.
BigId = BigInteger().with_variant(Integer(), "sqlite")
