"""`python -m bench reporting`: how fast reporting's projections take the event stream, how fast the analyst
API answers over 1,000,000 contacts, and how long a rebuild of 1,000,000 events takes, beside ceilings
measured in the same run.

1. Durable PostgreSQL, a fresh Tansu, every migration, then reporting alone (no intake, referral or notify:
   the bench produces what their outbox relays would). --events events (default 1,000,000) are made up
   front, untimed, as the hotline's stream over about twelve years: every contact (ContactRecorded: all
   channels, types, provinces, caller roles), and for --case-share of them (700 of 30,170: the hotline's
   own figures) a case with its whole life: CaseReported, CaseUpdated, CaseStatusChanged (referred, in
   progress, closed); three to five referrals each (ReferralCreated, ReferralStatusChanged to notified,
   acknowledged, accepted or declined, some ReferralOutcomeRecorded), and an SMS and an email alert per
   referral (NotificationStatusChanged: created, sending, sent for SMS, delivered). Each record is what the
   relay would send: CloudEvents binary mode (runtime.cloudevents.Envelope, with a traceparent), the
   payload as PostgreSQL's jsonb text of model_dump(mode="json"), key = case id (a contact's own id when it
   has no case), the events' own times. The stream is cut at the N-th event in time order: the newest cases
   are still open, as they would be.
2. Warm-up: the first --warmup events, until the projections hold them (reporting.positions covers the
   broker's end offsets). Then --idle-seconds of idle CPU.
3. Projection: the rest produced as fast as one producer with the relay's settings goes, while reporting
   consumes them; the clock runs from the first produce until the positions cover every end offset
   (polled every 0.5 s). Events/s overall, after the produce ended, and over the middle 80 %; CPU per
   event per process; PostgreSQL transactions, rows written and WAL fsyncs per event; row counts.
4. Rebuild: request_rebuild (services/reporting/rebuild.py), timed from the request until the positions
   hold every event again, with wait_caught_up (the broker's end offsets) beside it. The consumer should
   notice the new generation by itself and rejoin; if nothing is replayed within --nudge-after s, one
   CaseNoteAdded (a real intake event reporting ignores) wakes it, and the table says so. The rebuilt rows
   must equal the projected ones.
5. Queries: ContactRecorded events alone until the projections hold --query-contacts contacts (default
   1,000,000; the mix has fewer), then with an analyst token, closed loop, --query-concurrency in flight:
   GET /v1/stats (auth and FastAPI, no database: the floor), GET /v1/stats/summary (all time) and GET
   /v1/stats/contacts?group=month&by=province, --query-warmup then --queries each: p50 / p99. Beside them:
   the same service functions in the bench process (no HTTP) and their SQL alone through asyncpg.
6. Profile: py-spy on reporting while --profile-events more of the mix are projected, and during
   --profile-queries of each query.
7. Ceilings, reporting stopped: the topics' records read back raw by one group-less aiokafka consumer;
   a sample of --kafka-records produced and consumed raw on a scratch topic; pgbench 1-row INSERTs, and
   200 1-row INSERTs per transaction (the consumer's batch).

Prints one table and writes bench/results/reporting-<UTC>.json (and the py-spy stacks beside it).
"""
from __future__ import annotations

import argparse
import asyncio
import bisect
import functools
import gc
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench import ceilings, load, machine, report, reporting_report
from bench.common import add_pgbench_args, apply_profiles, check_local, fetchval, fresh_stack, new_parser, run, say
from bench.matching import _machine_busy, _with_others, kafka_ceiling
from bench.profile import Recorder, focus, py_spy_path, summarise
from bench.stats import rate, summary_ms
from devstack.postgres import pgbench_path
from devstack.stack import Stack, prepare, start_services
from runtime.cloudevents import Envelope
from runtime.db import asyncpg_dsn
from runtime.kafka import new_producer
from schemas import event_spec_for_model
from schemas.events.cases import CaseNoteAdded, CaseReported, CaseStatusChanged, CaseUpdated
from schemas.events.contacts import ContactRecorded
from schemas.events.notifications import NotificationStatusChanged
from schemas.events.referrals import ReferralCreated, ReferralOutcomeRecorded, ReferralStatusChanged
from schemas.geography import communes, provinces
from schemas.vocab import CHILD_BANDS

# -- the stream ------------------------------------------------------------------------------------
CASE_SHARE = 700 / 30_170  # the hotline's own figures: 30,170 calls, 700 cases referred
YEARS = 12
SOURCES = {"intake": "/hotline111/intake", "referral": "/hotline111/referral", "notify": "/hotline111/notify"}
MODELS = {  # short name -> (model, the service whose outbox emits it)
    "contact": (ContactRecorded, "intake"),
    "case.reported": (CaseReported, "intake"),
    "case.updated": (CaseUpdated, "intake"),
    "case.status": (CaseStatusChanged, "intake"),
    "case.note": (CaseNoteAdded, "intake"),
    "referral.created": (ReferralCreated, "referral"),
    "referral.status": (ReferralStatusChanged, "referral"),
    "referral.outcome": (ReferralOutcomeRecorded, "referral"),
    "notification": (NotificationStatusChanged, "notify"),
}
SPECS = {name: event_spec_for_model(model) for name, (model, _) in MODELS.items()}

# Weights: what the hotline's contacts look like (most calls are consultations or not cases at all).
CHANNELS = {"phone": 80, "chat": 7, "sms": 4, "web_form": 4, "walk_in": 2, "agency": 3}
CONTACT_TYPES = {"consultation": 45, "non_case": 35, "information_report": 10, "follow_up": 7, "emergency": 3}
NON_CASE_REASONS = {"silent": 40, "prank": 20, "wrong_number": 25, "abusive": 5, "other": 10}
CALLER_ROLES = {"citizen_or_witness": 35, "relative_or_friend": 30, "victim": 15, "anonymous": 15, "agency": 5}
SEXES = {"female": 55, "male": 40, "other": 1, "unknown": 4}
AGE_BANDS = {"0-8": 1, "9-17": 10, "18-20": 12, "21-23": 12, "24-26": 10, "27-29": 9, "30-38": 18, "39-47": 12,
             "48+": 8, "unknown": 8}
LANGUAGES = {"vi": 96, "en": 2, "zh": 1, "km": 0.5, "lo": 0.5}
TOPICS_ = ("legal_advice", "victims_rights", "support_services", "prevention", "safe_migration", "other")
URGENCIES = {"normal": 55, "high": 35, "emergency": 10}
EXPLOITATION = {"forced_labour": 35, "sexual_exploitation": 30, "forced_marriage": 20, "material_benefit": 5,
                "organ_removal": 2, "foetus_trading": 2, "slavery_and_practices": 2, "forced_military": 1,
                "other_inhumane_purposes": 3}
MEANS = ("debt_bondage", "takes_earnings", "threats", "psychological_abuse", "physical_abuse", "sexual_abuse",
         "false_promises", "restricts_movement", "withholds_documents", "excessive_working_hours", "other")
RECRUITMENT = {"facebook": 30, "zalo": 20, "tiktok": 8, "telegram": 5, "other_social_media": 5,
               "job_advertisement": 8, "marriage_broker": 6, "in_person": 6, "family_or_friend": 8, "other": 2,
               "unknown": 2}
NEEDS = ("medical", "psychological", "shelter", "legal_aid", "repatriation", "documents", "travel_and_meals",
         "vocational_training", "financial_support", "other")
ABROAD = {"CN": 50, "LA": 12, "KH": 15, "MY": 6, "TH": 5, "KR": 4, "JP": 3, "TW": 3, "MM": 2}
CASE_OUTCOMES = {"rescued": 30, "assisted": 30, "returned": 15, "not_substantiated": 15, "duplicate": 2,
                 "transferred_abroad": 8}
REFERRAL_OUTCOMES = {"investigation_opened": 35, "victims_rescued": 20, "victims_supported": 30,
                     "repatriated": 10, "not_substantiated": 5}
DECLINES = {"not_competent": 50, "no_capacity": 20, "already_handled": 20, "other": 10}
# The units a case goes to: (kind, level, weight); the commune police and the provincial police nearly always.
UNITS = (("police_commune", "commune", 90), ("police_province", "province", 90), ("peoples_committee", "commune", 70),
         ("social_protection_centre", "province", 45), ("child_protection_centre", "province", 15),
         ("border_guard_province", "province", 25), ("regional_centre", "region", 20),
         ("consular_department", "national", 8), ("legal_aid_centre", "province", 10),
         ("womens_union_shelter", "province", 10), ("hospital", "province", 8))
NS = uuid.UUID("6f1c3c1e-2b55-4d0c-9a53-0b5f1f8a1111")  # the bench's namespace for agency unit ids


def jsonb_text(value) -> str:
    """PostgreSQL's jsonb::text of a JSON value, which is what the relay reads from the outbox
    (`payload::text`): object keys shortest first, then bytewise; ", " and ": " between items."""
    return json.dumps(_jsonb_order(value), ensure_ascii=False, separators=(", ", ": "))


_KEY_ORDER: dict[tuple, list] = {}  # an object's keys -> their jsonb order (few shapes, many events)


def _jsonb_order(value):
    if type(value) is dict:
        keys = tuple(value)
        order = _KEY_ORDER.get(keys)
        if order is None:
            order = _KEY_ORDER[keys] = sorted(keys, key=lambda k: (len(k.encode()), k.encode()))
        return {k: _jsonb_order(v) if type(v := value[k]) in (dict, list) else v for k in order}
    if type(value) is list:
        return [_jsonb_order(v) if type(v) in (dict, list) else v for v in value]
    return value


def iso_z(ts: float) -> str:
    """A time as pydantic writes an aware UTC datetime in JSON (whole seconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(ts)))


def _cum(weights: dict) -> tuple[list, list[float]]:
    keys, total, cum = list(weights), 0.0, []
    for k in keys:
        total += weights[k]
        cum.append(total)
    return keys, cum


@dataclass
class Stream:
    """The records in time order: (epoch s, kind, topic, key, value, headers), and what they hold."""

    records: list[tuple] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    first_ts: float | None = None
    last_ts: float | None = None

    def kafka(self, lo: int = 0, hi: int | None = None) -> list[tuple]:
        """(topic, key, value, headers) of records[lo:hi]."""
        return [(t, k, v, h) for _ts, _kind, t, k, v, h in self.records[lo:hi]]


class Mix:
    """The hotline's event stream, made reproducibly from `seed` (see the module docstring)."""

    def __init__(self, seed: int = 111, case_share: float = CASE_SHARE):
        self.rng = random.Random(seed)
        self.case_share = case_share
        self._serial: Counter = Counter()
        self._weighted = {name: _cum(w) for name, w in (
            ("channel", CHANNELS), ("contact_type", CONTACT_TYPES), ("non_case", NON_CASE_REASONS),
            ("role", CALLER_ROLES), ("sex", SEXES), ("band", AGE_BANDS), ("language", LANGUAGES),
            ("urgency", URGENCIES), ("exploitation", EXPLOITATION), ("recruitment", RECRUITMENT),
            ("abroad", ABROAD), ("case_outcome", CASE_OUTCOMES), ("referral_outcome", REFERRAL_OUTCOMES),
            ("decline", DECLINES))}
        codes = sorted(provinces())
        order = random.Random(seed + 1).sample(codes, len(codes))  # which provinces call most: seeded
        self._weighted["province"] = _cum({code: 1 / (rank + 2) for rank, code in enumerate(order)})
        self._communes: dict[str, list[str]] = {}
        for code, (_name, province) in sorted(communes().items()):
            self._communes.setdefault(province, []).append(code)

    # -- small helpers
    def pick(self, name: str) -> str:
        keys, cum = self._weighted[name]
        return self.rng.choices(keys, cum_weights=cum)[0]

    def uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def record(self, kind: str, ts: float, key: uuid.UUID, payload: dict, subject: str | None = None) -> tuple:
        spec, (_, service) = SPECS[kind], MODELS[kind]
        rng = self.rng
        extensions = {"traceparent": f"00-{rng.getrandbits(128):032x}-{rng.getrandbits(64):016x}-01"}
        at = datetime.fromtimestamp(ts, UTC)
        headers = Envelope(self.uuid(), SOURCES[service], spec.type, at, subject, b"", extensions).headers()
        return ts, kind, spec.topic, str(key).encode(), jsonb_text(payload).encode(), headers

    # -- contacts
    def contact(self, ts: float, case_id: uuid.UUID | None = None, contact_type: str | None = None,
                channel: str | None = None, province: str | None = None) -> tuple:
        rng, pick = self.rng, self.pick
        contact_type = contact_type or pick("contact_type")
        role = pick("role")
        topics = rng.sample(TOPICS_, rng.choice((1, 1, 2))) if contact_type == "consultation" else []
        given = (["information"] + (["referral_to_service"] if rng.random() < 0.2 else [])) if topics else []
        contact_id = self.uuid()
        payload = {
            "contact_id": str(contact_id), "case_id": str(case_id) if case_id else None,
            "channel": channel or pick("channel"), "contact_type": contact_type,
            "non_case_reason": pick("non_case") if contact_type == "non_case" else None,
            "started_at": iso_z(ts), "duration_s": 5 + int(rng.lognormvariate(5.3, 0.9)),
            "language": pick("language"), "caller_role": role, "caller_sex": pick("sex"),
            "caller_age_band": pick("band"),
            "caller_province_code": province or (pick("province") if rng.random() < 0.85 else None),
            "repeat_caller": rng.random() < 0.2, "consent_callback": rng.random() < 0.4,
            "consent_share_identity": rng.random() < 0.3, "consultation_topics": topics, "consultation_given": given,
        }
        return self.record("contact", ts, case_id or contact_id, payload)

    # -- a case and its whole life
    def case(self, t0: float) -> list[tuple]:
        """A case reported from a contact at t0: the contact, the case's events, its referrals and alerts."""
        rng, pick = self.rng, self.pick
        case_id = self.uuid()
        emergency = rng.random() < 0.25
        channel = pick("channel")
        province = pick("province")
        out = [self.contact(t0, case_id, "emergency" if emergency else "information_report", channel, province)]
        t1 = t0 + 60 + rng.uniform(60, 900)  # the operator files the report after the call
        year = time.gmtime(t1).tm_year
        self._serial[year] += 1
        number = f"111-{year}-{self._serial[year]:06d}"
        urgency = "emergency" if emergency else pick("urgency")
        victims = [self.victim() for _ in range(rng.choices((1, 2, 3, 4), (70, 20, 7, 3))[0])]
        abroad = pick("abroad") if rng.random() < 0.4 else None
        facts = {
            "case_id": str(case_id), "case_number": number, "province_code": province,
            "commune_code": rng.choice(self._communes[province]) if rng.random() < 0.7 else None,
            "urgency": urgency, "version": 1, "victims": victims,
            "child_involved": any(v["is_child"] for v in victims),
            "exploitation": sorted({pick("exploitation")} | ({pick("exploitation")} if rng.random() < 0.2 else set())),
            "means_of_control": sorted(rng.sample(MEANS, rng.choice((0, 1, 1, 2, 3)))),
            "recruitment_channel": pick("recruitment") if rng.random() < 0.8 else None,
            "immediate_danger": emergency, "violence": rng.random() < 0.2, "abroad_country": abroad,
            "moving_across_border": rng.random() < 0.05,
            "destination_country": pick("abroad") if not abroad and rng.random() < 0.1 else None,
            "at_sea": rng.random() < 0.03, "consent_share_identity": rng.random() < 0.5,
        }
        # The case's own events, numbered in time order (the case's version after each change).
        life = [(t1, "reported", None), (t1 + rng.uniform(5, 60), "status", ("open", "referred", None))]
        for _ in range(rng.choices((0, 1, 2), (30, 45, 25))[0]):
            life.append((t1 + rng.uniform(3600, 10 * 86400), "updated", None))
        if rng.random() < 0.9:
            t_prog = t1 + rng.uniform(86400, 5 * 86400)
            life.append((t_prog, "status", ("referred", "in_progress", None)))
            if rng.random() < 0.85:
                life.append((t_prog + rng.uniform(10, 180) * 86400, "status",
                             ("in_progress", "closed", pick("case_outcome"))))
        life.sort(key=lambda x: x[0])
        for version, (ts, what, status) in enumerate(life, start=1):
            if what == "reported":
                payload = facts | {"reported_at": iso_z(t1), "channel": channel}
                out.append(self.record("case.reported", ts, case_id, payload, number))
            elif what == "updated":
                facts = self.update(facts)
                payload = facts | {"version": version, "changed": facts.pop("_changed"), "updated_at": iso_z(ts)}
                out.append(self.record("case.updated", ts, case_id, payload, number))
            else:
                frm, to, outcome = status
                payload = {"case_id": str(case_id), "case_number": number, "province_code": province,
                           "version": version, "from_status": frm, "to_status": to, "outcome": outcome,
                           "changed_at": iso_z(ts)}
                out.append(self.record("case.status", ts, case_id, payload, number))
        kinds = self.units(facts)
        for kind, level in kinds:
            out += self.referral(t1 + rng.uniform(1, 30), case_id, number, facts, kind, level)
        return out

    def victim(self) -> dict:
        rng = self.rng
        band = self.pick("band")
        return {"sex": self.pick("sex"), "age_band": band, "is_child": band in CHILD_BANDS,
                "nationality": "VN" if rng.random() < 0.9 else (None if rng.random() < 0.5 else self.pick("abroad")),
                "needs": sorted(rng.sample(NEEDS, rng.choice((0, 1, 2, 2, 3))))}

    def update(self, facts: dict) -> dict:
        rng = self.rng
        what = rng.choice(("urgency", "victims", "exploitation", "means_of_control"))
        new = dict(facts)
        if what == "urgency":
            new["urgency"] = self.pick("urgency")
        elif what == "victims":
            new["victims"] = [*facts["victims"], self.victim()]
            new["child_involved"] = any(v["is_child"] for v in new["victims"])
        elif what == "exploitation":
            new["exploitation"] = sorted({*facts["exploitation"], self.pick("exploitation")})
        else:
            new["means_of_control"] = sorted({*facts["means_of_control"], self.rng.choice(MEANS)})
        new["_changed"] = [what] + (["child_involved"] if new["child_involved"] != facts["child_involved"] else [])
        return new

    def units(self, facts: dict) -> list[tuple[str, str]]:
        """Three to five distinct kinds of unit; border guard and consular only when it crosses a border."""
        rng = self.rng
        cross = bool(facts["abroad_country"] or facts["destination_country"] or facts["moving_across_border"])
        pool = [(k, lv, w) for k, lv, w in UNITS if cross or k not in ("border_guard_province", "consular_department")]
        if not facts["child_involved"]:
            pool = [u for u in pool if u[0] != "child_protection_centre"]
        n = rng.choices((3, 4, 5), (30, 40, 30))[0]
        chosen: list[tuple[str, str]] = []
        while len(chosen) < min(n, len(pool)):
            kind, level, _ = rng.choices(pool, weights=[w for *_, w in pool])[0]
            if (kind, level) not in chosen:
                chosen.append((kind, level))
        return chosen

    def referral(self, tr: float, case_id, number: str, facts: dict, kind: str, level: str) -> list[tuple]:
        rng, pick = self.rng, self.pick
        province = facts["province_code"]
        place = facts["commune_code"] if level == "commune" and facts["commune_code"] else province
        unit = uuid.uuid5(NS, f"{kind}:{place}")
        referral_id = self.uuid()
        hours = {"emergency": 1, "high": 4}.get(facts["urgency"], 24)
        sms = f"+8400000{int(unit) % 100_000:05d}"
        email = f"{kind.replace('_', '-')}-{place}@agencies.hotline111.example"
        token = "".join(rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", k=76))
        ids = {"referral_id": str(referral_id), "case_id": str(case_id), "case_number": number,
               "agency_unit_id": str(unit)}
        created = ids | {
            "agency_unit_name": f"{kind.replace('_', ' ').title()} {place}", "agency_kind": kind,
            "province_code": province, "urgency": facts["urgency"], "acknowledge_by": iso_z(tr + hours * 3600),
            "match_reason": f"{kind} serving {level} {place} for the case's place", "rule_ids": [kind.split("_")[0]],
            "agency_level": level, "identity_shared": facts["consent_share_identity"], "cause": "matched",
            "previous_referral_id": None, "contacts": [{"channel": "sms", "address": sms},
                                                       {"channel": "email", "address": email}],
            "ack_url": f"http://127.0.0.1:8002/ack/{token}", "commune_code": facts["commune_code"],
            "exploitation": facts["exploitation"], "language": "en" if level == "national" and rng.random() < 0.5
            else "vi"}
        out = [self.record("referral.created", tr, case_id, created, number)]
        delivered = []
        for channel, address in (("sms", sms), ("email", email)):
            notification = {"notification_id": str(self.uuid()), "referral_id": str(referral_id),
                            "case_id": str(case_id), "channel": channel, "recipient": address,
                            "kind": "referral.created"}
            provider = "local-generic" if channel == "sms" else "smtp"
            t = tr + rng.uniform(0.05, 2)
            steps = ["created", "sending"] + (["sent"] if channel == "sms" else []) + ["delivered"]
            for status in steps:
                out.append(self.record("notification", t, case_id, notification | {
                    "status": status, "occurred_at": iso_z(t), "attempts": 0 if status == "created" else 1,
                    "provider": None if status in ("created", "sending") else provider}))
                t += rng.uniform(0.05, 1) if status != "sent" else rng.uniform(2, 60)
            delivered.append(t)
        t = min(delivered) + rng.uniform(0.05, 1)
        out.append(self.record("referral.status", t, case_id, ids | {
            "from_status": "created", "to_status": "notified", "via": "delivery", "decline_reason": None,
            "changed_at": iso_z(t)}, number))
        if rng.random() < 0.95:
            t += rng.uniform(600, 2 * 86400)
            out.append(self.record("referral.status", t, case_id, ids | {
                "from_status": "notified", "to_status": "acknowledged",
                "via": rng.choice(("agency_api", "ack_link")), "decline_reason": None, "changed_at": iso_z(t)},
                number))
            if rng.random() < 0.95:
                t += rng.uniform(600, 86400)
                declined = rng.random() < 0.12
                out.append(self.record("referral.status", t, case_id, ids | {
                    "from_status": "acknowledged", "to_status": "declined" if declined else "accepted",
                    "via": "agency_api", "decline_reason": pick("decline") if declined else None,
                    "changed_at": iso_z(t)}, number))
                if not declined and rng.random() < 0.5:
                    t += rng.uniform(1, 60) * 86400
                    outcome = pick("referral_outcome")
                    out.append(self.record("referral.outcome", t, case_id, ids | {
                        "agency_kind": kind, "province_code": province, "outcome": outcome,
                        "victims": len(facts["victims"]) if rng.random() < 0.7 else None,
                        "services": sorted(rng.sample(NEEDS[:5], 2)) if outcome == "victims_supported" else [],
                        "recorded_at": iso_z(t)}, number))
        return out


def events_per_contact(case_share: float = CASE_SHARE) -> float:
    """About how many events each contact brings, its case's included (from a seeded sample of cases)."""
    return 1 + case_share * (_events_per_case() - 1)


@functools.cache
def _events_per_case() -> float:
    mix = Mix(seed=7, case_share=1.0)
    return sum(len(mix.case(1.6e9 + i * 86400)) for i in range(300)) / 300  # the case's contact included


def make_stream(n: int, *, seed: int = 111, case_share: float = CASE_SHARE, end: float | None = None,
                years: float = YEARS, contacts_only: bool = False, progress=None) -> Stream:
    """The first n events, in time order, of the hotline's stream over `years` up to `end` (epoch s).
    Contacts are spread evenly over the span; the cut at the n-th event leaves the newest cases open."""
    end = end if end is not None else (time.time() // 86400 - 1) * 86400  # yesterday's start: one stream a day
    start = end - years * 365.25 * 86400
    mix = Mix(seed, case_share)
    per_contact = 1.0 if contacts_only else events_per_contact(case_share)
    contacts = math.ceil(n / per_contact * 1.02) + 10  # a little over: the cut trims the end
    raw: list[tuple] = []
    while True:
        step = (end - start) / contacts
        raw.clear()
        for i in range(contacts):
            t0 = start + (i + mix.rng.random()) * step
            if not contacts_only and mix.rng.random() < case_share:
                raw += mix.case(t0)
            else:
                raw.append(mix.contact(t0))
            if progress and i % 100_000 == 0 and i:
                progress(i, contacts)
        if len(raw) >= n:
            break
        contacts = math.ceil(contacts * n / len(raw) * 1.05)  # unlucky: more contacts over the same span
    raw.sort(key=lambda r: r[0])
    del raw[n:]
    out = Stream(raw, Counter(r[1] for r in raw), raw[0][0] if raw else None, raw[-1][0] if raw else None)
    return out


def nudge_event(mix: Mix, case_id: str, case_number: str, ts: float) -> tuple:
    """A CaseNoteAdded for a case: a real intake event that reporting does not project (no handler), so it
    moves the positions and nothing else."""
    payload = {"case_id": case_id, "case_number": case_number, "note_id": str(mix.uuid()), "added_at": iso_z(ts)}
    return mix.record("case.note", ts, uuid.UUID(case_id), payload, case_number)


# -- aggregations (pure) ---------------------------------------------------------------------------
def progress_summary(polls: list[tuple[float, int]], total: int, produce_s: float | None = None) -> dict:
    """What the polls of the positions say, `polls` being (seconds since the first produce, events applied):
    when everything was in, events/s overall, after the produce ended, over the middle 80 % of the events
    (from the poll that first saw 10 % applied to the one that first saw 90 %), and up to 99 %; and the
    longest time nothing moved before the end (this broker sometimes answers a fetch with nothing)."""
    done = next((t for t, n in polls if n >= total), None)
    first = next((t for t, n in polls if n > 0), None)

    def first_at(share: float) -> tuple[float, int] | None:
        return next(((t, n) for t, n in polls if n >= share * total), None)

    lo, hi, p99 = first_at(0.1), first_at(0.9), first_at(0.99)
    steady = rate(hi[1] - lo[1], hi[0] - lo[0]) if lo and hi and hi[0] > lo[0] else None
    after = None
    if produce_s is not None and done is not None and done > produce_s:
        i = bisect.bisect_left([t for t, _ in polls], produce_s)
        if i < len(polls):
            t_p, n_p = polls[i]
            after = rate(total - n_p, done - t_p) if done > t_p else None
    stall, since = 0.0, None
    for (t0, n0), (t1, n1) in zip(polls, polls[1:]):
        if first is not None and t0 >= first and n1 == n0 and n0 < total:
            since = t0 if since is None else since
            stall = max(stall, t1 - since)
        else:
            since = None
    return {"events": total, "first_applied_s": _r3(first), "all_applied_s": _r3(done),
            "rate_per_s": rate(total, done) if done else None, "steady_rate_per_s": steady,
            "rate_after_produce_per_s": after, "p99_applied_s": _r3(p99[0]) if p99 else None,
            "rate_to_p99_per_s": rate(p99[1], p99[0]) if p99 and p99[0] else None,
            "tail_s": _r3(done - p99[0]) if done is not None and p99 else None, "longest_stall_s": _r3(stall),
            "applied_when_produce_ended": _applied_at(polls, produce_s) if produce_s is not None else None}


def _applied_at(polls: list[tuple[float, int]], t: float) -> int | None:
    i = bisect.bisect_right([p for p, _ in polls], t) - 1
    return polls[i][1] if i >= 0 else 0


def thin(polls: list[tuple[float, int]], every_s: float = 5.0) -> list[list]:
    """The polls about every `every_s` seconds, and the last one: the curve for the JSON."""
    out, last = [], None
    for t, n in polls:
        if last is None or t - last >= every_s:
            out.append([round(t, 2), n])
            last = t
    if polls and (not out or out[-1][0] != round(polls[-1][0], 2)):
        out.append([round(polls[-1][0], 2), polls[-1][1]])
    return out


def row_checks_equal(a: dict, b: dict) -> bool:
    return {k: v for k, v in a.items() if k != "inbox"} == {k: v for k, v in b.items() if k != "inbox"}


def asyncpg_sql(sql: str, params: dict) -> tuple[str, list]:
    """SQLAlchemy text() SQL with :name parameters -> asyncpg's $n, and the values in order."""
    names: list[str] = []

    def sub(m: re.Match) -> str:
        if m.group(1) not in names:
            names.append(m.group(1))
        return f"${names.index(m.group(1)) + 1}"

    return re.sub(r"(?<![:\w]):([a-z_]+)\b", sub, sql), [params[n] for n in names]


def core_share(cpu: dict, name: str) -> float | None:
    """How much of one core the process used over a phase (machine.cpu_delta's figures), in %."""
    used = (cpu.get("per_process") or {}).get(name, {}).get("cpu_s")
    return round(100 * used / cpu["wall_s"], 1) if used is not None and cpu.get("wall_s") else None


def _r3(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


# -- the run -----------------------------------------------------------------------------------------
# (quick, default)
PROFILES = {
    "events": (50_000, 1_000_000),
    "warmup": (500, 2000),
    "query_contacts": (50_000, 1_000_000),
    "queries": (50, 300),
    "query_warmup": (5, 20),
    "query_concurrency": (1, 1),
    "profile_events": (5_000, 30_000),
    "profile_queries": (10, 40),
    "kafka_records": (20_000, 100_000),
    "idle_seconds": (2.0, 5.0),
    "nudge_after": (30.0, 60.0),
    "timeout": (900.0, 3600.0),
    "pgbench_seconds": (3, 8),
    "pgbench_clients": ((1, 8), (1, 8)),
}
POSITIONS = "SELECT coalesce(sum(next_offset), 0)::bigint FROM reporting.positions"
PARTITIONS = ("SELECT topic, partition, next_offset, extract(epoch FROM applied_at)::float8 AS at "
              "FROM reporting.positions")
BY_TOPIC = "SELECT topic, sum(next_offset)::bigint AS n FROM reporting.positions GROUP BY topic"
CHECKS = {  # what the projections hold: a rebuild must give the same
    "contacts": "SELECT coalesce(sum(contacts), 0)::bigint FROM reporting.contacts_daily",
    "contacts_daily_rows": "SELECT count(*) FROM reporting.contacts_daily",
    "cases": "SELECT count(*) FROM reporting.cases",
    "cases_reported": "SELECT count(*) FROM reporting.cases WHERE reported",
    "cases_closed": "SELECT count(*) FROM reporting.cases WHERE status = 'closed'",
    "victims": "SELECT count(*) FROM reporting.victims",
    "referrals": "SELECT count(*) FROM reporting.referrals",
    "referrals_accepted": "SELECT count(*) FROM reporting.referrals WHERE status = 'accepted'",
    "outcomes": "SELECT count(*) FROM reporting.outcomes",
    "notifications": "SELECT count(*) FROM reporting.notifications",
    "notifications_delivered": "SELECT count(*) FROM reporting.notifications WHERE status = 'delivered'",
    "inbox": "SELECT count(*) FROM reporting.inbox",
    "checksum": "SELECT md5(string_agg(day || channel || contact_type || province_code || caller_role || contacts "
                "|| ':' || duration_s, ',' ORDER BY day, channel, contact_type, province_code, caller_role)) "
                "FROM reporting.contacts_daily",
}
PG_STATS = """SELECT xact_commit, tup_inserted, tup_updated, tup_deleted FROM pg_stat_database
              WHERE datname = current_database()"""


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = new_parser("python -m bench reporting", __doc__)
    p.add_argument("--quick", action="store_true", help="50,000 events (smoke run, about 3 minutes)")
    p.add_argument("--events", type=int, help="events of the mix, projected then rebuilt (default 1,000,000)")
    p.add_argument("--case-share", type=float, default=CASE_SHARE,
                   help=f"contacts that become a case (default {CASE_SHARE:.4f}: 700 of 30,170)")
    p.add_argument("--seed", type=int, default=111, help="the stream's random seed (111)")
    p.add_argument("--warmup", type=int, help="the first events, projected before the clock starts (2000)")
    p.add_argument("--query-contacts", type=int, help="contacts the projections hold for the queries: "
                                                      "ContactRecorded alone tops them up (1,000,000; 0: none)")
    p.add_argument("--queries", type=int, help="requests per endpoint after the warm-up (300)")
    p.add_argument("--query-warmup", type=int, help="requests per endpoint before the measured ones (20)")
    p.add_argument("--query-concurrency", type=int, help="requests in flight, closed loop (1: one analyst)")
    p.add_argument("--profile-events", type=int, help="events of the mix projected under py-spy (30000)")
    p.add_argument("--profile-queries", type=int, help="requests per endpoint under py-spy (40)")
    p.add_argument("--no-profile", action="store_true", help="skip py-spy")
    p.add_argument("--kafka-records", type=int, help="records of the raw produce/consume ceiling (100000)")
    p.add_argument("--idle-seconds", type=float, help="seconds with no load, for the idle CPU (5)")
    p.add_argument("--nudge-after", type=float, help="seconds the idle consumer is given to start replaying after "
                                                     "a rebuild before an event wakes it (60)")
    p.add_argument("--timeout", type=float, help="seconds to wait for the projections to catch up (3600)")
    p.add_argument("--skip-rebuild", action="store_true", help="no rebuild phase")
    p.add_argument("--skip-queries", action="store_true", help="no query phase (and no contacts top-up)")
    p.add_argument("--skip-ceilings", action="store_true", help="only the reporting figures")
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                   help="first wait up to S seconds for other processes to use under 10 %% of the cores")
    add_pgbench_args(p)
    p.add_argument("--reporting-env", action="append", default=[], metavar="NAME=VALUE",
                   help="a setting for reporting, e.g. DB_POOL_SIZE=4 (repeatable)")
    args = p.parse_args(argv)
    apply_profiles(args, PROFILES)
    if args.no_profile:
        args.profile_events = args.profile_queries = 0
    if args.warmup >= args.events:
        p.error("--warmup must be smaller than --events")
    for item in args.reporting_env:
        if "=" not in item:
            p.error(f"--reporting-env wants NAME=VALUE, not {item!r}")
    return args


def start_reporting_only(stack: Stack) -> None:
    """Infra, every migration (devstack's prepare), then reporting alone (with the SMTP sink and the SMS
    gateway that start_services always starts; nothing talks to them)."""
    stack.infra.start()
    prepare(stack.database_url, stack.bootstrap, extra_env=stack.extra_env)
    stack.services = start_services(
        stack.database_url, stack.bootstrap, stack.ports, pii_keys=stack.pii_keys, log_dir=stack.log_dir,
        extra_env=stack.extra_env, ready_timeout=stack.ready_timeout, names=("reporting",),
        auth_secret=stack.auth_secret, pii_hmac_key=stack.pii_hmac_key)


def code_version() -> dict:
    """The commit under test, and whether services/, runtime/ or schemas/ had uncommitted changes then."""
    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=report.RESULTS_DIR.parent.parent, capture_output=True, text=True)
        return done.stdout.strip()

    return {"commit": git("rev-parse", "--short", "HEAD"), "subject": git("log", "-1", "--format=%s")[:120],
            "uncommitted": git("status", "--porcelain", "--", "services", "runtime", "schemas").splitlines()}


def load_now() -> dict:
    one, five, fifteen = os.getloadavg()
    return {"at": datetime.now(UTC).isoformat(timespec="seconds"), "loadavg": [one, five, fifteen]}


def others_busy(seconds: float = 3.0, exclude: set[int] | None = None) -> float:
    """% of all cores that processes other than `exclude` (and their children) used over `seconds`."""
    exclude = exclude or set()
    mine = {os.getpid(), *exclude}
    for pid in list(mine):
        try:
            mine |= {c.pid for c in psutil.Process(pid).children(recursive=True)}
        except psutil.Error:
            pass

    def own() -> float:
        total = 0.0
        for pid in mine:
            try:
                t = psutil.Process(pid).cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    b0, o0 = _machine_busy(), own()
    time.sleep(seconds)
    b1, o1 = _machine_busy(), own()
    return round(100 * max(0.0, (b1 - b0) - (o1 - o0)) / (seconds * (psutil.cpu_count() or 1)), 1)


def wait_quiet(max_s: float, threshold_pct: float = 10.0) -> dict:
    started = time.monotonic()
    while True:
        busy = others_busy()
        if busy < threshold_pct or time.monotonic() - started > max_s:
            waited = round(time.monotonic() - started, 1)
            say(f"other processes at {busy} % of the cores (waited {waited} s); load {os.getloadavg()[0]:.2f}")
            return {"others_busy_pct": busy, "waited_s": waited, "quiet": busy < threshold_pct}
        say(f"  other processes at {busy} % of the cores; waiting for quiet")
        time.sleep(10)


class Run:
    def __init__(self, stack: Stack, args: argparse.Namespace, conn: asyncpg.Connection, producer, engine):
        self.stack, self.args, self.conn, self.producer, self.engine = stack, args, conn, producer, engine
        self.dsn = asyncpg_dsn(stack.database_url)
        self.out: dict = {"cpu": {}}
        self.pids = machine.stack_pids(stack)
        self.save = None  # writes self.out as it stands (a long phase is kept every minute)

    async def produce(self, recs: list[tuple], chunk: int = 20_000) -> float:
        """Every record as fast as one producer with the relay's settings can; the seconds it took."""
        started = time.perf_counter()
        for i in range(0, len(recs), chunk):
            futures = [await self.producer.send(t, value=v, key=k, headers=h) for t, k, v, h in recs[i:i + chunk]]
            await asyncio.gather(*futures)
        return time.perf_counter() - started

    async def applied(self) -> int:
        return await self.conn.fetchval(POSITIONS)

    async def wait_applied(self, target: int, started: float, what: str, polls: list, interval: float = 0.5,
                           base: int = 0) -> float:
        """Poll the positions until they add up to `target`; each poll (s since `started`, applied - base)
        goes to `polls`. The seconds it took."""
        last_say = last_save = time.perf_counter()
        while True:
            value = await self.applied()
            now = time.perf_counter()
            polls.append((now - started, value - base))
            if value >= target:
                self.out.pop("in_progress", None)
                return now - started
            if self.save and now - last_save > 60:
                self.out["in_progress"] = {"phase": what, "events": target - base, "curve": thin(polls)}
                self.save()
                last_save = now
            if now - started > self.args.timeout:
                raise RuntimeError(f"{what}: {value - base} of {target - base} events applied after "
                                   f"{self.args.timeout:.0f} s")
            if now - last_say > 15:
                say(f"  ... {what}: {value - base:,} of {target - base:,} applied, {now - started:.0f} s")
                last_say = now
            await asyncio.sleep(interval)

    async def pg_stats(self) -> dict:
        await asyncio.sleep(1.5)  # backends publish their counters about once a second
        row = await self.conn.fetchrow(PG_STATS)
        try:
            fsyncs = await self.conn.fetchval("SELECT sum(fsyncs)::bigint FROM pg_stat_io WHERE object = 'wal'")
        except asyncpg.PostgresError:
            fsyncs = None
        return {**dict(row), "wal_fsyncs": fsyncs}

    @staticmethod
    def per_event(before: dict, after: dict, events: int) -> dict:
        d = {k: (after[k] - before[k]) if after[k] is not None and before[k] is not None else None for k in before}
        per = lambda x: round(x / events, 3) if x is not None and events else None  # noqa: E731
        return {"transactions_per_event": per(d["xact_commit"]),
                "wal_fsyncs_per_1000_events": round(1000 * d["wal_fsyncs"] / events, 1)
                if d["wal_fsyncs"] is not None and events else None,
                "events_per_transaction": round(events / d["xact_commit"], 1) if d["xact_commit"] else None,
                "rows_inserted_per_event": per(d["tup_inserted"]), "rows_updated_per_event": per(d["tup_updated"]),
                "wal_fsyncs_per_event": per(d["wal_fsyncs"])}

    async def checks(self) -> dict:
        return {k: await self.conn.fetchval(sql) for k, sql in CHECKS.items()}

    async def positions(self) -> dict[tuple[str, int], int]:
        return {(r["topic"], r["partition"]): r["next_offset"] for r in await self.conn.fetch(PARTITIONS)}

    async def partitions(self, t0_epoch: float, before: dict | None = None) -> dict:
        """When each partition the phase moved had its last batch applied (s after t0), and the broker's end
        offsets against the positions: this broker reports end offsets below records already consumed."""
        from services.reporting.projections import topics
        from services.reporting.stats.lag import EndOffsets

        all_rows = await self.conn.fetch(PARTITIONS)
        before = before or {}
        rows = [r for r in all_rows if r["next_offset"] != before.get((r["topic"], r["partition"]))]
        ends_client = EndOffsets(self.stack.bootstrap, topics(), 0)
        try:
            ends = await ends_client.get() or {}
        finally:
            await ends_client.close()
        done = sorted(r["at"] - t0_epoch for r in rows)
        at = {(r["topic"], r["partition"]): r["next_offset"] for r in all_rows}
        return {"partitions": len(rows), "first_done_s": _r3(done[0]) if done else None,
                "median_done_s": _r3(done[len(done) // 2]) if done else None,
                "last_done_s": _r3(done[-1]) if done else None,
                "broker_end_offsets_sum": sum(ends.values()) if ends else None, "positions_sum": sum(at.values()),
                "partitions_past_broker_end": sum(1 for tp, n in at.items() if ends and n > ends.get(tp, n))}

    async def by_topic(self) -> dict[str, int]:
        return {r["topic"]: r["n"] for r in await self.conn.fetch(BY_TOPIC)}

    async def projection(self, label: str, recs: list[tuple], counts: dict | None = None) -> dict:
        """Produce `recs` while reporting consumes them; until the positions hold every one."""
        n = len(recs)
        base = await self.applied()
        pg0, topics0 = await self.pg_stats(), await self.by_topic()
        cpu0, busy0 = machine.cpu_seconds(self.pids), _machine_busy()
        polls: list[tuple[float, int]] = []
        started = time.perf_counter()
        t0_epoch, before = time.time(), await self.positions()
        producing = asyncio.create_task(self.produce(recs))
        try:
            done_s = await self.wait_applied(base + n, started, label, polls, base=base)
        finally:
            if not producing.done():
                producing.cancel()
        produce_s = await producing
        wall = time.perf_counter() - started
        self.out["cpu"][label] = _with_others(machine.cpu_delta(cpu0, machine.cpu_seconds(self.pids), wall, n),
                                              _machine_busy() - busy0)
        s = progress_summary(polls, n, produce_s)
        s["reporting_cpu_pct_of_one_core"] = core_share(self.out["cpu"][label], "reporting")
        topics1 = await self.by_topic()
        s |= {"produce_s": round(produce_s, 3), "produce_per_s": rate(n, produce_s), "polled_done_s": round(done_s, 3),
              "kinds": dict(sorted((counts or {}).items(), key=lambda kv: -kv[1])),
              "by_topic": {t: topics1.get(t, 0) - topics0.get(t, 0) for t in sorted(topics1)},
              "pg": self.per_event(pg0, await self.pg_stats(), n), "curve": thin(polls),
              "partitions": await self.partitions(t0_epoch, before)}
        say(f"  {label}: {n:,} events in {s['all_applied_s']} s = {s['rate_per_s']}/s (steady {s['steady_rate_per_s']}"
            f"/s, after the produce {s['rate_after_produce_per_s']}/s); produce took {produce_s:.1f} s")
        return s

    async def rebuild(self, nudge: tuple) -> dict:
        """request_rebuild, then until the projections hold every event again, timed from the request. The
        consumer should notice the new generation by itself (it checks while the stream is quiet) and rejoin;
        if nothing is replayed within --nudge-after s, one event that reporting ignores wakes it."""
        from services.reporting.projections import topics
        from services.reporting.rebuild import request_rebuild, wait_caught_up
        from services.reporting.stats.lag import EndOffsets

        total = await self.applied()  # every record on the topics
        pg0 = await self.pg_stats()
        cpu0, busy0 = machine.cpu_seconds(self.pids), _machine_busy()
        t_request, t0_epoch = time.perf_counter(), time.time()
        generation = await request_rebuild(self.engine, "bench")
        request_s = time.perf_counter() - t_request
        ends = EndOffsets(self.stack.bootstrap, topics(), 0)
        waiting = asyncio.create_task(wait_caught_up(self.engine, ends, self.args.timeout))
        polls: list[tuple[float, int]] = []
        say(f"  generation {generation}: projections emptied in {request_s:.1f} s; waiting up to "
            f"{self.args.nudge_after:g} s for the replay to start by itself")
        while (applied := await self.applied()) == 0 and time.perf_counter() - t_request < self.args.nudge_after:
            polls.append((time.perf_counter() - t_request, 0))
            await asyncio.sleep(0.25)
        nudged_at = None
        if applied == 0:
            nudged_at = time.perf_counter() - t_request
            say(f"  nothing replayed after {nudged_at:.0f} s; one CaseNoteAdded (which reporting ignores) to wake it")
            _ts, _kind, topic, key, value, headers = nudge
            await (await self.producer.send(topic, value=value, key=key, headers=headers))
            total += 1
        try:
            await self.wait_applied(total, t_request, "rebuild", polls)
            caught_up_s = await waiting
        finally:
            waiting.cancel()
            await ends.close()
        wall = time.perf_counter() - t_request
        self.out["cpu"]["rebuild"] = _with_others(machine.cpu_delta(cpu0, machine.cpu_seconds(self.pids), wall, total),
                                                  _machine_busy() - busy0)
        s = progress_summary(polls, total)
        s["reporting_cpu_pct_of_one_core"] = core_share(self.out["cpu"]["rebuild"], "reporting")
        replay = (s["all_applied_s"] - s["first_applied_s"]) if s["all_applied_s"] and s["first_applied_s"] else None
        s |= {"generation": generation, "request_s": round(request_s, 3), "nudge_after_s": self.args.nudge_after,
              "nudged_at_s": _r3(nudged_at), "wait_caught_up_s": round(caught_up_s, 3),
              "join_s": s["first_applied_s"], "replay_s": _r3(replay),
              "replay_rate_per_s": rate(total, replay) if replay else None,
              "pg": self.per_event(pg0, await self.pg_stats(), total), "curve": thin(polls),
              "partitions": await self.partitions(t0_epoch)}
        say(f"  rebuild: {total:,} events in {s['all_applied_s']} s from the request (wait_caught_up "
            f"{caught_up_s:.1f} s): replay began after {s['join_s']} s"
            f"{' (woken by an event)' if nudged_at is not None else ''}, replay {s['replay_s']} s = "
            f"{s['replay_rate_per_s']}/s")
        return s

    # -- queries
    async def queries(self) -> dict:
        a = self.args
        headers = {"Authorization": f"Bearer {self.stack.token('analyst', sub='bench-analyst')}"}
        base = self.stack.url("reporting")
        out: dict = {"concurrency": a.query_concurrency, "requests": a.queries, "warmup": a.query_warmup}
        cpu0, busy0, t0, n = machine.cpu_seconds(self.pids), _machine_busy(), time.perf_counter(), 0
        async with load.Clients() as clients:
            for name, path in ENDPOINTS.items():
                await get_loop(clients, base + path, headers, a.query_warmup, a.query_concurrency)
                r = await get_loop(clients, base + path, headers, a.queries, a.query_concurrency)
                out[name] = r
                n += a.queries
                say(f"  GET {path}: p50 {r['latency']['p50_ms']} ms, p99 {r['latency']['p99_ms']} ms, "
                    f"{r['rate_per_s']}/s, {r['bytes']:,} bytes, errors {r['errors'] or 'none'}")
        self.out["cpu_queries"] = _with_others(machine.cpu_delta(cpu0, machine.cpu_seconds(self.pids),
                                                                    time.perf_counter() - t0, n),
                                                  _machine_busy() - busy0)
        layers = max(20, a.queries // 5)
        say(f"  the same in the bench process (no HTTP) and as SQL alone (asyncpg), {layers} each")
        out["in_process"] = await self.in_process(layers)
        out["sql"] = await self.sql_alone(layers)
        return out

    async def in_process(self, n: int) -> dict:
        """The views' own functions (headline; count_table, tidy) on a SQLAlchemy session in this process,
        and the suppression of the contacts table alone (protect)."""
        from sqlalchemy.ext.asyncio import AsyncSession

        from services.reporting.stats.counts import count_table, protect, tidy
        from services.reporting.stats.summary import headline

        summary_q, contacts_q = stats_queries()
        k = SUPPRESSION_K
        times: dict[str, list[float]] = {"summary": [], "contacts_month_province": [], "suppression": []}
        cells = None
        for i in range(n + 3):  # three unmeasured: the statement caches
            async with AsyncSession(self.engine) as session:
                s = time.perf_counter()
                await headline(session, summary_q, k)
                t1 = time.perf_counter()
                table = await count_table(session, contacts_q, k)
                tidy(table)
                t2 = time.perf_counter()
            protect(table.cells, k, margins=table.query.margins)
            t3 = time.perf_counter()
            cells = table.cells
            if i >= 3:
                times["summary"].append(t1 - s)
                times["contacts_month_province"].append(t2 - t1)
                times["suppression"].append(t3 - t2)
        return {k_: summary_ms(v) for k_, v in times.items()} | {
            "table": {"periods": len(cells), "categories": len(cells[0]) if cells else 0,
                      "published_rows": len(tidy(table)),
                      "suppressed": table.published.suppressed_primary + table.published.suppressed_complementary}}

    async def sql_alone(self, n: int) -> dict:
        """The statements each endpoint runs, through asyncpg on one connection (prepared, cached)."""
        from services.reporting.stats.counts import select_sql

        summary_q, contacts_q = stats_queries()
        lag = ["SELECT topic, partition, next_offset, event_time FROM reporting.positions",
               "SELECT rebuild_started_at FROM reporting.projection_state"]
        plans = {"summary": [asyncpg_sql(*select_sql(q, [q.measure.value])) for q in summary_statements(summary_q)],
                 "contacts_month_province": [asyncpg_sql(*select_sql(contacts_q, [contacts_q.measure.value]))]}
        out = {}
        for name, statements in plans.items():
            statements = statements + [(s, []) for s in lag]
            times = []
            for i in range(n + 3):
                s = time.perf_counter()
                for sql, params in statements:
                    await self.conn.fetch(sql, *params)
                if i >= 3:
                    times.append(time.perf_counter() - s)
            out[name] = summary_ms(times) | {"statements": len(statements)}
        explain = asyncpg_sql(*select_sql(contacts_q, [contacts_q.measure.value]))
        plan = await self.conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + explain[0], *explain[1])
        top = json.loads(plan)[0] if isinstance(plan, str) else plan[0]
        out["contacts_plan"] = {"execution_ms": top.get("Execution Time"), "node": top["Plan"].get("Node Type"),
                                "rows": top["Plan"].get("Actual Rows")}
        return out

    # -- profile
    async def profile(self, recs: list[tuple], path: Path, qpath: Path) -> dict:
        pid = self.stack.services.pid("reporting")
        out: dict = {}
        if recs:
            base, started = await self.applied(), time.perf_counter()
            cpu0 = machine.cpu_seconds(self.pids)
            with Recorder(pid, path):
                await self.produce(recs)
                await self.wait_applied(base + len(recs), started, "profile", [], base=base)
            wall = time.perf_counter() - started
            cpu = machine.cpu_delta(cpu0, machine.cpu_seconds(self.pids), wall, len(recs))
            rep = cpu["per_process"].get("reporting", {})
            out["projection"] = {"file": _rel(path), "events": len(recs), "rate_per_s": rate(len(recs), wall),
                                 "reporting_cpu_pct_of_one_core": round(100 * rep.get("cpu_s", 0) / wall, 1),
                                 "reporting_cpu_ms_per_event": rep.get("ms_per_item"), **summarise(path),
                                 "focus": focus(path, PROJECTION_FOCUS)}
        if self.args.profile_queries:
            headers = {"Authorization": f"Bearer {self.stack.token('analyst', sub='bench-analyst')}"}
            base_url = self.stack.url("reporting")
            with Recorder(pid, qpath):
                async with load.Clients() as clients:
                    for name in ("summary", "contacts_month_province"):
                        await get_loop(clients, base_url + ENDPOINTS[name], headers, self.args.profile_queries, 1)
            out["queries"] = {"file": _rel(qpath), "requests": 2 * self.args.profile_queries, **summarise(qpath),
                              "focus": focus(qpath, QUERY_FOCUS)}
        return out


ENDPOINTS = {  # name -> path, as an analyst asks
    "floor": "/v1/stats",
    "summary": "/v1/stats/summary",
    "contacts_month_province": "/v1/stats/contacts?group=month&by=province",
}
SUPPRESSION_K = 5  # ReportingSettings.reporting_suppression_k's default


def stats_queries():
    """The CountQuery the summary starts from and the contacts table's, as the views make them by default."""
    from services.reporting.projections.clock import HOTLINE_TZ
    from services.reporting.stats.counts import CountQuery
    from services.reporting.stats.measures import MEASURES
    from services.reporting.stats.params import FIRST_DAY
    from services.reporting.stats.periods import Group

    today = datetime.now(HOTLINE_TZ).date()
    return (CountQuery(MEASURES["cases"], FIRST_DAY, today, Group.month, (), {}),
            CountQuery(MEASURES["contacts"], FIRST_DAY, today, Group.month, ("province",), {}))


def summary_statements(base) -> list:
    """The count queries headline() runs, in its order (services/reporting/stats/summary.py)."""
    from services.reporting.stats.measures import MEASURES
    from services.reporting.stats.periods import Group
    from services.reporting.stats.summary import FIGURES

    def q(measure: str, by: tuple[str, ...] = ()):
        return replace(base, measure=MEASURES[measure], group=Group.all, by=by, filters={})

    return [q("contacts", ("contact_type",)), *(q(m) for _, m in FIGURES), q("outcomes", ("outcome",))]


async def get_loop(clients: load.Clients, url: str, headers: dict, n: int, concurrency: int) -> dict:
    """n GETs, `concurrency` in flight (closed loop): latency from each send, errors, bytes of an answer."""
    latencies: list[float] = []
    errors: Counter = Counter()
    size = 0
    it = iter(range(n))

    async def worker() -> None:
        nonlocal size
        for _ in it:
            http = clients.take()
            s = time.perf_counter()
            try:
                resp = await http.get(url, headers=headers)
                body = resp.content
                if resp.status_code == 200:
                    latencies.append(time.perf_counter() - s)
                    size = len(body)
                else:
                    errors[f"HTTP {resp.status_code}"] += 1
            except Exception as exc:  # noqa: BLE001 - counted
                errors[type(exc).__name__] += 1
            finally:
                clients.give(http)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {"ok": len(latencies), "errors": dict(errors), "latency": summary_ms(latencies),
            "rate_per_s": rate(len(latencies), elapsed), "bytes": size}


def _rel(path: Path) -> str:
    return str(path.relative_to(report.RESULTS_DIR.parent.parent))


# Where reporting's time goes: (label, test on a frame's function and short path).
PROJECTION_FOCUS = (
    ("consumer: a partition's batch in one transaction (_process_batch)",
     lambda f, p: f.endswith("_process_batch") and p == "runtime/consumer.py"),
    ("  decode: envelope and payload validation (_decode)",
     lambda f, p: f.endswith("_decode") and p == "runtime/consumer.py"),
    ("  the batch's inbox rows, one statement (_first_seen)",
     lambda f, p: f.endswith("_first_seen") and p == "runtime/consumer.py"),
    ("  handlers: events folded into rows (projections/)",
     lambda f, p: p.startswith("services/reporting/projections/") and not p.endswith(("batch.py", "checkpoint.py"))),
    ("  rows written at commit, multi-row statements (projections/batch.py)",
     lambda f, p: p.endswith("projections/batch.py")),
    ("  checkpoint: generation check and position (checkpoint.py)",
     lambda f, p: p.endswith("projections/checkpoint.py")),
    ("  commit (UnitOfWork.commit)", lambda f, p: f.endswith("commit") and p == "runtime/uow.py"),
    ("  tracing: a span per event (opentelemetry)", lambda f, p: _otel(p)),
    ("  metrics (prometheus_client)", lambda f, p: p.startswith("prometheus_client/")),
    ("  one event per transaction (a failed batch, _apply)", lambda f, p: f.endswith("_apply")
     and p == "runtime/consumer.py"),
    ("consumer: offset commit to the broker (AIOKafkaConsumer.commit)",
     lambda f, p: f.endswith("commit") and p.startswith("aiokafka/consumer/")),
    ("consumer: fetch (getmany)", lambda f, p: f.endswith("getmany") and p.startswith("aiokafka/")),
    ("Kafka client (aiokafka, any frame)", lambda f, p: p.startswith("aiokafka/")),
    ("SQLAlchemy (any frame)", lambda f, p: p.startswith("sqlalchemy/")),
    ("  compiling statements (sqlalchemy/sql/, any frame)", lambda f, p: p.startswith("sqlalchemy/sql/")),
    ("asyncpg (any frame)", lambda f, p: p.startswith("asyncpg/")),
    ("pydantic (any frame)", lambda f, p: p.startswith("pydantic")),
    ("logging: structlog (any frame)", lambda f, p: p.startswith("structlog/")),
    ("HTTP server: a request in uvicorn, starlette, fastapi (any frame)",
     lambda f, p: p.startswith(("uvicorn/protocols/", "starlette/", "fastapi/"))),
)
QUERY_FOCUS = (
    ("summary view (headline)", lambda f, p: f.endswith("headline") and p.endswith("stats/summary.py")),
    ("count table (count_table)", lambda f, p: f.endswith("count_table") and p.endswith("stats/counts.py")),
    ("  its SQL (count_rows)", lambda f, p: f.endswith("count_rows") and p.endswith("stats/counts.py")),
    ("  suppression (privacy/suppression.py)", lambda f, p: p.endswith("privacy/suppression.py")),
    ("long form (tidy)", lambda f, p: f.endswith("tidy") and p.endswith("stats/counts.py")),
    ("answer: JSON or CSV (render.answer)", lambda f, p: f.endswith("answer") and p.endswith("stats/render.py")),
    ("lag: positions and the broker's end offsets (lag.py)", lambda f, p: p.endswith("stats/lag.py")),
    ("auth (runtime/auth.py)", lambda f, p: p == "runtime/auth.py"),
    ("SQLAlchemy (any frame)", lambda f, p: p.startswith("sqlalchemy/")),
    ("asyncpg (any frame)", lambda f, p: p.startswith("asyncpg/")),
    ("HTTP server: a request in uvicorn, starlette, fastapi (any frame)",
     lambda f, p: p.startswith(("uvicorn/protocols/", "starlette/", "fastapi/"))),
    ("JSON encoding (json, any frame)", lambda f, p: p.startswith("<stdlib>/json/")),
)
# py-spy names opentelemetry's files from inside its namespace package (trace/__init__.py, context/...).
OTEL_DIRS = ("opentelemetry/", "trace/", "context/", "propagate/", "attributes/", "baggage/")
OTEL_FILES = ("_decorator.py", "textmap.py", "composite.py")


def _otel(path: str) -> bool:
    return path.startswith(OTEL_DIRS) or path in OTEL_FILES


# -- ceilings ----------------------------------------------------------------------------------------
async def consume_topics(bootstrap: str, topic_names: list[str], stall_s: float = 60.0) -> dict:
    """Every record on the topics read back by one aiokafka consumer without a group (as the raw ceiling in
    ceilings.py): the most one consumer could fetch from this broker, with everything it retains. Stops
    after `stall_s` without a record, and says how long the longest wait for one was."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=10, auto_offset_reset="earliest")
    await consumer.start()
    try:
        await consumer.topics()
        tps = [TopicPartition(t, p) for t in topic_names for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        total = sum(ends.values())
        await consumer.seek_to_beginning(*tps)
        got, longest = 0, 0.0
        started = last = time.perf_counter()
        while got < total:
            batches = await consumer.getmany(timeout_ms=1000)
            now = time.perf_counter()
            n = sum(len(records) for records in batches.values())
            if n:
                longest, last = max(longest, now - last), now
                got += n
            elif now - last > stall_s:
                break
        seconds = last - started
    finally:
        await consumer.stop()
    return {"records": total, "read": got, "partitions": len(tps), "consume_per_s": rate(got, seconds),
            "seconds": round(seconds, 2), "longest_wait_s": round(longest, 2)}


def pgbench_batch(dsn: str, rows: int, seconds: int) -> dict:
    """`rows` single-row INSERTs per transaction, one client: the consumer's batch at its best."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "batch.sql"
        script.write_text("BEGIN;\n" + "INSERT INTO bench.pgbench_insert (payload) VALUES ('event');\n" * rows
                          + "COMMIT;\n")
        argv = [str(pgbench_path()), "-n", "-M", "prepared", "-f", str(script), "-c", "1", "-j", "1",
                "-T", str(seconds), dsn]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"pgbench failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    tps = re.search(r"^tps = ([\d.]+)", done.stdout, re.M)
    commits = float(tps.group(1)) if tps else None
    return {"rows_per_transaction": rows, "clients": 1, "seconds": seconds,
            "commits_per_s": round(commits, 1) if commits else None,
            "rows_per_s": round(commits * rows) if commits else None}


# -- the whole run ----------------------------------------------------------------------------------
async def measure(stack: Stack, args: argparse.Namespace, stamp: str, out: dict) -> dict:
    """Every phase; `out` is filled as they finish, so a failed run still leaves what it measured."""
    from runtime.db import create_engine
    from services.reporting.projections import topics

    dsn = asyncpg_dsn(stack.database_url)
    out |= {"machine": machine.facts(await fetchval(dsn, "SHOW server_version")), "load": {"start": load_now()},
            "code": code_version(), "cpu": {}}
    if args.reporting_env:
        out["reporting_env"] = dict(item.split("=", 1) for item in args.reporting_env)
    conn = await asyncpg.connect(dsn)
    producer = new_producer(stack.bootstrap)
    await producer.start()
    engine = create_engine(stack.database_url, 2)
    try:
        r = Run(stack, args, conn, producer, engine)
        r.out = out
        saved = r.save = lambda: report.write_json(out, stamp + "-partial")  # noqa: E731 - kept as it goes
        say(f"making {args.events:,} events of the mix (untimed)")
        t = time.perf_counter()
        stream = make_stream(args.events, seed=args.seed, case_share=args.case_share,
                             progress=lambda i, n: say(f"  ... {i:,} of {n:,} contacts"))
        out["stream"] = {"events": len(stream.records), "kinds": dict(stream.counts.most_common()),
                         "contacts_share_pct": round(100 * stream.counts["contact"] / len(stream.records), 1),
                         "first": iso_z(stream.first_ts), "last": iso_z(stream.last_ts), "seed": args.seed,
                         "case_share": args.case_share, "made_s": round(time.perf_counter() - t, 1),
                         "mean_value_bytes": round(sum(len(x[4]) for x in stream.records) / len(stream.records))}
        gc.freeze()  # a million records the collector would otherwise walk again and again, pausing the client
        say(f"  {len(stream.records):,} events from {out['stream']['first']} to {out['stream']['last']} in "
            f"{out['stream']['made_s']} s: {dict(stream.counts.most_common())}")
        sample = [json.loads(x[4]) for x in stream.records[:50]]
        out["stream"]["jsonb_text_matches_postgresql"] = all([
            await conn.fetchval("SELECT $1::jsonb::text", json.dumps(s)) == jsonb_text(s) for s in sample])

        say(f"warm-up: the first {args.warmup:,} events")
        recs = stream.kafka()
        t0 = time.perf_counter()
        await r.produce(recs[:args.warmup])
        await r.wait_applied(args.warmup, t0, "warm-up", [])
        say(f"idle: {args.idle_seconds} s with no load")
        before = machine.cpu_seconds(r.pids)
        await asyncio.sleep(args.idle_seconds)
        out["cpu_idle"] = machine.cpu_delta(before, machine.cpu_seconds(r.pids), args.idle_seconds, 0)

        rest = recs[args.warmup:]
        say(f"projection: {len(rest):,} events -> 4 topics -> reporting, from the first produce until the "
            f"positions cover them")
        counts = Counter(x[1] for x in stream.records[args.warmup:])
        out["projection"] = await r.projection("projection", rest, counts)
        del rest
        out["checks"] = {"projection": await r.checks()}
        say(f"  rows: {out['checks']['projection']}")
        saved()

        if not args.skip_rebuild:
            last_case = next(x for x in reversed(stream.records) if x[1] == "case.reported")
            body = json.loads(last_case[4])
            nudge = nudge_event(Mix(args.seed + 9), body["case_id"], body["case_number"], time.time())
            say(f"rebuild: every projection emptied, {await r.applied():,} events replayed")
            out["rebuild"] = await r.rebuild(nudge)
            out["checks"]["rebuild"] = await r.checks()
            out["checks"]["rebuild_equals_projection"] = row_checks_equal(out["checks"]["projection"],
                                                                          out["checks"]["rebuild"])
            say(f"  rebuilt rows equal the projected ones: {out['checks']['rebuild_equals_projection']}")
            saved()
        del recs
        first_ts, last_ts = stream.first_ts, stream.last_ts
        del stream
        gc.unfreeze()
        gc.collect()

        if not args.skip_queries:
            have = out["checks"]["projection"]["contacts"]
            if args.query_contacts > have:
                extra = args.query_contacts - have
                say(f"top-up: {extra:,} ContactRecorded alone, to {args.query_contacts:,} contacts")
                top = make_stream(extra, seed=args.seed + 1, contacts_only=True, end=last_ts,
                                  years=(last_ts - first_ts) / (365.25 * 86400))
                out["topup"] = await r.projection("contacts top-up", top.kafka(), dict(top.counts))
                del top
            out["checks"]["queries"] = await r.checks()
            say(f"queries over {out['checks']['queries']['contacts']:,} contacts, "
                f"{out['checks']['queries']['cases']:,} cases ({args.queries} each, {args.query_concurrency} "
                f"in flight)")
            out["queries"] = await r.queries()
            saved()

        if args.profile_events or args.profile_queries:
            path = report.RESULTS_DIR / f"{stamp}-pyspy.txt"
            qpath = report.RESULTS_DIR / f"{stamp}-pyspy-queries.txt"
            precs = make_stream(args.profile_events, seed=args.seed + 2, end=last_ts).kafka() \
                if args.profile_events else []
            say(f"profile: py-spy on reporting, {len(precs):,} events of the mix, then {args.profile_queries} "
                f"of each query")
            out["profile"] = await r.profile(precs, path, qpath)

        if args.skip_ceilings:
            return out
        stack.services.supervisor.stop("reporting")
        out["ceilings"] = c = {"pgbench": []}
        say("ceiling: every record on the topics, read back raw (one consumer, no group)")
        c["consume_topics"] = await consume_topics(stack.bootstrap, topics())
        sample = make_stream(args.kafka_records, seed=args.seed + 3).kafka()
        say(f"ceiling: {len(sample):,} records of the mix, raw produce and consume on a scratch topic")
        c["kafka"] = await kafka_ceiling(stack.bootstrap, [(k, v, h) for _t, k, v, h in sample], 6)
        await ceilings.create_scratch(dsn)
        try:
            for clients in args.pgbench_clients:
                say(f"ceiling: pgbench 1-row INSERT, -c {clients}, {args.pgbench_seconds} s")
                c["pgbench"].append(ceilings.pgbench(dsn, clients, args.pgbench_seconds))
            say(f"ceiling: pgbench 200 1-row INSERTs per transaction, -c 1, {args.pgbench_seconds} s")
            c["pgbench_batch"] = pgbench_batch(dsn, 200, args.pgbench_seconds)
        finally:
            await ceilings.drop_scratch(dsn)
    finally:
        out["load"]["end"] = load_now()
        await engine.dispose()
        await producer.stop()
        await conn.close()
    return out


def _terminated(_signum, _frame) -> None:
    raise KeyboardInterrupt("SIGTERM")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    check_local()
    if (args.profile_events or args.profile_queries) and py_spy_path() is None:
        sys.exit("bench reporting: py-spy not found; `.venv/bin/pip install -e '.[bench]'` or pass --no-profile")
    quiet = wait_quiet(args.wait_quiet) if args.wait_quiet else {"others_busy_pct": others_busy(), "waited_s": 0}
    started = datetime.now(UTC)
    stamp = "reporting-" + started.strftime("%Y%m%dT%H%M%SZ")
    report.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    signal.signal(signal.SIGTERM, _terminated)  # stop the stack and keep what was measured, as on Ctrl-C
    try:
        with fresh_stack() as (stack, _logs):
            stack.extra_env.update(dict(item.split("=", 1) for item in args.reporting_env))
            say("starting durable PostgreSQL, Tansu, migrations, then reporting alone")
            start_reporting_only(stack)
            run(measure(stack, args, stamp, results))
    except BaseException as exc:
        if results:  # what the finished phases measured is worth keeping
            results |= {"error": repr(exc), "command": " ".join(["python -m bench reporting", *argv]),
                        "args": vars(args), "quiet": quiet}
            say(f"failed; what was measured: {report.write_json(results, stamp + '-partial')}")
        if isinstance(exc, KeyboardInterrupt):
            say("interrupted; stopping")
            return 130
        raise
    (report.RESULTS_DIR / f"{stamp}-partial.json").unlink(missing_ok=True)
    results |= {"started_at": started.isoformat(), "finished_at": datetime.now(UTC).isoformat(),
                "command": " ".join(["python -m bench reporting", *argv]), "args": vars(args), "quiet": quiet}
    return report.publish(results, reporting_report.render(results), stamp)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
