"""The webhook endpoints API, for administrators. A secret is in two answers only, creating an endpoint and
rotating its secret, and they are never cached. Changes need If-Match (428 without, 412 when stale)."""
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Header, Query, Response, status

from runtime.auth import Role, require
from runtime.etags import etag, parse_if_match
from runtime.problems import problems
from runtime.service import get_uow
from runtime.uow import UnitOfWork
from services.notify.webhooks import service
from services.notify.webhooks.schemas import EndpointIn, EndpointOut, EndpointPatch, EndpointWithSecret, RotateIn

router = APIRouter(prefix="/webhooks", tags=["webhooks"], dependencies=[Depends(require(Role.ADMIN))])
Uow = Annotated[UnitOfWork, Depends(get_uow)]
IfMatch = Annotated[str | None, Header(description="The ETag of the endpoint as you last read it.")]


def _with_etag(response: Response, endpoint: EndpointOut) -> EndpointOut:
    response.headers["ETag"] = etag(endpoint.version)
    return endpoint


def _with_secret(response: Response, endpoint: EndpointWithSecret) -> EndpointWithSecret:
    response.headers["Cache-Control"] = "no-store"  # the secret must not stay in any cache
    _with_etag(response, endpoint)
    return endpoint


@router.post("", response_model=EndpointWithSecret, status_code=status.HTTP_201_CREATED)
async def create_endpoint(body: EndpointIn, uow: Uow, response: Response) -> EndpointWithSecret:
    """A new endpoint for a unit's referrals, with its signing `secret`: shown in this answer only."""
    endpoint = _with_secret(response, await service.create(uow, body))
    response.headers["Location"] = f"{router.prefix}/{endpoint.id}"
    return endpoint


@router.get("", response_model=list[EndpointOut])
async def list_endpoints(
    uow: Uow,
    agency_unit_id: Annotated[UUID | None, Query()] = None,
    active: Annotated[bool | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[EndpointOut]:
    """Oldest first. Never a secret."""
    return await service.find(uow, agency_unit_id, active, limit)


@router.get("/{endpoint_id}", response_model=EndpointOut, responses=problems(404))
async def get_endpoint(endpoint_id: UUID, uow: Uow, response: Response) -> EndpointOut:
    """The endpoint with its `ETag` and the secrets that sign now (ids and expiry, never the values)."""
    return _with_etag(response, await service.get(uow, endpoint_id))


@router.patch("/{endpoint_id}", response_model=EndpointOut, responses=problems(404, 412, 428))
async def change_endpoint(endpoint_id: UUID, body: EndpointPatch, uow: Uow, response: Response,
                          if_match: IfMatch = None) -> EndpointOut:
    """Change the url, description or active flag (reactivate one a 410 deactivated)."""
    return _with_etag(response, await service.change(uow, endpoint_id, parse_if_match(if_match), body))


@router.post("/{endpoint_id}/rotate-secret", response_model=EndpointWithSecret, responses=problems(404))
async def rotate_secret(endpoint_id: UUID, uow: Uow, response: Response,
                        body: Annotated[RotateIn | None, Body()] = None) -> EndpointWithSecret:
    """A new signing `secret`, shown in this answer only. Until `expires_at` (default 24 hours) the previous
    secret signs too, so the receiver switches without a gap; after it, only the new one."""
    return _with_secret(response, await service.rotate(uow, endpoint_id, body))
