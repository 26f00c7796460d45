"""Consent: whether a referral carries the victim's identity. It never decides whether a unit is told:
the police referral is always made; without consent it carries the facts only."""
from __future__ import annotations

from services.referral.directory.model import Unit
from services.referral.matching.conditions import CaseView, Geography, Verdict, check
from services.referral.matching.rules import ConsentPolicy


def identity_verdict(unit: Unit, case: CaseView, policy: ConsentPolicy, geo: Geography) -> Verdict:
    """Law enforcement and the other units each have their own condition in rules.yaml `consent:`."""
    if unit.kind in policy.law_enforcement_kinds:
        audience, condition = "law-enforcement unit", policy.law_enforcement_identity_when
    else:
        audience, condition = "unit outside law enforcement", policy.others_identity_when
    verdict = check(condition, case, geo)
    decision = "identity shared" if verdict.ok else "identity withheld (facts only)"
    return Verdict(verdict.ok, f"{decision} with {unit.code}, a {audience}: {verdict.text}", verdict.facts)
