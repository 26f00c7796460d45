"""The directory API: hotline staff and administrators read it; administrators change it, one unit at a
time (with If-Match: 428 without, 412 when stale) or by importing a file. Units are never deleted, since
referrals point at them: set the status to inactive instead."""
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status

from runtime.auth import Role, require
from runtime.etags import etag, parse_if_match
from runtime.inputs import storable
from runtime.problems import DomainError, problems
from runtime.service import get_uow
from runtime.uow import UnitOfWork
from services.referral.directory import service
from services.referral.directory.schemas import (
    Format,
    ImportOut,
    StatusIn,
    UnitFields,
    UnitIn,
    UnitOut,
    UnitPage,
    UnitQuery,
)

router = APIRouter(prefix="/directory", tags=["directory"])
Uow = Annotated[UnitOfWork, Depends(get_uow)]
READERS = [Depends(require(Role.OPERATOR, Role.SUPERVISOR, Role.ADMIN))]
ADMINS = [Depends(require(Role.ADMIN))]
IfMatch = Annotated[str | None, Header(description="The ETag of the unit as you last read it.")]
Filters = Annotated[UnitQuery, Query()]
MAX_IMPORT_BYTES = 32 * 1024 * 1024  # the whole directory is about 2 MB
MEDIA_TYPES = {Format.csv: "text/csv", Format.yaml: "application/yaml"}
CHANGE = problems(404, 412, 428)  # a change to one unit: no such unit, If-Match stale or missing
_YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


class PayloadTooLarge(DomainError):
    status = 413
    kind = "payload-too-large"


def stale_days(request: Request) -> int:
    return request.app.state.referrer.settings.directory_stale_days


StaleDays = Annotated[int, Depends(stale_days)]


def _with_etag(response: Response, unit: UnitOut) -> UnitOut:
    response.headers["ETag"] = etag(unit.version)
    return unit


@router.get("/units", response_model=UnitPage, dependencies=READERS)
async def list_units(uow: Uow, q: Filters, days: StaleDays) -> UnitPage:
    """Units in code order, filtered, with a cursor. `stale=true`: active units last verified longer ago
    than DIRECTORY_STALE_DAYS, or never."""
    return await service.list_units(uow, q, days)


@router.get("/stale", response_model=UnitPage, dependencies=READERS)
async def list_stale(uow: Uow, q: Filters, days: StaleDays) -> UnitPage:
    """GET /directory/units?stale=true: the units whose data is due for a check with the unit."""
    return await service.list_units(uow, q.model_copy(update={"stale": True}), days)


@router.get("/units/{code}", response_model=UnitOut, dependencies=READERS, responses=problems(404))
async def get_unit(code: str, uow: Uow, response: Response) -> UnitOut:
    """The whole unit, contacts and opening hours included, with its `ETag`."""
    return _with_etag(response, await service.get_unit(uow, code))


@router.post("/units", response_model=UnitOut, status_code=status.HTTP_201_CREATED, dependencies=ADMINS,
             responses=problems(409))
async def create_unit(body: UnitIn, uow: Uow, response: Response) -> UnitOut:
    """A new unit, checked like a row of a directory file. A code already in use is a 409."""
    unit = _with_etag(response, await service.create(uow, body))
    response.headers["Location"] = f"{router.prefix}/units/{unit.code}"
    return unit


@router.put("/units/{code}", response_model=UnitOut, dependencies=ADMINS, responses=CHANGE)
async def replace_unit(code: str, body: UnitFields, uow: Uow, response: Response,
                       if_match: IfMatch = None) -> UnitOut:
    """Every field but the code (and id) replaced. Sending what you read changes nothing."""
    return _with_etag(response, await service.replace_unit(uow, code, parse_if_match(if_match), body))


@router.post("/units/{code}/status", response_model=UnitOut, dependencies=ADMINS, responses=CHANGE)
async def set_status(code: str, body: StatusIn, uow: Uow, response: Response, if_match: IfMatch = None) -> UnitOut:
    """Deactivate (inactive), close for a while (temporarily_closed) or reactivate a unit; matching skips
    units that are not active."""
    return _with_etag(response, await service.set_status(uow, code, parse_if_match(if_match), body.status))


@router.post("/units/{code}/verify", response_model=UnitOut, dependencies=ADMINS, responses=CHANGE)
async def verify(code: str, uow: Uow, response: Response, if_match: IfMatch = None) -> UnitOut:
    """The unit's data was checked with it today: last_verified becomes today (Asia/Ho_Chi_Minh)."""
    return _with_etag(response, await service.verify(uow, code, parse_if_match(if_match)))


def _format(fmt: Format | None, content_type: str) -> Format:
    if fmt is not None:
        return fmt
    media = content_type.split(";")[0].strip().lower()
    if media == "text/csv":
        return Format.csv
    if media in _YAML_TYPES:
        return Format.yaml
    raise DomainError("say format=csv or format=yaml, or send text/csv or application/yaml", field="format")


async def _text(request: Request) -> str:
    body = await request.body()
    if len(body) > MAX_IMPORT_BYTES:
        raise PayloadTooLarge(f"a directory file is at most {MAX_IMPORT_BYTES // (1024 * 1024)} MB", field="body")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise DomainError("the file is not UTF-8 text", field="body") from None
    if not storable(text):
        raise DomainError("the file holds a NUL character", field="body")
    return text


@router.post("/import", response_model=ImportOut, dependencies=ADMINS, responses=problems(413), openapi_extra={
    "requestBody": {"required": True, "content": {m: {"schema": {"type": "string"}} for m in MEDIA_TYPES.values()}}})
async def import_units(request: Request, uow: Uow, fmt: Annotated[Format | None, Query(alias="format")] = None,
                       dry_run: bool = False) -> ImportOut:
    """A directory file (the body, as exported): units are created or replaced by code, all or nothing. Any
    problem refuses the whole file with a 422 listing every problem with its row and field. `dry_run=true`
    writes nothing and answers what an import would do."""
    fmt = _format(fmt, request.headers.get("content-type", ""))
    return await service.import_units(uow, await _text(request), fmt, dry_run)


@router.get("/export", dependencies=READERS, response_class=Response,
            responses={200: {"content": {m: {} for m in MEDIA_TYPES.values()}}})
async def export(uow: Uow, fmt: Annotated[Format, Query(alias="format")] = Format.csv) -> Response:
    """The whole directory as a file that imports back unchanged."""
    return Response(await service.export(uow, fmt), media_type=MEDIA_TYPES[fmt], headers={
        "Content-Disposition": f'attachment; filename="agency_units.{fmt.value}"'})
