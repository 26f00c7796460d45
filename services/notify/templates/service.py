"""Templates as administrators read, change and preview them: plain functions over a unit of work.

A change is a new version, validated before it is saved (a 422 naming the field and line when it cannot be
used), so a broken template is refused when it is written, never found out when an alert is sent.
"""
from __future__ import annotations

from runtime.problems import Conflict, DomainError, NotFound
from runtime.uow import UnitOfWork
from services.notify.templates import repository
from services.notify.templates.kinds import KEYS, Kind, sample
from services.notify.templates.rendering import MAX_SMS_SEGMENTS, Draft, render, validate
from services.notify.templates.repository import TemplateRow, VersionRace
from services.notify.templates.schemas import PreviewIn, PreviewOut, TemplateIn, TemplateOut, TemplateQuery


def _out(row: TemplateRow) -> TemplateOut:
    return TemplateOut.model_validate(row, from_attributes=True)


async def list_templates(uow: UnitOfWork, q: TemplateQuery) -> list[TemplateOut]:
    read = repository.all_versions if q.all_versions else repository.latest
    return [_out(r) for r in await read(uow.session, q.kind, q.channel, q.language)]


async def _row(uow: UnitOfWork, kind: str, channel: str, language: str, version: int | None) -> TemplateRow:
    row = await repository.get(uow.session, kind, channel, language, version)
    if row is None:
        which = f"version {version} of " if version is not None else ""
        raise NotFound(f"no {which}{channel} template of {kind} in {language}")
    return row


async def get_template(uow: UnitOfWork, kind: str, channel: str, language: str,
                       version: int | None = None) -> TemplateOut:
    """The version in force, or `version`."""
    return _out(await _row(uow, kind, channel, language, version))


async def create_version(uow: UnitOfWork, kind: str, channel: str, language: str, body: TemplateIn,
                         created_by: str) -> TemplateOut:
    """A new version, one above the latest, once it validates; it is in force as soon as it commits."""
    validate(kind, channel, language, body.subject, body.body)
    try:
        row = await repository.insert_next(uow.session, kind, channel, language, body.subject, body.body,
                                          created_by[:200])  # the column's size
    except VersionRace as exc:
        raise Conflict(str(exc)) from None
    await uow.commit()
    return _out(row)


def _context(body: PreviewIn) -> dict[str, str]:
    allowed = KEYS[Kind(body.kind)]
    for key in body.context:
        if key not in allowed:
            raise DomainError(f"a {body.kind} message has no {key!r}; it has {', '.join(allowed)}",
                              field=f"context.{key}")
    return sample(body.kind, body.language) | body.context


async def preview(uow: UnitOfWork, body: PreviewIn) -> PreviewOut:
    """A stored template or a draft rendered with the sample (and the values posted). A draft is not checked
    against the SMS length limit, so its preview shows how far over it is."""
    if body.body is None:
        if body.subject is not None:
            raise DomainError("a draft needs a body", field="body")
        template = await _row(uow, body.kind, body.channel, body.language, body.version)
        version = template.version
    elif body.version is not None:
        raise DomainError("version names a stored template: leave it out with a draft", field="version")
    else:
        template, version = Draft(body.channel, body.subject or "", body.body), None
    rendered = render(template, _context(body))
    size = rendered.size
    return PreviewOut(
        kind=body.kind, channel=body.channel, language=body.language, version=version, subject=rendered.subject,
        body=rendered.body, encoding=size and size.encoding, characters=size and size.characters,
        units=size and size.units, segments=size and size.segments,
        max_segments=MAX_SMS_SEGMENTS if size else None)
