"""Who would receive a case, and why, without referring anyone; and which rules are in force."""
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import to_jsonable_python

from runtime.auth import Role, require
from runtime.service import get_uow
from runtime.uow import UnitOfWork
from schemas.events.cases import CaseFacts
from schemas.geography import check_commune, check_province
from services.referral.matching.engine import explain

router = APIRouter(prefix="/matching", tags=["matching"],
                   dependencies=[Depends(require(Role.OPERATOR, Role.SUPERVISOR))])
Uow = Annotated[UnitOfWork, Depends(get_uow)]
DRY_RUN_ID = UUID(int=0)


class DryRunIn(CaseFacts):
    """A case's facts as intake sends them; the ids are optional here. Unlike an event (read leniently,
    so a newer producer's fields pass), a person's request refuses unknown fields and places."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    case_id: UUID = DRY_RUN_ID
    case_number: str = "dry-run"
    at: AwareDatetime | None = Field(None, description="Match as at this time (opening hours); now if absent.")

    _province = field_validator("province_code")(lambda cls, v: check_province(v))

    @field_validator("commune_code")
    @classmethod
    def _commune(cls, v: str | None, info: ValidationInfo) -> str | None:
        return check_commune(v, info.data.get("province_code"))


class ChosenUnit(BaseModel):
    code: str
    name: str
    kind: str
    level: str
    rules: list[str]
    reasons: dict[str, str]
    needs: list[str]
    identity_shared: bool


class DryRunOut(BaseModel):
    rules_version: str
    directory_units: int
    units: list[ChosenUnit]
    unmatched: list[str] = Field(description="Rules (or rule:need) whose condition held but found no unit.")
    trace: list[dict[str, Any]] = Field(description="Every step of every rule, chosen or skipped, and why.")


@router.post("/dry-run", response_model=DryRunOut)
async def dry_run(facts: DryRunIn, uow: Uow, request: Request) -> DryRunOut:
    """Who would receive this case, with the full trace. Nothing is written and nobody is alerted."""
    referrer = request.app.state.referrer
    directory = await referrer.directory.current(uow.session)
    outcome = explain(facts, directory, referrer.rules, facts.at or datetime.now(UTC))
    return DryRunOut(
        rules_version=referrer.rules.version, directory_units=len(directory.units),
        units=[ChosenUnit(code=m.unit.code, name=m.unit.name, kind=m.unit.kind, level=m.unit.level,
                          rules=list(m.rules), reasons=m.reasons, needs=list(m.needs),
                          identity_shared=m.identity_shared) for m in outcome.matches],
        unmatched=list(outcome.unmatched), trace=to_jsonable_python([asdict(s) for s in outcome.trace]),
    )


@router.get("/rules")
async def rules_status(request: Request) -> dict:
    """The rules in force: version (sha256 of the file), when loaded, and the last refused file's error."""
    return request.app.state.referrer.rules.status()
