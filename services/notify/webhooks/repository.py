"""Webhook endpoints and their signing secrets in notify's database. Secrets are stored as runtime.crypto
ciphertext bound to their column, and only decrypted to sign."""
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from runtime.crypto import decrypt_text, encrypt_text
from services.notify.models import webhook_endpoints, webhook_secrets

SECRET_CONTEXT = "notify.webhook_secrets.secret"  # AES-GCM associated data: the ciphertext decrypts only here
e = webhook_endpoints.c
s = webhook_secrets.c


@dataclass(frozen=True)
class Endpoint:
    id: UUID
    agency_unit_id: UUID
    url: str
    description: str
    active: bool
    version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class SecretInfo:
    id: UUID
    endpoint_id: UUID
    created_at: datetime
    expires_at: datetime | None


_ENDPOINT = (e.id, e.agency_unit_id, e.url, e.description, e.active, e.version, e.created_at, e.updated_at)


def _endpoint(row) -> Endpoint:
    return Endpoint(**row)


def _valid(now: datetime):
    return or_(s.expires_at.is_(None), s.expires_at > now)


async def insert_endpoint(session: AsyncSession, endpoint_id: UUID, agency_unit_id: UUID, url: str,
                          description: str) -> Endpoint:
    row = (await session.execute(webhook_endpoints.insert().values(
        id=endpoint_id, agency_unit_id=agency_unit_id, url=url, description=description,
    ).returning(*_ENDPOINT))).mappings().one()
    return _endpoint(row)


async def get(session: AsyncSession, endpoint_id: UUID, *, for_update: bool = False) -> Endpoint | None:
    query = select(*_ENDPOINT).where(e.id == endpoint_id)
    if for_update:
        query = query.with_for_update()
    row = (await session.execute(query)).mappings().first()
    return None if row is None else _endpoint(row)


async def find(session: AsyncSession, agency_unit_id: UUID | None, active: bool | None,
               limit: int | None = None) -> list[Endpoint]:
    query = select(*_ENDPOINT).order_by(e.created_at, e.id).limit(limit)
    if agency_unit_id is not None:
        query = query.where(e.agency_unit_id == agency_unit_id)
    if active is not None:
        query = query.where(e.active.is_(active))
    return [_endpoint(r) for r in (await session.execute(query)).mappings()]


async def change(session: AsyncSession, endpoint_id: UUID, **values) -> Endpoint:
    """Set `values` (none: only the version moves) and bump the version, which is the ETag."""
    row = (await session.execute(
        update(webhook_endpoints).where(e.id == endpoint_id)
        .values(**values, version=e.version + 1, updated_at=func.now())
        .returning(*_ENDPOINT))).mappings().one()
    return _endpoint(row)


async def deactivate(session: AsyncSession, endpoint_id: UUID) -> bool:
    changed = await session.scalar(
        update(webhook_endpoints).where(e.id == endpoint_id, e.active.is_(True))
        .values(active=False, version=e.version + 1, updated_at=func.now()).returning(e.id))
    return changed is not None


async def add_secret(session: AsyncSession, secret_id: UUID, endpoint_id: UUID, secret: str) -> None:
    await session.execute(webhook_secrets.insert().values(
        id=secret_id, endpoint_id=endpoint_id, secret=encrypt_text(secret, SECRET_CONTEXT)))


async def retire_secrets(session: AsyncSession, endpoint_id: UUID, expires_at: datetime, now: datetime) -> None:
    """Every secret still valid signs until `expires_at` at the latest (a rotation never extends one), and
    the expired ones are deleted: no key material is kept that nothing uses."""
    await session.execute(delete(webhook_secrets).where(s.endpoint_id == endpoint_id, ~_valid(now)))
    await session.execute(
        update(webhook_secrets)
        .where(s.endpoint_id == endpoint_id, or_(s.expires_at.is_(None), s.expires_at > expires_at))
        .values(expires_at=expires_at))


async def valid_secrets(session: AsyncSession, endpoint_id: UUID, now: datetime) -> list[str]:
    """The plain secrets that sign now, newest first."""
    rows = await session.scalars(
        select(s.secret).where(s.endpoint_id == endpoint_id, _valid(now)).order_by(s.created_at.desc(), s.id))
    return [decrypt_text(blob, SECRET_CONTEXT) for blob in rows]


async def secret_infos(session: AsyncSession, endpoint_ids: Iterable[UUID],
                       now: datetime) -> dict[UUID, list[SecretInfo]]:
    """The valid secrets of each endpoint, newest first, without their values."""
    ids = list(endpoint_ids)
    found: dict[UUID, list[SecretInfo]] = {i: [] for i in ids}
    if not ids:
        return found
    rows = await session.execute(
        select(s.id, s.endpoint_id, s.created_at, s.expires_at)
        .where(s.endpoint_id.in_(ids), _valid(now)).order_by(s.created_at.desc(), s.id))
    for row in rows.mappings():
        found[row["endpoint_id"]].append(SecretInfo(**row))
    return found
