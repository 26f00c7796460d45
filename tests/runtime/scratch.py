"""An isolated schema with an inbox, an outbox and an effects table, for testing the runtime alone."""
import uuid
from dataclasses import dataclass

from sqlalchemy import Column, Integer, MetaData, String, Table, func, select, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncEngine

from runtime.db import create_engine, inbox_table, notify_channel, outbox_table, session_factory
from runtime.settings import ServiceSettings
from runtime.uow import UnitOfWork


@dataclass
class Scratch:
    schema: str
    engine: AsyncEngine
    inbox: Table
    outbox: Table
    effects: Table
    settings: ServiceSettings

    def uow(self) -> UnitOfWork:
        return UnitOfWork(session_factory(self.engine), self.outbox, "/tests", notify_channel(self.schema))

    async def effect_count(self, case_id: uuid.UUID) -> int:
        async with self.engine.connect() as conn:
            return await conn.scalar(select(func.count()).where(self.effects.c.case_id == case_id))

    async def drop(self) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{self.schema}" CASCADE'))
        await self.engine.dispose()


async def make_scratch(database_url: str, bootstrap: str, **settings) -> Scratch:
    schema = f"t_{uuid.uuid4().hex[:10]}"
    metadata = MetaData(schema=schema)
    inbox, outbox = inbox_table(metadata), outbox_table(metadata)
    effects = Table(
        "effects", metadata,
        Column("n", Integer, primary_key=True, autoincrement=True),
        Column("case_id", UUID(as_uuid=True), nullable=False),
        Column("note", String(50)),
    )
    engine = create_engine(database_url, pool_size=4)
    async with engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        await conn.run_sync(metadata.create_all)
    base = {"consumer_max_attempts": 2, "consumer_retry_backoff_s": 0.05, "relay_poll_interval_s": 0.5}
    s = ServiceSettings(database_url=database_url, kafka_bootstrap_servers=bootstrap, **(base | settings))
    return Scratch(schema, engine, inbox, outbox, effects, s)
