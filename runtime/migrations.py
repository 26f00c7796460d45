"""Each service's own Alembic migrations, in its own schema, with its own version table."""
import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import create_async_engine


def alembic_config(script_location: Path, database_url: str, schema: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.attributes["database_url"] = database_url
    cfg.attributes["schema"] = schema
    return cfg


def upgrade(script_location: Path, database_url: str, schema: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(script_location, database_url, schema), revision)


def run_env(metadata: MetaData) -> None:
    """Body of every service's migrations/env.py (online mode only: migrations need a database)."""
    cfg = context.config
    schema = cfg.attributes["schema"]

    def _migrate(connection) -> None:
        # Replicas may start together: one migrates, the others wait and then find nothing to do.
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"migrate:{schema}"})
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table_schema=schema,
            include_schemas=True,
            include_name=lambda name, type_, _parent: type_ != "schema" or name == schema,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def _run() -> None:
        engine = create_async_engine(cfg.attributes["database_url"])
        async with engine.begin() as conn:
            await conn.run_sync(_migrate)
        await engine.dispose()

    asyncio.run(_run())
