"""What the templates API takes and gives."""
from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.notify.templates.kinds import Channel, Kind, Language
from services.notify.templates.sandbox import MAX_SOURCE_CHARS

ContextValue = Annotated[str, StringConstraints(max_length=1000)]

MAX_VERSION = 2**31 - 1  # the column is an integer: a larger number names no version (422, not a database error)


class TemplateQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Kind | None = None
    channel: Channel | None = None
    language: Language | None = None
    all_versions: bool = Field(False, description="Every version, newest first; default: the versions in force.")


class TemplateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str = Field("", max_length=MAX_SOURCE_CHARS, description="Email only; empty for SMS.")
    body: str = Field(max_length=MAX_SOURCE_CHARS, description="Jinja2 text over the kind's context.")


class TemplateOut(BaseModel):
    id: UUID
    kind: str
    channel: str
    language: str
    version: int
    subject: str
    body: str
    created_at: datetime
    created_by: str


class PreviewIn(BaseModel):
    """A stored template (no body: the version in force, or `version`) or a draft (a body, and a subject for
    email), rendered with the kind's sample, over which `context` may set some values."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind
    channel: Channel
    language: Language
    version: int | None = Field(None, ge=1, le=MAX_VERSION, description="Of the stored template; not with a draft.")
    subject: str | None = Field(None, max_length=MAX_SOURCE_CHARS)
    body: str | None = Field(None, max_length=MAX_SOURCE_CHARS)
    context: dict[str, ContextValue] = Field(default_factory=dict, max_length=50,
                                             description="Values of the kind's context to use instead of "
                                                         "the sample's.")


class PreviewOut(BaseModel):
    kind: str
    channel: str
    language: str
    version: int | None = Field(description="The stored version rendered; null for a draft.")
    subject: str
    body: str
    encoding: str | None = Field(description="SMS: gsm7 or ucs2.")
    characters: int | None = None
    units: int | None = Field(None, description="SMS: septets (gsm7) or UTF-16 code units (ucs2).")
    segments: int | None = Field(None, description="SMS: parts billed.")
    max_segments: int | None = Field(None, description="SMS: the most a template may take when saved.")
