"""The query parameters every analyst endpoint shares, checked against what the measure offers."""
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Literal

from fastapi import Depends, Query, Request

from runtime.auth import Principal, Role, require
from runtime.inputs import IsoDate
from runtime.problems import DomainError, Forbidden
from schemas.events.common import Urgency
from schemas.geography import provinces
from schemas.vocab import ContactType, Exploitation
from services.reporting.projections.clock import HOTLINE_TZ
from services.reporting.stats.measures import Measure
from services.reporting.stats.periods import Group, count

FIRST_DAY = date(2012, 1, 1)  # the hotline began in 2012 (as the 1800 1567 child-protection line)
MAX_PERIODS = 5000
MAX_BY = 4


class Format(StrEnum):
    json = "json"
    csv = "csv"


def query_error(field: str, detail: str) -> DomainError:
    return DomainError(f"{field}: {detail}", errors=[{"field": field, "in": "query", "detail": detail,
                                                      "code": "invalid"}])


@dataclass(frozen=True)
class StatsParams:
    start: date
    end: date
    group: Group
    by: tuple[str, ...]
    filters: dict[str, str]
    format: Format
    suppress: bool
    principal: Principal

    def for_measure(self, measure: Measure, *, allowed_by: tuple[str, ...] | None = None) -> None:
        """Refuse, naming the parameter, a breakdown or filter the measure does not have."""
        dims = allowed_by if allowed_by is not None else tuple(measure.dims)
        for name in self.by:
            if name not in dims:
                raise query_error("by", f"{measure.name} cannot be broken down by {name!r}; it can by: "
                                        f"{', '.join(dims)}")
        for name in self.filters:
            if name not in measure.filters:
                raise query_error(name, f"{measure.name} cannot be filtered by {name}")
        if "category" in self.filters:
            vocab = ContactType if measure.name == "contacts" else Exploitation
            if self.filters["category"] not in set(vocab):
                raise query_error("category", f"for {measure.name} the category is one of: {', '.join(vocab)}")


async def stats_params(
    request: Request,
    principal: Annotated[Principal, Depends(require(Role.ANALYST))],
    start: Annotated[IsoDate | None, Query(alias="from", description="First day (Vietnam time), inclusive. "
                                                                  "Default: 2012-01-01.")] = None,
    end: Annotated[IsoDate | None, Query(alias="to", description="Last day, inclusive. Default: today.")] = None,
    group: Annotated[Group, Query(description="Time grouping; 'all' gives one period for the whole range.")]
    = Group.month,
    by: Annotated[str | None, Query(description="Up to four dimensions, comma-separated, e.g. 'sex,age_band'.",
                                    max_length=200)] = None,
    province: Annotated[str | None, Query(pattern=r"^[0-9]{2}$", description="Province code (2025 map).")] = None,
    region: Annotated[Literal["north", "central", "south"] | None, Query(description="Hotline region.")] = None,
    category: Annotated[str | None, Query(max_length=40, description="Exploitation type; for contacts, the "
                                                                     "contact type.")] = None,
    urgency: Annotated[Urgency | None, Query()] = None,
    format: Annotated[Format | None, Query(description="json or csv (or send Accept: text/csv).")] = None,
    suppress: Annotated[bool, Query(description="false lifts small-cell suppression: admins only, audited.")]
    = True,
) -> StatsParams:
    today = datetime.now(HOTLINE_TZ).date()
    start, end = start or FIRST_DAY, end or today
    if start > end:
        raise query_error("from", f"the range starts ({start}) after it ends ({end})")
    if count(group, start, end) > MAX_PERIODS:
        raise query_error("group", f"more than {MAX_PERIODS} periods: use a coarser grouping or a shorter range")
    names = tuple(dict.fromkeys(n.strip() for n in (by or "").split(",") if n.strip()))
    if len(names) > MAX_BY:
        raise query_error("by", f"at most {MAX_BY} dimensions")
    if province is not None and province not in provinces():
        raise query_error("province", f"unknown province code {province!r} on the 2025 map")
    if not suppress and not principal.has(Role.ADMIN):
        raise Forbidden("Only an admin may lift small-cell suppression (suppress=false).")
    filters = {k: str(v) for k, v in {"province": province, "region": region, "category": category,
                                      "urgency": urgency}.items() if v is not None}
    wants_csv = format is Format.csv or (format is None and "text/csv" in request.headers.get("accept", ""))
    return StatsParams(start, end, group, names, filters, Format.csv if wants_csv else Format.json, suppress,
                       principal)


Params = Annotated[StatsParams, Depends(stats_params)]
