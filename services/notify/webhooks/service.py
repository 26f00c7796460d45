"""Webhook endpoints: what administrators manage, and what the sender asks (the endpoints of a unit, the
secrets that sign now, deactivation after a 410).

An endpoint has one current secret (no expiry) and, after a rotation, the previous ones until their
`expires_at`: all of them sign meanwhile, so a receiver switches to the new secret without a gap.
"""
import base64
import secrets as random
import uuid
from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from runtime.problems import DomainError, NotFound, PreconditionFailed, PreconditionRequired
from runtime.uow import UnitOfWork
from services.notify.delivery.webhook import SecretSource
from services.notify.webhooks import repository
from services.notify.webhooks.repository import Endpoint
from services.notify.webhooks.schemas import (
    EndpointIn, EndpointOut, EndpointPatch, EndpointWithSecret, RotateIn, SecretOut,
)

__all__ = ["Endpoint", "DEFAULT_GRACE", "MAX_GRACE", "new_secret", "create", "find", "get", "change", "rotate",
           "endpoints_for", "signing_secrets", "secret_source", "deactivate"]

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # Standard Webhooks: 24 to 64 random bytes
DEFAULT_GRACE = timedelta(hours=24)
MAX_GRACE = timedelta(days=30)


def new_secret(size: int = SECRET_BYTES) -> str:
    """``whsec_`` and the base64 of `size` random bytes (24 to 64)."""
    if not 24 <= size <= 64:
        raise ValueError("a webhook secret has 24 to 64 random bytes")
    return SECRET_PREFIX + base64.b64encode(random.token_bytes(size)).decode()


# ---- administrators ------------------------------------------------------------------------------------

async def _out(session: AsyncSession, endpoint: Endpoint, now: datetime | None = None) -> EndpointOut:
    infos = (await repository.secret_infos(session, [endpoint.id], now or datetime.now(UTC)))[endpoint.id]
    return _with_secrets(endpoint, infos)


def _with_secrets(endpoint: Endpoint, infos) -> EndpointOut:
    return EndpointOut(**vars(endpoint), secrets=[SecretOut(id=i.id, created_at=i.created_at,
                                                            expires_at=i.expires_at) for i in infos])


async def create(uow: UnitOfWork, body: EndpointIn) -> EndpointWithSecret:
    """A new endpoint, active, with its first secret: returned here and never again."""
    endpoint = await repository.insert_endpoint(uow.session, uuid.uuid4(), body.agency_unit_id, body.url,
                                                body.description)
    secret = new_secret()
    await repository.add_secret(uow.session, uuid.uuid4(), endpoint.id, secret)
    out = await _out(uow.session, endpoint)
    await uow.commit()
    return EndpointWithSecret(**out.model_dump(), secret=secret)


async def find(uow: UnitOfWork, agency_unit_id: UUID | None = None, active: bool | None = None,
               limit: int = 100) -> list[EndpointOut]:
    endpoints = await repository.find(uow.session, agency_unit_id, active, limit)
    infos = await repository.secret_infos(uow.session, [x.id for x in endpoints], datetime.now(UTC))
    return [_with_secrets(x, infos[x.id]) for x in endpoints]


async def _endpoint(session: AsyncSession, endpoint_id: UUID, *, for_update: bool = False) -> Endpoint:
    endpoint = await repository.get(session, endpoint_id, for_update=for_update)
    if endpoint is None:
        raise NotFound(f"no webhook endpoint {endpoint_id}")
    return endpoint


async def get(uow: UnitOfWork, endpoint_id: UUID) -> EndpointOut:
    return await _out(uow.session, await _endpoint(uow.session, endpoint_id))


async def change(uow: UnitOfWork, endpoint_id: UUID, if_match: int | None, body: EndpointPatch) -> EndpointOut:
    """The fields sent, if the caller read the current version (428 without If-Match, 412 when stale)."""
    if if_match is None:
        raise PreconditionRequired("send If-Match with the endpoint's ETag to change it", field="If-Match")
    endpoint = await _endpoint(uow.session, endpoint_id, for_update=True)
    if endpoint.version != if_match:
        raise PreconditionFailed(f"the endpoint changed since it was read (now version {endpoint.version}); "
                                 "read it again", field="If-Match")
    values = {k: v for k, v in body.model_dump(exclude_unset=True).items() if getattr(endpoint, k) != v}
    if not values:  # sending what you read changes nothing, not even the ETag
        return await _out(uow.session, endpoint)
    out = await _out(uow.session, await repository.change(uow.session, endpoint_id, **values))
    await uow.commit()
    return out


async def rotate(uow: UnitOfWork, endpoint_id: UUID, body: RotateIn | None = None,
                 now: datetime | None = None) -> EndpointWithSecret:
    """A new current secret, returned this once. The previous ones keep signing until `body.expires_at`
    (default 24 hours from now), never longer than they already would; a time past retires them at once
    (a leaked secret). No If-Match: rotating must never wait on a stale read."""
    now = now or datetime.now(UTC)
    expires_at = body.expires_at if body and body.expires_at else now + DEFAULT_GRACE
    if expires_at > now + MAX_GRACE:
        raise DomainError(f"at most {MAX_GRACE.days} days from now", field="expires_at")
    await _endpoint(uow.session, endpoint_id, for_update=True)  # one rotation at a time per endpoint
    await repository.retire_secrets(uow.session, endpoint_id, expires_at, now)
    secret = new_secret()
    await repository.add_secret(uow.session, uuid.uuid4(), endpoint_id, secret)
    endpoint = await repository.change(uow.session, endpoint_id)  # its secrets are part of what GET shows
    out = await _out(uow.session, endpoint, now)
    await uow.commit()
    return EndpointWithSecret(**out.model_dump(), secret=secret)


# ---- the sender ----------------------------------------------------------------------------------------

async def endpoints_for(session: AsyncSession, agency_unit_id: UUID) -> list[Endpoint]:
    """The active endpoints of a unit: each gets every message the unit does."""
    return await repository.find(session, agency_unit_id, active=True)


async def signing_secrets(session: AsyncSession, endpoint_id: UUID, now: datetime) -> list[str]:
    """The plain secrets that sign a message sent at `now`, newest first. None for an endpoint that is
    inactive or unknown: nothing may be sent to it."""
    endpoint = await repository.get(session, endpoint_id)
    if endpoint is None or not endpoint.active:
        return []
    return await repository.valid_secrets(session, endpoint_id, now)


def secret_source(sessions: async_sessionmaker) -> SecretSource:
    """signing_secrets, each in a short session of its own: what WebhookProvider is built with."""
    async def load(endpoint_id: UUID, now: datetime) -> list[str]:
        async with sessions() as session:
            return await signing_secrets(session, endpoint_id, now)

    return load


async def deactivate(session: AsyncSession, endpoint_id: UUID) -> bool:
    """After a 410 Gone: no more messages are queued or sent to it, until an administrator reactivates it.
    In the caller's transaction (not committed here). True if it was active."""
    return await repository.deactivate(session, endpoint_id)
