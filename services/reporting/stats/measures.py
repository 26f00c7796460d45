"""What can be counted, how, and by what. Every SQL fragment here is fixed text: requests only choose
among them by name, and their values travel as bound parameters."""
from dataclasses import dataclass, field
from functools import cache

from schemas.geography import hotline_regions
from services.reporting.projections.clock import HOTLINE_TZ

S = "reporting"
TZ = HOTLINE_TZ.key


@cache
def region_of(column: str) -> str:
    """SQL: the hotline region of a province code column, from schemas/data/regions.csv."""
    whens = " ".join(f"WHEN '{code}' THEN '{region}'" for code, region in sorted(hotline_regions().items()))
    return f"(CASE {column} {whens} ELSE 'unknown' END)"


def local_date(column: str) -> str:
    return f"(({column}) AT TIME ZONE '{TZ}')::date"


def _text(expr: str) -> str:
    return f"coalesce(({expr})::text, 'unknown')"


def _multi(array: str) -> str:
    """An array column, joined laterally one row per element; an empty list counts as 'unknown'."""
    return f"CASE WHEN cardinality({array}) = 0 THEN ARRAY['unknown']::varchar[] ELSE {array} END"


@dataclass(frozen=True)
class Dim:
    sql: str  # the category's expression; for a multi dimension, an array of categories
    multi: bool = False  # an entity can fall in several categories: the cells overlap, so no margins
    description: str = ""


@dataclass(frozen=True)
class Measure:
    name: str
    unit: str
    description: str
    source: str  # FROM: the projection rows that count...
    where: str  # ...and which of them do
    day: str  # the Vietnam-time date an entity counts on
    value: str  # the aggregate; COUNT(DISTINCT ...) where a multi dimension would repeat rows
    dims: dict[str, Dim]
    filters: dict[str, str] = field(default_factory=dict)  # filter name → SQL condition on :<name>


def _place(province: str) -> tuple[dict[str, Dim], dict[str, str]]:
    return ({"province": Dim(_text(province)), "region": Dim(region_of(province))},
            {"province": f"{province} = :province", "region": f"{region_of(province)} = :region"})


_COUNTED = "NOT k.merged AND k.outcome IS DISTINCT FROM 'duplicate'"  # a merged duplicate is not a case
_CASE_DIMS = {
    "exploitation": Dim(_multi("k.exploitation"), multi=True, description="a case with several purposes counts "
                                                                          "under each"),
    "urgency": Dim(_text("k.urgency")), "status": Dim("k.status"), "channel": Dim(_text("k.channel")),
    "child_involved": Dim("k.child_involved::text"), "cross_border": Dim("k.cross_border::text"),
    "at_sea": Dim("k.at_sea::text"),
}
_CASE_FILTERS = {"category": ":category = ANY(k.exploitation)", "urgency": "k.urgency = :urgency"}
_case_place = _place("k.province_code")
_contact_place = _place("c.province_code")  # the caller's, 'unknown' when not given
_outcome_place = _place("o.province_code")
_ref_place = _place("r.province_code")

# Victims rescued and assisted, as the hotline publishes them: people in cases where an agency recorded a
# rescue, support or repatriation, or that intake closed as rescued, assisted or returned; counted on the
# first such day, as the larger of the potential victims recorded and the most an agency reported.
ASSISTED_OUTCOMES = "('victims_rescued', 'victims_supported', 'repatriated')"
_ASSISTED = f"""(SELECT k.case_id, k.province_code, k.urgency, k.exploitation,
    least(o.first_at, CASE WHEN k.outcome IN ('rescued', 'assisted', 'returned') THEN k.status_changed_at END)
        AS assisted_at,
    greatest(coalesce(v.people, 0), coalesce(o.victims, 0), 1) AS people
  FROM {S}.cases k
  LEFT JOIN (SELECT case_id, count(*) AS people FROM {S}.victims GROUP BY case_id) v ON v.case_id = k.case_id
  LEFT JOIN (SELECT case_id, min(recorded_at) AS first_at, max(victims) AS victims FROM {S}.outcomes
             WHERE outcome IN {ASSISTED_OUTCOMES} GROUP BY case_id) o ON o.case_id = k.case_id
  WHERE {_COUNTED}) k"""

MEASURES: dict[str, Measure] = {m.name: m for m in (
    Measure(
        "contacts", "contacts", "Every contact with the hotline (calls, chats, messages, visits), case or not, "
        "by the day it started. Province is the caller's.",
        f"{S}.contacts_daily c", "true", "c.day", "sum(c.contacts)",
        {"channel": Dim("c.channel"), "contact_type": Dim("c.contact_type"), **_contact_place[0],
         "caller_role": Dim("c.caller_role")},
        {**_contact_place[1], "category": "c.contact_type = :category"},
    ),
    Measure(
        "cases", "cases", "Cases reported, by the day they were reported; duplicates merged away do not count.",
        f"{S}.cases k", _COUNTED + " AND k.reported", "k.day", "count(DISTINCT k.case_id)",
        {**_case_place[0], **_CASE_DIMS}, {**_case_place[1], **_CASE_FILTERS},
    ),
    Measure(
        "cases-referred", "cases", "Cases referred to at least one agency unit, by the day of their first "
        "referral (a case counts once however many units it went to).",
        f"{S}.cases k", _COUNTED + " AND k.first_referred_at IS NOT NULL", local_date("k.first_referred_at"),
        "count(DISTINCT k.case_id)", {**_case_place[0], **_CASE_DIMS}, {**_case_place[1], **_CASE_FILTERS},
    ),
    Measure(
        "victims", "potential victims", "Potential victims recorded in reported cases, by the day the case was "
        "reported.",
        f"{S}.victims v JOIN {S}.cases k ON k.case_id = v.case_id", _COUNTED + " AND k.reported", "k.day",
        "count(DISTINCT (v.case_id, v.seq))",
        {"sex": Dim("v.sex"), "age_band": Dim("v.age_band"), "is_child": Dim("v.is_child::text"),
         "nationality": Dim(_text("v.nationality")),
         "need": Dim(_multi("v.needs"), multi=True, description="a person with several needs counts under each"),
         **_case_place[0]},
        {**_case_place[1], **_CASE_FILTERS},
    ),
    Measure(
        "victims-assisted", "people", "Victims and suspected victims rescued and assisted (the hotline's "
        "published figure), on the day of the first rescue, support or repatriation recorded.",
        _ASSISTED, "k.assisted_at IS NOT NULL", local_date("k.assisted_at"), "sum(k.people)",
        {**_case_place[0], "urgency": Dim(_text("k.urgency"))}, {**_case_place[1], **_CASE_FILTERS},
    ),
    Measure(
        "referrals", "referrals", "Referrals made to agency units (matched, escalated or re-routed), by the day "
        "they were made.",
        f"{S}.referrals r LEFT JOIN {S}.cases k ON k.case_id = r.case_id", "r.created", "r.day", "count(*)",
        {"agency_kind": Dim("r.agency_kind"), "agency_level": Dim(_text("r.agency_level")), "status": Dim("r.status"),
         **_ref_place[0], "urgency": Dim("r.urgency"), "cause": Dim("r.cause"),
         "decline_reason": Dim("coalesce(r.decline_reason, 'none')"),
         "escalated_to_level": Dim("coalesce(r.escalated_to_level, 'none')"),
         "breached": Dim("(r.reminded OR coalesce(r.first_response_at > r.acknowledge_by, false))::text")},
        {**_ref_place[1], "category": ":category = ANY(k.exploitation)", "urgency": "r.urgency = :urgency"},
    ),
    Measure(
        "outcomes", "outcomes recorded", "Results agencies recorded on their referrals, by the day recorded.",
        f"{S}.outcomes o LEFT JOIN {S}.cases k ON k.case_id = o.case_id", "true", "o.day", "count(DISTINCT o.event_id)",
        {"outcome": Dim("o.outcome"), "agency_kind": Dim("o.agency_kind"), **_outcome_place[0],
         "service": Dim(_multi("o.services"), multi=True, description="support given, for victims_supported")},
        {**_outcome_place[1], "category": ":category = ANY(k.exploitation)",
         "urgency": "k.urgency = :urgency"},
    ),
    Measure(
        "notifications", "alerts", "Alerts sent to agency units (one per contact and message), by the day "
        "created.",
        f"{S}.notifications n LEFT JOIN {S}.referrals r ON r.referral_id = n.referral_id", "true", "n.day",
        "count(*)",
        {"channel": Dim("n.channel"), "provider": Dim("coalesce(n.provider, 'none')"), "status": Dim("n.status"),
         "kind": Dim(_text("n.kind")), **_ref_place[0]},
        {**_ref_place[1], "urgency": "r.urgency = :urgency"},
    ),
)}
