"""The case as the rules see it, and the meaning of a rule's `when:`. Each evaluation says which facts
decided it, so the trace can explain every referral."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from schemas.events.cases import CaseFacts
from schemas.events.common import Urgency
from schemas.vocab import Need
from services.referral.directory.model import Unit
from services.referral.matching.rules import Condition, Fact, ProvinceTrait


class Geography(Protocol):
    """What matching needs to know about places. DirectoryIndex provides it."""

    def region_of(self, province_code: str) -> str | None: ...

    def is_border_province(self, province_code: str) -> bool: ...

    def is_coastal_province(self, province_code: str) -> bool: ...

    def units_covering(self, province_code: str) -> list[Unit]: ...

    def border_provinces_with(self, country: str) -> list[str]: ...


@dataclass(frozen=True)
class CaseView:
    """The facts matching uses, read once from a CaseFacts payload (CaseReported, CaseUpdated, …)."""

    province_code: str
    commune_code: str | None
    urgency: Urgency
    child_flag: bool
    any_victim_is_child: bool
    needs: tuple[Need, ...]  # union over victims, first-seen order
    abroad_country: str | None
    destination_country: str | None
    at_sea: bool
    moving_across_border: bool
    immediate_danger: bool
    violence: bool
    consent_share_identity: bool

    @classmethod
    def of(cls, facts: Any) -> CaseView:
        if isinstance(facts, Mapping):
            facts = CaseFacts.model_validate(facts)
        victims = list(facts.victims or ())
        return cls(
            province_code=facts.province_code,
            commune_code=facts.commune_code,
            urgency=Urgency(facts.urgency),
            child_flag=bool(facts.child_involved),
            any_victim_is_child=any(v.is_child for v in victims),
            needs=tuple(dict.fromkeys(Need(n) for v in victims for n in v.needs)),
            abroad_country=facts.abroad_country,
            destination_country=facts.destination_country,
            at_sea=bool(facts.at_sea),
            moving_across_border=bool(facts.moving_across_border),
            immediate_danger=bool(facts.immediate_danger),
            violence=bool(facts.violence),
            consent_share_identity=bool(facts.consent_share_identity),
        )

    @property
    def child_involved(self) -> bool:
        return self.child_flag or self.any_victim_is_child

    @property
    def emergency(self) -> bool:
        return self.urgency is Urgency.emergency

    def fact(self, fact: Fact) -> tuple[bool, dict[str, Any]]:
        """A boolean fact and the raw facts behind it."""
        match fact:
            case Fact.child_involved:
                return self.child_involved, {"child_involved": self.child_flag,
                                             "any_victim_is_child": self.any_victim_is_child}
            case Fact.abroad:
                return self.abroad_country is not None, {"abroad_country": self.abroad_country}
            case _:
                value = getattr(self, fact.value)
                return value, {fact.value: value}


@dataclass(frozen=True)
class Verdict:
    ok: bool
    text: str  # e.g. "urgency_in [high, emergency]: urgency=normal → false"
    facts: dict[str, Any] = field(default_factory=dict)


def _show(facts: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_word(v)}" for k, v in facts.items())


def _word(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "none" if value is None else str(value)


def check(cond: Condition, case: CaseView, geo: Geography) -> Verdict:
    """Evaluate a condition. Combinators evaluate every branch so the trace shows all the facts."""
    key = cond.key
    if key == "always":
        return Verdict(True, "always → true")
    if key in ("any", "all"):
        parts = [check(c, case, geo) for c in getattr(cond, key)]
        ok = any(p.ok for p in parts) if key == "any" else all(p.ok for p in parts)
        facts = {k: v for p in parts for k, v in p.facts.items()}
        return Verdict(ok, f"{key}({'; '.join(p.text for p in parts)}) → {_word(ok)}", facts)
    if key == "urgency_in":
        ok = case.urgency in cond.urgency_in
        listed = ", ".join(cond.urgency_in)
        text = f"urgency in [{listed}]: urgency={case.urgency} → {_word(ok)}"
        return Verdict(ok, text, {"urgency": case.urgency.value})
    if key == "province_is":
        trait = cond.province_is
        test = geo.is_border_province if trait is ProvinceTrait.border else geo.is_coastal_province
        ok = test(case.province_code)
        facts = {"province_code": case.province_code, f"{trait}_province": ok}
        return Verdict(ok, f"province is {trait}: {_show(facts)} → {_word(ok)}", facts)
    fact = Fact(key)
    expected = getattr(cond, key)
    value, facts = case.fact(fact)
    ok = value == expected
    return Verdict(ok, f"{key} is {_word(expected)}: {_show(facts)} → {_word(ok)}", facts)
