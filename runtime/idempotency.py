"""Idempotency-Key for POSTs: a retry returns the first response; the same key with another body is a 422.

The key is recorded in the same transaction as the effect, so a request either happened once, with its
response stored, or not at all.
"""
import hashlib
import json
from dataclasses import dataclass
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel

from sqlalchemy import Column, DateTime, Integer, LargeBinary, MetaData, String, Table, func, select
from sqlalchemy.dialects.postgresql import JSONB, insert

from runtime.problems import Conflict, DomainError
from runtime.uow import UnitOfWork

M = TypeVar("M", bound=BaseModel)


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

    async def remember(self, uow: UnitOfWork, status_code: int, response: Any) -> Any | None:
        """Store the response in the caller's transaction. If the key was used before (a retry, or a
        concurrent twin that committed first), roll this attempt back and return the first response:
        so a first request costs one statement here, and only a retry pays for the lookup."""
        stored = await uow.session.scalar(
            insert(self.table).values(scope=self.scope, key=self.key, request_hash=self.body_hash,
                                      status_code=status_code, response=response)
            .on_conflict_do_nothing().returning(self.table.c.key)
        )
        if stored is not None:
            return None
        await uow.session.rollback()
        return await self.first_response(uow)

    async def first_response(self, uow: UnitOfWork) -> Any:
        """The first response, when this key is known to be taken (a 422 for another body)."""
        first = await self.replay(uow)
        if first is None:  # a twin that held the key rolled back after all
            raise Conflict("a request with this Idempotency-Key was in progress; retry", field="Idempotency-Key")
        return first


def begin(table: Table, scope: str, key: str | None, body: Any) -> IdempotentRequest | None:
    """None when the client sent no key: the request is then simply not idempotent."""
    return IdempotentRequest(table, scope, key, request_hash(body)) if key else None


async def run_once(uow: UnitOfWork, idem: IdempotentRequest | None, model: type[M],
                   work: Callable[[], Awaitable[M]], status_code: int = 201) -> tuple[M, bool]:
    """Do `work` (which must not commit) at most once per key, and commit. Returns (result, created).

    A first request pays one extra INSERT; only a retry pays for the lookup. A retry whose work now
    fails (e.g. its contact is already attached, by the first attempt) still gets the first response.
    """
    try:
        result = await work()
    except DomainError:
        if idem is not None:
            await uow.session.rollback()
            if (first := await idem.replay(uow)) is not None:
                return model.model_validate(first), False
        raise
    if idem is not None and (first := await idem.remember(uow, status_code, result.model_dump(mode="json"))):
        return model.model_validate(first), False
    await uow.commit()
    return result, True
