"""Alembic environment: every domain's models on one metadata."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

import iotstore.accounts.models
import iotstore.assertdb.models
import iotstore.devices.models
import iotstore.snaps.models
import iotstore.stores.models  # noqa: F401 - registers the tables
from iotstore.db import Base

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    """Run against the engine the caller passed in ``config.attributes``."""
    engine: Engine = config.attributes["engine"]
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations()
