"""Apply Alembic migrations from code (the embedded mode and the tests use this)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from settings import PROJECT_ROOT, settings


def upgrade_to_head(url: str | None = None) -> None:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["url"] = url or settings.database_url
    command.upgrade(config, "head")
