"""The templates API: hotline staff and administrators read and preview templates; administrators save new
versions. A template that cannot be used is a 422 problem naming the field (subject or body) and line."""
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from runtime.auth import Principal, Role, require
from runtime.problems import problems
from runtime.service import get_uow
from runtime.uow import UnitOfWork
from services.notify.templates import service
from services.notify.templates.kinds import Channel, Kind, Language
from services.notify.templates.schemas import (
    MAX_VERSION,
    PreviewIn,
    PreviewOut,
    TemplateIn,
    TemplateOut,
    TemplateQuery,
)

router = APIRouter(prefix="/templates", tags=["templates"])
Uow = Annotated[UnitOfWork, Depends(get_uow)]
READERS = [Depends(require(Role.OPERATOR, Role.SUPERVISOR, Role.ADMIN))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
Filters = Annotated[TemplateQuery, Query()]


@router.get("", response_model=list[TemplateOut], dependencies=READERS)
async def list_templates(uow: Uow, q: Filters) -> list[TemplateOut]:
    """The versions in force, or with `all_versions=true` every version (newest first), filtered."""
    return await service.list_templates(uow, q)


@router.post("/preview", response_model=PreviewOut, dependencies=READERS, responses=problems(404))
async def preview(body: PreviewIn, uow: Uow) -> PreviewOut:
    """A stored template (no `body`) or a draft rendered with the kind's sample data, over which `context`
    may set values; with the SMS encoding, length and parts."""
    return await service.preview(uow, body)


@router.get("/{kind}/{channel}/{language}", response_model=TemplateOut, dependencies=READERS,
            responses=problems(404))
async def get_template(kind: Kind, channel: Channel, language: Language, uow: Uow,
                       version: Annotated[int | None, Query(ge=1, le=MAX_VERSION)] = None) -> TemplateOut:
    """The version in force, or `version`."""
    return await service.get_template(uow, kind, channel, language, version)


@router.post("/{kind}/{channel}/{language}", response_model=TemplateOut, status_code=status.HTTP_201_CREATED,
             responses=problems(409))
async def create_version(kind: Kind, channel: Channel, language: Language, body: TemplateIn, uow: Uow,
                         principal: Admin, response: Response) -> TemplateOut:
    """A new version, validated with the kind's sample first; in force for the next message sent."""
    saved = await service.create_version(uow, kind, channel, language, body, principal.subject)
    response.headers["Location"] = f"{router.prefix}/{kind}/{channel}/{language}?version={saved.version}"
    return saved
