"""Rendering a template (a stored row or a draft) with a context, and validating one before it is saved.

A template is judged when it is saved, never at send time: validate() compiles both fields, checks every
name against the kind's context (in every branch, not only the one the sample takes), renders them with
the kind's sample and with its optional facts unknown, and refuses an SMS longer than MAX_SMS_SEGMENTS.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from runtime.problems import DomainError
from services.notify.templates.kinds import KEYS, Channel, Kind, Language, sample, sparse
from services.notify.templates.sandbox import Refused, compile_source, render_source
from services.notify.templates.segments import SmsSize, sms_size

MAX_SMS_SEGMENTS = 6  # what an operator pays for one alert at most; beyond it, an email says it better
MAX_SUBJECT_CHARS = 300  # notify.notifications.subject


class TemplateInvalid(DomainError):
    """A template that cannot be used: which field (subject or body), the line of it and Jinja's message."""

    status = 422
    kind = "template-invalid"

    def __init__(self, field: str, message: str, line: int | None = None, where: str = "body"):
        at = f" (line {line})" if line else ""
        problem = {"field": field, "in": where, "detail": message, "code": "template-invalid"}
        super().__init__(f"{field}{at}: {message}", field=field,
                         errors=[problem | ({"line": line} if line else {})])
        self.message = message
        self.line = line


class TemplateLike(Protocol):
    channel: str
    subject: str
    body: str


@dataclass(frozen=True)
class Draft:
    channel: str
    subject: str
    body: str


@dataclass(frozen=True)
class Rendered:
    subject: str  # one line; empty for an SMS
    body: str
    size: SmsSize | None  # for an SMS


def _field(field: str, source: str, context: Mapping[str, str]) -> str:
    try:
        return render_source(source, dict(context))
    except Refused as exc:
        raise TemplateInvalid(field, exc.message, exc.line) from None


def _render(template: TemplateLike, context: Mapping[str, str]) -> Rendered:
    if template.channel == Channel.sms:
        body = _field("body", template.body, context).strip()
        return Rendered("", body, sms_size(body))
    subject = " ".join(_field("subject", template.subject, context).split())  # a header: one line
    return Rendered(subject, _field("body", template.body, context).rstrip() + "\n", None)


def render(template: TemplateLike, context: Mapping[str, str]) -> Rendered:
    """The message `template` makes of `context` (kinds.context_for). Raises TemplateInvalid, which a
    validated template only does when given another kind's context."""
    rendered = _render(template, context)
    if len(rendered.subject) > MAX_SUBJECT_CHARS:  # validation keeps the sample within; this keeps the column
        rendered = Rendered(rendered.subject[:MAX_SUBJECT_CHARS - 1] + "…", rendered.body, rendered.size)
    return rendered


def _choice(field: str, value: str, allowed: type) -> None:
    if value not in {str(v) for v in allowed}:
        raise TemplateInvalid(field, f"one of: {', '.join(allowed)}", where="path")


def _names(kind: Kind, field: str, source: str) -> None:
    try:
        compiled = compile_source(source)
    except Refused as exc:
        raise TemplateInvalid(field, exc.message, exc.line) from None
    for name, line in compiled.names.items():
        if name not in KEYS[kind]:
            raise TemplateInvalid(field, f"'{name}' is undefined: a {kind} template may use "
                                         f"{', '.join(KEYS[kind])}", line)


def _fits(channel: str, rendered: Rendered) -> None:
    if channel == Channel.email:
        if not rendered.subject:
            raise TemplateInvalid("subject", "the subject renders empty")
        if len(rendered.subject) > MAX_SUBJECT_CHARS:
            raise TemplateInvalid("subject", f"the subject renders {len(rendered.subject)} characters long; "
                                             f"at most {MAX_SUBJECT_CHARS}")
    if not rendered.body.strip():
        raise TemplateInvalid("body", "the body renders empty")
    size = rendered.size
    if size is not None and size.segments > MAX_SMS_SEGMENTS:
        raise TemplateInvalid("body", f"the SMS takes {size.segments} parts ({size.encoding}, {size.units} "
                                      f"units with the sample); at most {MAX_SMS_SEGMENTS}")


def validate(kind: str, channel: str, language: str, subject: str, body: str) -> Rendered:
    """The sample message of a template that may be saved; else TemplateInvalid naming the field at fault."""
    _choice("kind", kind, Kind)
    _choice("channel", channel, Channel)
    _choice("language", language, Language)
    kind = Kind(kind)
    if channel == Channel.sms and subject.strip():
        raise TemplateInvalid("subject", "an SMS has no subject; leave it empty")
    if channel == Channel.email and not subject.strip():
        raise TemplateInvalid("subject", "an email needs a subject")
    if not body.strip():
        raise TemplateInvalid("body", "the body is empty")
    _names(kind, "subject", subject)
    _names(kind, "body", body)
    draft = Draft(channel, subject, body)
    full = _render(draft, sample(kind, language))
    for rendered in (full, _render(draft, sparse(kind, language))):
        _fits(channel, rendered)
    return full
