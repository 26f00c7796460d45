"""A deterministic data set for reporting's end-to-end test: contacts and cases as operators would send them
to intake, what agencies and operators then do with them, and the totals each count table must show.

Everything follows from the seed. Contacts start, and cases are reported, inside WINDOW (days in Vietnam),
which no other stack test uses; cases are in PROVINCES, where no other stack test reports a case, so the
counts made on the day of the run (referrals, alerts, outcomes) can be scoped to them. The expected counts
here are worked out from what is sent, independently of the services: a day is a day in Vietnam, a
victim's age band and childhood follow CTDC's bands, a case's urgency follows the floor its facts set."""
from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from schemas.geography import communes, hotline_regions, provinces

VN = ZoneInfo("Asia/Ho_Chi_Minh")
PLUS7 = timezone(timedelta(hours=7))
WINDOW = (date(2024, 1, 1), date(2025, 12, 31))
# Provinces no other stack test reports a case in: 7 border provinces (Border Guard referrals), 2 inland,
# across the three hotline regions.
PROVINCES = ("08", "14", "19", "37", "42", "44", "66", "75", "82")
UNKNOWN = "unknown"
ALL = "all"

CHANNELS = {"phone": 60, "chat": 14, "sms": 8, "web_form": 7, "walk_in": 5, "agency": 6}
CONTACT_TYPES = {"information_report": 20, "consultation": 36, "emergency": 6, "follow_up": 4, "non_case": 34}
ROLES = {"victim": 10, "relative_or_friend": 30, "citizen_or_witness": 30, "agency": 5, "anonymous": 25}
NON_CASE_REASONS = ("silent", "prank", "wrong_number", "abusive", "other")
TOPICS = ("legal_advice", "victims_rights", "support_services", "prevention", "safe_migration", "other")
GIVEN = ("information", "referral_to_service")
SEXES = {"female": 55, "male": 35, "other": 2, "unknown": 8}
NATIONALITIES = {"VN": 75, "CN": 6, "LA": 4, "KH": 4, "TH": 2, None: 9}
EXPLOITATION = ("sexual_exploitation", "forced_labour", "organ_removal", "forced_marriage", "forced_military",
                "slavery_and_practices", "foetus_trading", "material_benefit", "other_inhumane_purposes")
NEEDS = ("medical", "psychological", "shelter", "legal_aid", "repatriation", "documents", "travel_and_meals",
         "vocational_training", "financial_support", "other")
MEANS = ("debt_bondage", "threats", "false_promises", "withholds_documents", "restricts_movement", "physical_abuse")
RECRUITMENT = ("facebook", "zalo", "tiktok", "telegram", "job_advertisement", "marriage_broker", "in_person",
               "family_or_friend")
BANDS = ((48, "48+"), (39, "39-47"), (30, "30-38"), (27, "27-29"), (24, "24-26"), (21, "21-23"), (18, "18-20"),
         (9, "9-17"), (0, "0-8"))
CHILD_BANDS = ("0-8", "9-17")
URGENCY_RANK = {"normal": 0, "high": 1, "emergency": 2}
CASE_OUTCOMES = ("rescued", "assisted", "returned", "not_substantiated", "transferred_abroad")
ASSISTED_CASE_OUTCOMES = ("rescued", "assisted", "returned")
ASSISTED_REFERRAL_OUTCOMES = ("victims_rescued", "victims_supported", "repatriated")


def pick(rng: random.Random, weights: dict) -> Any:
    return rng.choices(list(weights), list(weights.values()))[0]


def band_of(age: int) -> str:
    return next(band for floor, band in BANDS if age >= floor)


def vn_day(at: datetime) -> date:
    return at.astimezone(VN).date()


def region_of(province: str) -> str:
    return hotline_regions().get(province, UNKNOWN)


def label(group: str, day: date | None) -> str:
    """A period's label, as reporting writes it."""
    if group == "all" or day is None:
        return ALL
    if group == "day":
        return day.isoformat()
    if group == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if group == "month":
        return f"{day.year}-{day.month:02d}"
    return str(day.year)


def when(at: datetime, rng: random.Random) -> str:
    """An instant as an operator's client might send it: in UTC or in Vietnam's offset."""
    return at.astimezone(PLUS7).isoformat() if rng.random() < 0.3 else at.astimezone(UTC).isoformat()


# ---- what is sent ------------------------------------------------------------------------------------------

@dataclass
class Contact:
    index: int
    body: dict  # POST /contacts, without case_id (a follow-up gets its case's id when sent)
    started_at: datetime
    channel: str
    contact_type: str
    province: str  # the caller's, or 'unknown'
    role: str
    follow_up_of: int | None = None  # a case index
    for_case: int | None = None  # the case made from it

    @property
    def day(self) -> date:
        return vn_day(self.started_at)

    def dims(self) -> dict[str, Any]:
        return {"channel": self.channel, "contact_type": self.contact_type, "province": self.province,
                "region": region_of(self.province), "caller_role": self.role}


@dataclass(frozen=True)
class Victim:
    body: dict
    sex: str
    age_band: str
    is_child: bool
    nationality: str | None
    needs: tuple[str, ...]

    def dims(self) -> dict[str, Any]:
        return {"sex": self.sex, "age_band": self.age_band, "is_child": str(self.is_child).lower(),
                "nationality": self.nationality or UNKNOWN, "need": self.needs or (UNKNOWN,)}


@dataclass
class Case:
    index: int
    body: dict  # POST /cases, without contact_id (given when the contact exists)
    reported_at: datetime
    province: str
    commune: str | None
    channel: str
    flags: dict[str, bool]  # immediate_danger, violence, moving_across_border, at_sea, child_victim (explicit)
    cross_border: bool
    urgency: str  # as reported: the floor, or what the operator raised it to
    exploitation: tuple[str, ...]
    victims: list[Victim]
    contact: int | None = None  # the contact it is made from
    duplicate_of: int | None = None  # merged into that case by a supervisor
    patch: dict | None = None  # PATCH /cases/{id} once referred: more exploitation and one more victim
    patched_victims: list[Victim] = field(default_factory=list)
    patched_exploitation: tuple[str, ...] = ()
    close_as: str | None = None  # an operator closes it with this outcome...
    to_in_progress: bool = False  # ...or moves it to in progress

    @property
    def day(self) -> date:
        return vn_day(self.reported_at)

    @property
    def final_victims(self) -> list[Victim]:
        return self.victims + self.patched_victims

    @property
    def final_exploitation(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.exploitation) | set(self.patched_exploitation)))

    @property
    def child_involved(self) -> bool:
        return self.flags["child_victim"] or any(v.is_child for v in self.final_victims)

    @property
    def final_urgency(self) -> str:
        """A patch with worse facts raises the urgency by itself (never lowers it)."""
        floor = urgency_floor(self.flags, self.child_involved)
        return max(self.urgency, floor, key=URGENCY_RANK.__getitem__)

    @property
    def merged(self) -> bool:
        return self.duplicate_of is not None

    def dims(self) -> dict[str, Any]:
        return {"province": self.province, "region": region_of(self.province), "urgency": self.final_urgency,
                "exploitation": self.final_exploitation or (UNKNOWN,), "channel": self.channel,
                "child_involved": str(self.child_involved).lower(), "cross_border": str(self.cross_border).lower(),
                "at_sea": str(self.flags["at_sea"]).lower()}


def urgency_floor(flags: dict[str, bool], child: bool) -> str:
    if flags["immediate_danger"] or flags["moving_across_border"]:
        return "emergency"
    if child or flags["violence"]:
        return "high"
    return "normal"


@dataclass
class Dataset:
    seed: int
    contacts: list[Contact]
    cases: list[Case]

    @property
    def counted_cases(self) -> list[Case]:
        """The cases reporting counts: every one but the duplicates merged away."""
        return [c for c in self.cases if not c.merged]

    def contact_items(self) -> list[tuple[date, dict[str, Any], int]]:
        return [(c.day, c.dims(), 1) for c in self.contacts]

    def victim_items(self) -> list[tuple[date, dict[str, Any], int]]:
        return [(c.day, {**v.dims(), "province": c.province, "region": region_of(c.province)}, 1)
                for c in self.counted_cases for v in c.final_victims]


# ---- the generator -----------------------------------------------------------------------------------------

def _instant(rng: random.Random, start: datetime, end: datetime) -> datetime:
    return start + timedelta(seconds=rng.uniform(0, (end - start).total_seconds()))


def _window_instants() -> tuple[datetime, datetime]:
    first = datetime.combine(WINDOW[0], datetime.min.time(), VN)
    last = datetime.combine(WINDOW[1] + timedelta(days=1), datetime.min.time(), VN) - timedelta(seconds=1)
    return first, last


def _victim(rng: random.Random, name: str | None = None) -> Victim:
    sex = pick(rng, SEXES)
    body: dict[str, Any] = {"sex": sex}
    form = rng.random()
    if form < 0.6:
        age = rng.choice([rng.randint(3, 17), rng.randint(18, 35), rng.randint(18, 35), rng.randint(36, 70)])
        body["age"], band, child = age, band_of(age), age < 18
    elif form < 0.8:
        band = rng.choice([b for _, b in BANDS])
        body["age_band"], child = band, band in CHILD_BANDS
    elif form < 0.85:
        body["is_child"], band, child = True, UNKNOWN, True
    else:
        band, child = UNKNOWN, False
    nationality = pick(rng, NATIONALITIES)
    if nationality:
        body["nationality"] = nationality
    needs = tuple(sorted(rng.sample(NEEDS, pick(rng, {0: 50, 1: 35, 2: 15}))))
    if needs:
        body["needs"] = list(needs)
    if name:
        body["name"] = name
    return Victim(body, sex, band, child, nationality, needs)


def _case(rng: random.Random, index: int, reported_at: datetime, province: str | None = None,
          commune: str | None = None, victim_name: str | None = None) -> Case:
    province = province or rng.choice(PROVINCES)
    if commune is None and rng.random() < 0.9:
        commune = rng.choice(sorted(c for c, (_, p) in communes().items() if p == province))
    flags = {"immediate_danger": rng.random() < 0.07, "violence": rng.random() < 0.12,
             "moving_across_border": rng.random() < 0.04, "at_sea": rng.random() < 0.04,
             "child_victim": rng.random() < 0.03}
    victims = [_victim(rng) for _ in range(pick(rng, {0: 10, 1: 60, 2: 20, 3: 7, 4: 3}))]
    if victim_name:
        victims = [_victim(rng, victim_name)] + victims[:1]
    exploitation = tuple(sorted(rng.sample(EXPLOITATION, pick(rng, {0: 15, 1: 60, 2: 20, 3: 5}))))
    channel = pick(rng, CHANNELS)
    body: dict[str, Any] = {"province_code": province, "channel": channel, "reported_at": when(reported_at, rng)}
    if commune:
        body["commune_code"] = commune
    for flag, on in flags.items():
        if on:
            body[flag] = True
    if rng.random() < 0.2:  # an operator sets false explicitly now and then
        body.setdefault("violence", False)
    abroad = rng.random() < 0.05
    if abroad:
        body["abroad_country"] = rng.choice(["CN", "LA", "KH", "TH", "MY"])
    if flags["moving_across_border"] and rng.random() < 0.6:
        body["destination_country"] = rng.choice(["CN", "LA", "KH"])
    if victims:
        body["victims"] = [v.body for v in victims]
    if exploitation:
        body["exploitation"] = list(exploitation)
    if rng.random() < 0.5:
        body["means_of_control"] = rng.sample(MEANS, rng.randint(1, 2))
    if rng.random() < 0.7:
        body["recruitment_channel"] = rng.choice(RECRUITMENT)
    child = flags["child_victim"] or any(v.is_child for v in victims)
    urgency = urgency_floor(flags, child)
    if rng.random() < 0.15:
        urgency = rng.choice([u for u in URGENCY_RANK if URGENCY_RANK[u] >= URGENCY_RANK[urgency]])
        body["urgency"] = urgency
    return Case(index, body, reported_at, province, commune, channel, flags,
                cross_border=bool(flags["moving_across_border"] or abroad or "destination_country" in body),
                urgency=urgency, exploitation=exploitation, victims=victims)


def _contact(rng: random.Random, index: int, started_at: datetime, contact_type: str | None = None) -> Contact:
    channel = pick(rng, CHANNELS)
    contact_type = contact_type or pick(rng, CONTACT_TYPES)
    role = pick(rng, ROLES)
    province = rng.choice(sorted(provinces())) if rng.random() < 0.8 else None
    ended_at = started_at + timedelta(seconds=rng.randint(0, 3600))
    body: dict[str, Any] = {"channel": channel, "contact_type": contact_type, "started_at": when(started_at, rng),
                            "ended_at": when(ended_at, rng), "caller_role": role}
    if province:
        body["caller_province_code"] = province
    if contact_type == "non_case":
        body["non_case_reason"] = rng.choice(NON_CASE_REASONS)
    if contact_type == "consultation":
        body["consultation_topics"] = rng.sample(TOPICS, rng.randint(1, 2))
        body["consultation_given"] = rng.sample(GIVEN, rng.randint(0, 2))
    if rng.random() < 0.3:
        body["caller_sex"] = rng.choice(["female", "male", "unknown"])
    if rng.random() < 0.05:
        body["language"] = "en"
    return Contact(index, body, started_at, channel, contact_type, province or UNKNOWN, role)


def generate(seed: int = 111, contacts: int = 10_000, cases: int = 150, duplicates: int = 5, patches: int = 8
             ) -> Dataset:
    """`contacts` contacts (those cases are made from included) and `cases` cases, all in WINDOW, plus four
    contacts on the window's edges (Vietnam's midnight on either side of its first and last day)."""
    rng = random.Random(seed)
    first, last = _window_instants()
    made: list[Case] = []
    for i in range(cases - duplicates):
        made.append(_case(rng, i, _instant(rng, first + timedelta(hours=2), last - timedelta(days=12))))
    # Duplicates: the same victim reported again in the same commune a few days later, then merged.
    originals = rng.sample([c for c in made if c.commune], duplicates)
    for original in originals:
        name = f"Nạn nhân {seed}-{original.index}"
        if original.victims:
            original.body["victims"][0] = {**original.body["victims"][0], "name": name}
        else:
            original.victims = [Victim({"name": name}, "unknown", UNKNOWN, False, None, ())]
            original.body["victims"] = [{"name": name}]
        twin = _case(rng, len(made), original.reported_at + timedelta(days=rng.uniform(1, 10)), original.province,
                     original.commune, victim_name=name)
        twin.duplicate_of = original.index
        made.append(twin)
    # Some cases come from a contact a few minutes before the report.
    contacts_made: list[Contact] = []
    for case in rng.sample(made, len(made) // 3):
        started = case.reported_at - timedelta(minutes=rng.uniform(3, 60))
        contact = _contact(rng, len(contacts_made), started, rng.choice(["information_report", "emergency"]))
        contact.body["ended_at"] = when(min(started + timedelta(minutes=rng.uniform(0, 3)), case.reported_at), rng)
        contact.for_case = case.index
        case.contact = contact.index
        contacts_made.append(contact)
    # Later facts: a patch adds an exploitation type and one more victim.
    plain = [c for c in made if c.duplicate_of is None and c.index not in {o.index for o in originals}]
    for case in rng.sample(plain, patches):
        extra = tuple(sorted(set(case.exploitation) | {rng.choice(EXPLOITATION)}))
        victim = _victim(rng)
        case.patched_exploitation = extra
        case.patched_victims = [victim]
        case.patch = {"exploitation": list(extra), "victims": [v.body for v in case.victims] + [victim.body]}
    # What operators do once the case is referred.
    for case in made:
        if case.merged:
            continue
        roll = rng.random()
        if roll < 0.2:
            case.close_as = rng.choice(CASE_OUTCOMES)
        elif roll < 0.3:
            case.to_in_progress = True
    # The contacts: started anywhere in the window, each at its own instant (to the microsecond).
    seen = {c.started_at for c in contacts_made}
    edges = [first, first - timedelta(microseconds=1), last + timedelta(microseconds=999_999),
             last + timedelta(seconds=1)]  # 00:00 on the first day, 23:59:59.999999 the day before, ...
    for at in edges:
        contacts_made.append(_contact(rng, len(contacts_made), at, "non_case"))
        seen.add(at)
    while len(contacts_made) < contacts + len(edges):
        at = _instant(rng, first, last).replace(microsecond=len(contacts_made) % 1_000_000)
        if at in seen:
            continue
        seen.add(at)
        contact = _contact(rng, len(contacts_made), at)
        if contact.contact_type == "follow_up":
            contact.follow_up_of = rng.choice(made).index
        contacts_made.append(contact)
    return Dataset(seed, contacts_made, made)


# ---- agencies' part: decided per referral, from the seed, the case and the unit ---------------------------

@dataclass(frozen=True)
class AgencyPlan:
    """What a unit does with a referral: nothing, acknowledge, accept (and record outcomes, and close), or
    acknowledge and decline."""

    acknowledge: bool = False
    accept: bool = False
    outcomes: tuple[dict, ...] = ()
    close: bool = False
    decline: str | None = None


def agency_plan(seed: int, case_index: int, unit_code: str) -> AgencyPlan:
    rng = random.Random(f"{seed}/{case_index}/{unit_code}")
    roll = rng.random()
    if roll < 0.45:
        return AgencyPlan()
    if roll < 0.65:
        return AgencyPlan(acknowledge=True)
    if roll < 0.73:
        return AgencyPlan(acknowledge=True, decline=rng.choice(["not_competent", "no_capacity", "already_handled",
                                                                 "other"]))
    outcomes = []
    for _ in range(pick(rng, {0: 20, 1: 60, 2: 20})):
        kind = rng.choice(["investigation_opened", "victims_rescued", "victims_supported", "repatriated",
                           "not_substantiated"])
        outcome: dict[str, Any] = {"outcome": kind}
        if kind in ("victims_rescued", "repatriated"):
            outcome["victims"] = rng.randint(1, 5)
        if kind == "victims_supported":
            outcome["services"] = rng.sample(NEEDS, rng.randint(1, 2))
        outcomes.append(outcome)
    return AgencyPlan(acknowledge=True, accept=True, outcomes=tuple(outcomes), close=rng.random() < 0.4)


# ---- counting ----------------------------------------------------------------------------------------------

Item = tuple[date, dict[str, Any], int]  # (day, dimension → value or tuple of values for a multi one, weight)


def table(items: Iterable[Item], group: str, by: tuple[str, ...],
          keep: Callable[[date, dict[str, Any]], bool] = lambda day, dims: True) -> Counter:
    """(period, *categories) → count, as reporting's cells: an item with several values of a dimension
    counts once under each."""
    out: Counter = Counter()
    for day, dims, weight in items:
        if not keep(day, dims):
            continue
        choices = [dims[d] if isinstance(dims[d], tuple) else (dims[d],) for d in by]
        for combo in itertools.product(*choices):
            out[(label(group, day), *combo)] += weight
    return out
