"""Idempotency-Key for POSTs: a retry returns the first response; the same key with another body is a 422.

The key is recorded in the same transaction as the effect, so a request either happened once, with its
response stored, or not at all.
"""
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, DateTime, Integer, LargeBinary, MetaData, String, Table, func, select
from sqlalchemy.dialects.postgresql import JSONB, insert

from runtime.problems import Conflict, DomainError
from runtime.uow import UnitOfWork


def idempotency_table(metadata: MetaData) -> Table:
    return Table(
        "idempotency_keys",
        metadata,
        Column("scope", String(200), primary_key=True),  # who and which operation: keys are per caller
        Column("key", String(200), primary_key=True),
        Column("request_hash", LargeBinary, nullable=False),
        Column("status_code", Integer, nullable=False),
        Column("response", JSONB, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


def request_hash(body: Any) -> bytes:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).digest()


@dataclass(frozen=True)
class IdempotentRequest:
    """One POST under an Idempotency-Key: who sent it, to what, with which body."""

    table: Table
    scope: str  # the caller and the operation: keys are per caller
    key: str
    body_hash: bytes

    async def replay(self, uow: UnitOfWork) -> Any | None:
        """The first response to this key, or None. The same key with another body is a 422."""
        t = self.table.c
        row = (await uow.session.execute(
            select(t.request_hash, t.response).where(t.scope == self.scope, t.key == self.key)
        )).first()
        if row is None:
            return None
        if row.request_hash != self.body_hash:
            raise DomainError("this Idempotency-Key was used with a different request body", field="Idempotency-Key")
        return row.response

    async def remember(self, uow: UnitOfWork, status_code: int, response: Any) -> None:
        """Store the response in the caller's transaction; a concurrent twin that got there first is a 409."""
        stored = await uow.session.scalar(
            insert(self.table).values(scope=self.scope, key=self.key, request_hash=self.body_hash,
                                      status_code=status_code, response=response)
            .on_conflict_do_nothing().returning(self.table.c.key)
        )
        if stored is None:
            raise Conflict("a request with this Idempotency-Key is in progress; retry shortly", field="Idempotency-Key")


def begin(table: Table, scope: str, key: str | None, body: Any) -> IdempotentRequest | None:
    """None when the client sent no key: the request is then simply not idempotent."""
    return IdempotentRequest(table, scope, key, request_hash(body)) if key else None
