"""Count tables: one measure, cut into periods and the categories of up to four dimensions, with margins
and small cells suppressed (privacy/suppression.py)."""
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting.privacy.suppression import Published, publish, suppress
from services.reporting.stats.measures import Measure
from services.reporting.stats.periods import ALL, Group, bucket_sql, label, periods


@dataclass(frozen=True)
class CountQuery:
    measure: Measure
    start: date
    end: date
    group: Group
    by: tuple[str, ...] = ()
    filters: dict[str, str] = field(default_factory=dict)

    @property
    def margins(self) -> bool:
        """Margins are sums only when every entity falls in exactly one category."""
        return not any(self.measure.dims[d].multi for d in self.by)


@dataclass(frozen=True)
class CountTable:
    query: CountQuery
    periods: list[str]
    categories: list[tuple[str, ...]]
    cells: list[list[int]]  # periods × categories, true counts (never published as such)
    published: Published


def select_sql(q: CountQuery, aggregates: list[str]) -> tuple[str, dict[str, Any]]:
    """SQL and parameters: the period, each dimension's category, then `aggregates`, per group."""
    m = q.measure
    columns, laterals = [bucket_sql(q.group, m.day)], []
    for i, name in enumerate(q.by):
        dim = m.dims[name]
        if dim.multi:
            laterals.append(f"CROSS JOIN LATERAL unnest({dim.sql}) AS m{i}(v)")
            columns.append(f"m{i}.v")
        else:
            columns.append(dim.sql)
    select = ", ".join([f"{c} AS c{i}" for i, c in enumerate(columns)] + aggregates)
    group = ", ".join(str(i + 1) for i in range(len(columns)))
    return f"SELECT {select} FROM {m.source} {' '.join(laterals)} WHERE {where_sql(q)} GROUP BY {group}", bound(q)


def where_sql(q: CountQuery) -> str:
    """The rows of the measure in the range that pass the filters."""
    m = q.measure
    return " AND ".join([f"({m.where})", f"{m.day} BETWEEN :start AND :end"] +
                        [f"({m.filters[f]})" for f in sorted(q.filters)])


def bound(q: CountQuery) -> dict[str, Any]:
    return {"start": q.start, "end": q.end, **q.filters}


async def count_rows(session: AsyncSession, q: CountQuery) -> dict[tuple[str, tuple[str, ...]], int]:
    """(period label, categories) → count, for the cells that have any."""
    sql, params = select_sql(q, [q.measure.value])
    rows = (await session.execute(text(sql), params)).all()
    return {(label(q.group, row[0]), tuple(str(v) for v in row[1:-1])): int(row[-1]) for row in rows}


async def count_table(session: AsyncSession, q: CountQuery, k: int | None,
                      known: list[tuple[str, ...]] = ()) -> CountTable:
    """The table with every period of the range and every `known` category (empty ones are zeros, and
    zeros are suppressed like any small count); `k` None publishes every count."""
    found = await count_rows(session, q)
    labels = periods(q.group, q.start, q.end)
    categories = sorted({cats for _, cats in found} | set(known)) if q.by else [()]
    cells = [[found.get((p, c), 0) for c in categories] for p in labels]
    return CountTable(q, labels, categories, cells, protect(cells, k, margins=q.margins))


def protect(cells: list[list[int]], k: int | None, *, margins: bool) -> Published:
    """Suppressed below k, or (k None: an admin's audited internal read) every number published."""
    return suppress(cells, k, margins=margins) if k else publish(cells, (), k=1, margins=margins)


def tidy(table: CountTable) -> list[dict[str, Any]]:
    """Long form, one row per published number: each cell, then the margins, 'all' standing for every
    period or every category. A margin that would only repeat the cells is not published."""
    q, pub = table.query, table.published
    rows = []

    def row(period: str, cats: tuple[str, ...], value: int | None) -> None:
        rows.append({"period": period, **dict(zip(q.by, cats)), "value": value, "suppressed": value is None})

    for i, p in enumerate(table.periods):
        for j, cats in enumerate(table.categories):
            row(p, cats, pub.cells[i][j])
    everything = (ALL,) * len(q.by)
    many_periods, many_categories = len(table.periods) > 1, len(table.categories) > 1
    if q.margins and many_periods and many_categories:
        for i, p in enumerate(table.periods):
            row(p, everything, pub.row_totals[i])
        for j, cats in enumerate(table.categories):
            row(ALL, cats, pub.col_totals[j])
    if q.margins and (many_periods or many_categories):
        row(ALL, everything, pub.grand_total)
    return rows
