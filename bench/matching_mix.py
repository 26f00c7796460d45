"""The case mix of `python -m bench matching`: CaseReported payloads as intake emits them, rotating over
every commune of the 2025 map, and their Kafka records (CloudEvents in binary mode, key = case id).

Pure and stack-free, so tests/unit/test_bench_matching.py can check it. The facts are drawn from one
seeded random stream (per seed and start), so two runs match the same mix; case ids are fresh (uuid4) so that a reused
database never takes a new run's events for redeliveries of an old one.
"""
from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import count

from runtime.cloudevents import Envelope
from schemas import event_spec_for_model
from schemas.events.cases import CaseReported, VictimSummary
from schemas.events.common import Channel, Urgency
from schemas.geography import communes
from schemas.vocab import AgeBand, Exploitation, MeansOfControl, Need, RecruitmentChannel, Sex
from services.referral.directory.facts import border_countries, coastal_provinces

SOURCE = "/hotline111/intake"  # what intake's outbox stamps on its events (runtime.service)
REPORTED_AT = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)

URGENCIES = (Urgency.normal, Urgency.high, Urgency.emergency)
URGENCY_WEIGHTS = (0.6, 0.3, 0.1)
CHILD_SHARE = 0.25  # a child victim, with one to three needs
AT_SEA_SHARE = 0.25  # of the cases in a coastal province
ABROAD_SHARE = 0.10
ACROSS_BORDER_SHARE = 0.10  # of the cases not abroad: being moved across a border now
# CN, LA, KH have a counterpart in the directory; TH and MY do not (the counterpart rule finds nobody).
ABROAD_COUNTRIES = ("CN", "CN", "LA", "KH", "TH", "MY")
CHILD_NEEDS = (Need.shelter, Need.psychological, Need.medical, Need.legal_aid, Need.documents)
ADULT_NEEDS = (Need.medical, Need.psychological, Need.shelter, Need.legal_aid, Need.documents, Need.repatriation,
               Need.financial_support)
ADULT_BANDS = (AgeBand.a18_20, AgeBand.a21_23, AgeBand.a24_26, AgeBand.a27_29, AgeBand.a30_38, AgeBand.a39_47)
CHANNELS = (Channel.phone, Channel.phone, Channel.phone, Channel.chat, Channel.sms, Channel.web_form)


def case_mix(seed: int = 111, start: int = 0, reported_at: datetime = REPORTED_AT) -> Iterator[CaseReported]:
    """Endless CaseReported payloads. Case `start + i` is in commune number `(start + i) % 3321` in code
    order, so any 3,321 consecutive cases cover every commune once. The mix: urgency normal 60 %, high
    30 %, emergency 10 % (mostly with someone in danger now); a child victim with needs in a quarter of
    the cases; a quarter of the cases in coastal provinces at sea; a tenth abroad (some in countries
    without a counterpart); a tenth of the rest being moved across a border."""
    places = sorted(communes().items())
    coastal, borders = coastal_provinces(), border_countries()
    rng = random.Random(f"{seed}/{start}")  # a str seed is hashed the same way in every process
    for i in count(start):
        commune, (_name, province) = places[i % len(places)]
        facts = _facts(rng, commune, province, coastal, borders)
        yield CaseReported(case_id=uuid.uuid4(), case_number=f"111-2026-{i + 1:06d}", reported_at=reported_at,
                           **facts)


def _facts(rng: random.Random, commune: str, province: str, coastal, borders) -> dict:
    urgency = rng.choices(URGENCIES, URGENCY_WEIGHTS)[0]
    child = rng.random() < CHILD_SHARE
    victims = []
    if child:
        victims.append(VictimSummary(
            sex=rng.choice((Sex.female, Sex.female, Sex.male)), age_band=rng.choice((AgeBand.a0_8, AgeBand.a9_17)),
            is_child=True, nationality="VN", needs=rng.sample(CHILD_NEEDS, rng.randint(1, 3))))
    for _ in range(rng.randint(0 if child else 1, 2)):
        victims.append(VictimSummary(
            sex=rng.choice((Sex.female, Sex.female, Sex.male, Sex.unknown)), age_band=rng.choice(ADULT_BANDS),
            is_child=False, nationality="VN", needs=rng.sample(ADULT_NEEDS, rng.randint(0, 2))))
    abroad = rng.choice(ABROAD_COUNTRIES) if rng.random() < ABROAD_SHARE else None
    at_sea = abroad is None and province in coastal and rng.random() < AT_SEA_SHARE
    moving = abroad is None and rng.random() < ACROSS_BORDER_SHARE
    return {
        "province_code": province, "commune_code": commune, "urgency": urgency,
        "victims": victims, "child_involved": child,
        "exploitation": rng.sample(list(Exploitation), rng.randint(1, 2)),
        "means_of_control": rng.sample(list(MeansOfControl), rng.randint(0, 3)),
        "recruitment_channel": rng.choice(list(RecruitmentChannel)),
        "immediate_danger": urgency is Urgency.emergency and rng.random() < 0.7,
        "violence": rng.random() < 0.2,
        "abroad_country": abroad,
        "moving_across_border": moving,
        "destination_country": rng.choice(borders.get(province, ("CN",))) if moving else None,
        "at_sea": at_sea,
        "consent_share_identity": rng.random() < 0.5,
        "channel": rng.choice(CHANNELS),
    }


def record(case: CaseReported, now: datetime | None = None) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """(key, value, headers) as intake's outbox relay produces a CaseReported: CloudEvents binary mode
    (runtime.cloudevents.Envelope.headers), the payload's JSON as the value, the case id as the key."""
    spec = event_spec_for_model(CaseReported)
    headers = Envelope(uuid.uuid4(), SOURCE, spec.type, now or datetime.now(UTC), None, b"").headers()
    return str(case.case_id).encode(), case.model_dump_json().encode(), headers


def records(cases: list[CaseReported]) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    now = datetime.now(UTC)
    return [record(c, now) for c in cases]
