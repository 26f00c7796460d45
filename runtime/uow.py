"""Unit of work: one transaction in which state changes and the events they cause commit together."""
import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol, Self, TypeVar

import asyncpg

from pydantic import BaseModel
from sqlalchemy import Table, insert, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from runtime.db import database_unreachable
from runtime.tracing import current_carrier
from schemas import event_spec_for_model


# Sees the events a unit of work emitted, just before it commits, and may emit more in the same
# transaction (e.g. referral's agency feeds): a projection that can never disagree with its source.
BeforeCommit = Callable[["UnitOfWork", list[BaseModel]], Awaitable[None]]


class Staged(Protocol):
    """Writes gathered over a transaction (e.g. a consumer batch's upserts), made as a few statements at
    commit instead of one per event."""

    async def flush(self, uow: "UnitOfWork") -> None: ...


S = TypeVar("S", bound=Staged)


class UnitOfWork:
    def __init__(self, sessions: async_sessionmaker, outbox: Table | None, source: str, channel: str,
                 before_commit: Sequence[BeforeCommit] = ()):
        self._sessions = sessions
        self._outbox = outbox
        self._source = source
        self._channel = channel
        self._before_commit = tuple(before_commit)
        self._pending: list[dict] = []
        self._emitted: list[BaseModel] = []
        self._session: AsyncSession | None = None
        self._raw: AsyncConnection | None = None
        self._staged: dict[str, Staged] = {}

    async def __aenter__(self) -> Self:
        self._session, self._raw, self._pending, self._emitted, self._staged = None, None, [], [], {}
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        # Anything not committed explicitly is rolled back (closing does it): nothing is half-written.
        if self._session is not None:
            await self._session.close()
        if self._raw is not None:
            if _connection_in_doubt(exc):
                # SQLAlchemy never saw the driver's error, so the pool would hand this connection out again,
                # closed or mid-operation, and every request on it would fail (seen in a PostgreSQL restart).
                await self._raw.invalidate()
            await self._raw.close()

    @property
    def session(self) -> AsyncSession:
        """The ORM session, opened on first use: a hot path on `driver()` never pays for it."""
        if self._session is None:
            self._session = self._sessions()
        return self._session

    def emit(self, payload: BaseModel, *, key: str, subject: str | None = None) -> uuid.UUID:
        """Queue an event for the outbox; it is written only if the transaction commits."""
        if self._outbox is None:
            raise RuntimeError(f"{self._source} has no outbox: it emits no events")
        spec = event_spec_for_model(type(payload))
        event_id = uuid.uuid4()
        self._pending.append(
            {
                "id": event_id,
                "topic": spec.topic,
                "key": key,
                "type": spec.type,
                "source": self._source,
                "subject": subject,
                "time": datetime.now(UTC),
                "payload": payload.model_dump(mode="json"),
                "trace": current_carrier(),
            }
        )
        if self._before_commit:
            self._emitted.append(payload)
        return event_id

    @property
    def channel(self) -> str:
        """The NOTIFY channel that wakes this service's outbox relay."""
        return self._channel

    def take_events(self) -> list[dict]:
        """The queued outbox rows, handed to a hand-written statement that writes them itself."""
        pending, self._pending = self._pending, []
        return pending

    async def driver(self) -> asyncpg.Connection:
        """The raw asyncpg connection under this unit of work, for a hot path written as one statement
        (runtime.statements). No transaction is open on it: a single statement commits by itself; use
        its `transaction()` for more. It is a connection of its own: `session` statements are never in its
        transaction."""
        if self._raw is None:
            self._raw = await self._sessions.kw["bind"].connect()
        return (await self._raw.get_raw_connection()).driver_connection

    def staged(self, key: str, factory: Callable[[], S]) -> S:
        """This transaction's accumulator named `key`, made by `factory` on first use; flushed at commit."""
        if key not in self._staged:
            self._staged[key] = factory()
        return self._staged[key]

    async def commit(self) -> None:
        staged, self._staged = self._staged, {}
        for accumulator in staged.values():
            await accumulator.flush(self)
        if self._emitted:
            emitted, self._emitted = self._emitted, []
            for hook in self._before_commit:
                await hook(self, emitted)
            self._emitted = []  # what the hooks emitted is not fed back to them
        if self._pending:
            await self.session.execute(insert(self._outbox), self._pending)
            # Delivered at commit only, so the relay never wakes for a rolled-back event.
            await self.session.execute(text("SELECT pg_notify(:c, '')"), {"c": self._channel})
            self._pending = []
        await self.session.commit()


def _connection_in_doubt(exc: BaseException | None) -> bool:
    """Whether a raw connection that met `exc` may be unusable: cut, closed, or left mid-statement by a
    cancellation. A statement that failed for its own reasons (a constraint, say) leaves it fine."""
    return exc is not None and (database_unreachable(exc) or isinstance(
        exc, (asyncpg.InterfaceError, asyncpg.InternalClientError, asyncio.CancelledError, TimeoutError)))
