"""The schema of the matching rules file (rules.yaml). Every mistake is refused at load with the path to
it, so a typo can never silently drop a referral. See docs/matching.md."""
from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from schemas.events.common import Urgency
from schemas.vocab import Need
from services.referral.directory.model import Service, UnitKind


class RulesError(ValueError):
    """The rules file does not parse or does not validate. `problems` lists one line per mistake."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- conditions -----------------------------------------------------------------------------------

class Fact(StrEnum):
    """Boolean facts a condition may test. `child_involved` and `abroad` are derived (see engine)."""

    at_sea = "at_sea"
    moving_across_border = "moving_across_border"
    child_involved = "child_involved"  # the flag, or any victim is_child
    abroad = "abroad"  # abroad_country is set
    immediate_danger = "immediate_danger"
    violence = "violence"
    consent_share_identity = "consent_share_identity"


class ProvinceTrait(StrEnum):
    border = "border"
    coastal = "coastal"


CONDITION_KEYS = ("always", "urgency_in", "province_is", "any", "all", *Fact)


class Condition(Strict):
    """Exactly one key: `always`, `urgency_in`, `province_is`, a boolean fact, or `any`/`all` of conditions.
    The bare string "always" is accepted for `{always: true}`."""

    always: Literal[True] | None = None
    urgency_in: Annotated[list[Urgency], Field(min_length=1)] | None = None
    province_is: ProvinceTrait | None = None
    any: Annotated[list[Condition], Field(min_length=1)] | None = None
    all: Annotated[list[Condition], Field(min_length=1)] | None = None
    at_sea: StrictBool | None = None
    moving_across_border: StrictBool | None = None
    child_involved: StrictBool | None = None
    abroad: StrictBool | None = None
    immediate_danger: StrictBool | None = None
    violence: StrictBool | None = None
    consent_share_identity: StrictBool | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_key(cls, data: Any) -> Any:
        if data == "always":
            return {"always": True}
        if not isinstance(data, dict):
            raise ValueError(f'a condition is "always" or a mapping with one key of: {", ".join(CONDITION_KEYS)}')
        if len(data) != 1:
            keys = ", ".join(map(str, data)) or "none"
            raise ValueError(f"a condition has exactly one key (got {keys}); combine several with any:/all:")
        key, value = next(iter(data.items()))
        if value is None:
            raise ValueError(f"condition `{key}` needs a value")
        return data

    @property
    def key(self) -> str:
        return next(iter(self.model_fields_set))


# ---- routes ---------------------------------------------------------------------------------------

class Scope(StrEnum):
    """Where to look for a unit, relative to the case."""

    commune = "commune"  # units serving the case's commune
    province = "province"  # units serving the case's province
    region = "region"  # units serving the province's hotline region
    nation = "nation"  # national units
    abroad_country = "abroad_country"  # units for the country the victim is in
    covering_province = "covering_province"  # units the directory lists as covering the province (Coast Guard)
    destination_border = "destination_border"  # provinces on the border with the destination, own region first


SERVICE_SCOPES = (Scope.commune, Scope.province, Scope.region, Scope.nation)


class KindStep(Strict):
    kind: UnitKind
    at: Scope


class KindRoute(KindStep):
    """A unit of `kind` at `at`; when none is eligible, each `fallback` step in turn."""

    fallback: list[KindStep] = []


def _levels(levels: list[Scope]) -> list[Scope]:
    wrong = [s.value for s in levels if s not in SERVICE_SCOPES]
    if wrong:
        raise ValueError(f"levels are among {', '.join(SERVICE_SCOPES)} (got {', '.join(wrong)})")
    if len(set(levels)) != len(levels):
        raise ValueError("a level is listed twice")
    return levels


class ServiceRoute(Strict):
    """The nearest eligible unit offering `service`, trying `levels` in order."""

    service: Service
    levels: Annotated[list[Scope], Field(min_length=1)]

    _check_levels = field_validator("levels")(_levels)


class NeedsRoute(Strict):
    """For each listed need that any victim has, the nearest eligible unit offering the service of the same
    name, trying `levels` in order."""

    each_need: Annotated[list[Need], Field(min_length=1)]
    levels: Annotated[list[Scope], Field(min_length=1)]

    _check_levels = field_validator("levels")(_levels)

    @field_validator("each_need")
    @classmethod
    def _needs_have_services(cls, needs: list[Need]) -> list[Need]:
        missing = [n.value for n in needs if n.value not in Service.__members__]
        if missing:
            raise ValueError(f"no directory service is named like need(s) {', '.join(missing)}")
        if len(set(needs)) != len(needs):
            raise ValueError("a need is listed twice")
        return needs


def _route_tag(data: Any) -> str | None:
    if isinstance(data, dict):
        return next((k for k in ("kind", "service", "each_need") if k in data), None)
    return next((k for k in ("kind", "service", "each_need") if hasattr(data, k)), None)


Route = Annotated[
    Annotated[KindRoute, Tag("kind")]
    | Annotated[ServiceRoute, Tag("service")]
    | Annotated[NeedsRoute, Tag("each_need")],
    Discriminator(
        _route_tag,
        custom_error_type="route_form",
        custom_error_message="a route has `kind` (with `at`), `service` (with `levels`) or `each_need` (with `levels`)",
    ),
]


# ---- rules and consent ----------------------------------------------------------------------------

class Rule(Strict):
    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,63}$")]
    reason: Annotated[str, Field(min_length=1, max_length=300)]  # why this unit is told; shown on the referral
    when: Condition
    route: Route
    # In an emergency, take only units open now or reachable through a 24/7 duty contact.
    emergency_requires_open_now: StrictBool = False


class ConsentPolicy(Strict):
    """What a referral carries: the victim's identity, or only the facts. Never whether a unit is told."""

    law_enforcement_kinds: Annotated[list[UnitKind], Field(min_length=1)]
    law_enforcement_identity_when: Condition
    others_identity_when: Condition


class RuleSet(Strict):
    format: Literal[1]
    consent: ConsentPolicy
    rules: Annotated[list[Rule], Field(min_length=1)]

    @field_validator("rules")
    @classmethod
    def _unique_ids(cls, rules: list[Rule]) -> list[Rule]:
        seen: set[str] = set()
        twice = [r.id for r in rules if r.id in seen or seen.add(r.id)]
        if twice:
            raise ValueError(f"rule id(s) used twice: {', '.join(twice)}")
        return rules


# ---- parsing --------------------------------------------------------------------------------------

def _where(loc: tuple) -> str:
    out = ""
    for i, part in enumerate(loc):
        if i and loc[i - 1] == "route" and part in ("kind", "service", "each_need"):
            continue  # the union's tag: the path stays as the user wrote it
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _problem(e: dict) -> str:
    got = e.get("input")
    shown = f" (got {got!r})" if isinstance(got, str | int | float | bool) and e["type"] != "missing" else ""
    return f"{_where(e['loc'])}: {e['msg']}{shown}"


def _problems(err: ValidationError) -> list[str]:
    return [_problem(e) for e in err.errors(include_url=False)]


def validate_rules(data: Any, source: str = "<rules>") -> RuleSet:
    """Validate an already-parsed document. Raises only RulesError."""
    if not isinstance(data, dict):
        raise RulesError(source, [f"the file is a mapping with format, consent and rules (got {type(data).__name__})"])
    try:
        return RuleSet.model_validate(data)
    except ValidationError as err:
        raise RulesError(source, _problems(err)) from None
    except RecursionError:
        raise RulesError(source, ["conditions nested too deeply"]) from None


def parse_rules(text: str | bytes, source: str = "<rules>") -> RuleSet:
    """Parse and validate YAML text. Raises only RulesError."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise RulesError(source, [f"not valid YAML: {err}".replace("\n", " ")]) from None
    except (ValueError, TypeError, RecursionError) as err:  # e.g. a date like 2025-13-40 that YAML tries to build
        raise RulesError(source, [f"not valid YAML: {err}"]) from None
    return validate_rules(data, source)
