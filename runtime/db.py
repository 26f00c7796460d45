"""Async SQLAlchemy engine on asyncpg, and the outbox and inbox tables every service carries."""
import asyncpg
from sqlalchemy import BigInteger, Column, DateTime, Identity, Index, MetaData, String, Table, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine


def create_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    # hide_parameters: SQL errors must never carry personal data into logs or dead letters.
    # No pool_pre_ping: it costs a round trip per checkout; a dropped connection is invalidated on
    # first use instead, and that request or event is retried by its caller.
    # No overflow: under a burst, connections opened and closed per request (with their statement
    # caches) cost more than waiting for a pooled one, and the server's connection count stays known.
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=0, pool_recycle=1800, hide_parameters=True
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


def asyncpg_dsn(url: str) -> str:
    """The plain libpq URL asyncpg.connect wants, from a SQLAlchemy URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def outbox_table(metadata: MetaData) -> Table:
    """Events written in the same transaction as the state change; the relay publishes them in seq order."""
    table = Table(
        "outbox",
        metadata,
        Column("id", UUID(as_uuid=True), primary_key=True),
        Column("seq", BigInteger, Identity(always=True), nullable=False, unique=True),
        Column("topic", String(200), nullable=False),
        Column("key", String(200), nullable=False),
        Column("type", String(200), nullable=False),
        Column("source", String(200), nullable=False),
        Column("subject", String(200)),
        Column("time", DateTime(timezone=True), nullable=False),
        Column("payload", JSONB, nullable=False),
        Column("trace", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True)),
    )
    Index("ix_outbox_unpublished", table.c.seq, postgresql_where=table.c.published_at.is_(None))
    Index("ix_outbox_published_at", table.c.published_at)
    return table


def inbox_table(metadata: MetaData) -> Table:
    """Event ids each consumer has applied; written in the same transaction as the effect."""
    return Table(
        "inbox",
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("event_id", UUID(as_uuid=True), primary_key=True),
        Column("event_type", String(200), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


def notify_channel(schema: str) -> str:
    return f"{schema}_outbox"


# Refused or dropped connections, and a server shutting down or not yet accepting connections.
DATABASE_UNREACHABLE = (ConnectionError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError,
                asyncpg.AdminShutdownError, asyncpg.CrashShutdownError)


def database_unreachable(exc: BaseException | None) -> bool:
    """Whether `exc`, or the error that caused it, says the database cannot be reached just now (a restart,
    a failover, a cut connection) rather than that a statement failed. Work that meets it should wait and be
    tried again: it says nothing about the work itself."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DATABASE_UNREACHABLE):
            return True
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            return True
        if type(exc) is asyncpg.InterfaceError and "connection is closed" in str(exc):
            return True
        # How asyncpg reports a pooled connection whose server process ended it while it sat idle.
        if type(exc) is asyncpg.InternalClientError and "cannot switch to state" in str(exc):
            return True
        exc = getattr(exc, "orig", None) if isinstance(exc, DBAPIError) else exc.__cause__
    return False


def log_failed_tick(log, event: str, exc: BaseException) -> None:
    """A periodic loop's pass failed and is tried again at the next tick. With the database away (a restart,
    a failover) that is expected: a warning naming the error; anything else is an error with its stack."""
    if database_unreachable(exc):
        log.warning(event, error=type(exc).__name__, database="unreachable")
    else:
        log.error(event, exc_info=exc)
