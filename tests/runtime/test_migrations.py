"""Each service's migrations build exactly the tables its models describe, in its own schema."""
import importlib

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

SERVICES = ("intake", "referral", "notify", "reporting")


@pytest.mark.parametrize("service", SERVICES)
async def test_migrated_schema_matches_models(stack, service):
    models = importlib.import_module(f"services.{service}.models")
    engine = create_async_engine(stack.database_url)
    try:
        async with engine.connect() as conn:
            def diff(sync_conn):
                ctx = MigrationContext.configure(sync_conn, opts={
                    "include_schemas": True,
                    "include_name": lambda name, type_, _p: type_ != "schema" or name == models.SCHEMA,
                    "version_table_schema": models.SCHEMA,
                })
                return compare_metadata(ctx, models.metadata)

            assert await conn.run_sync(diff) == []
            version_table = await conn.scalar(text(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = :s AND table_name = 'alembic_version'"
            ), {"s": models.SCHEMA})
            assert version_table == 1
    finally:
        await engine.dispose()


def test_no_service_model_touches_another_schema():
    for service in SERVICES:
        models = importlib.import_module(f"services.{service}.models")
        assert {t.schema for t in models.metadata.tables.values()} == {models.SCHEMA}
