"""Alembic environment: migrates the database named by DATABASE_URL."""
from __future__ import annotations

from alembic import context

from painpath.db import make_engine
from painpath.models import Base
from painpath.settings import get_settings

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    url = config.get_main_option("sqlalchemy.url") or get_settings().database_url
    engine = make_engine(url)
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            # batch mode rebuilds a table to alter it: SQLite's own advice is to switch
            # foreign keys off meanwhile (a rebuilt `clinic` is still referenced)
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations()
