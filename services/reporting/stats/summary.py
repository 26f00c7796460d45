"""The headline figures the hotline publishes, for any period: "30,170 calls received and processed, 700
cases referred, 785 victims assisted", with the breakdowns analysts quote beside them."""
from dataclasses import replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from schemas.events.referrals import ReferralOutcome
from schemas.vocab import ContactType
from services.reporting.stats.counts import CountQuery, count_table
from services.reporting.stats.measures import MEASURES
from services.reporting.stats.periods import Group

# (figure, measure): each counted over the whole range.
FIGURES = (
    ("cases_reported", "cases"),
    ("cases_referred", "cases-referred"),
    ("potential_victims", "victims"),
    ("victims_assisted", "victims-assisted"),
    ("referrals", "referrals"),
    ("alerts", "notifications"),
)


async def _single(session: AsyncSession, q: CountQuery, k: int | None) -> int | None:
    return (await count_table(session, q, k)).published.cells[0][0]


async def headline(session: AsyncSession, base: CountQuery, k: int | None) -> list[dict[str, Any]]:
    """One row per figure. Contacts come with their split by type and the total of it, suppressed
    together; outcomes by kind have no published total, as one referral can record several."""
    rows: list[dict[str, Any]] = []

    def add(figure: str, value: int | None) -> None:
        rows.append({"figure": figure, "value": value, "suppressed": value is None})

    def query(measure: str, by: tuple[str, ...] = ()) -> CountQuery:
        """`measure` over the whole range, with the filters it has (a contact's category is its type)."""
        m = MEASURES[measure]
        filters = {f: v for f, v in base.filters.items() if f in m.filters and (f, measure) != ("category", "contacts")}
        return replace(base, measure=m, group=Group.all, by=by, filters=filters)

    contacts = await count_table(session, query("contacts", ("contact_type",)), k,
                                 known=[(t.value,) for t in ContactType])
    add("contacts", contacts.published.grand_total)
    for j, (contact_type,) in enumerate(contacts.categories):
        add(f"contacts.{contact_type}", contacts.published.cells[0][j])
    for figure, measure in FIGURES:
        add(figure, await _single(session, query(measure), k))
    outcomes = await count_table(session, query("outcomes", ("outcome",)), k,
                                 known=[(o.value,) for o in ReferralOutcome])
    for j, (outcome,) in enumerate(outcomes.categories):
        add(f"outcomes.{outcome}", outcomes.published.cells[0][j])
    return rows
