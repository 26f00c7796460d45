"""The long form publishes each number once: cells, then the margins that do not merely repeat them."""
from datetime import date

import pytest

from services.reporting.stats.counts import CountQuery, CountTable, protect, tidy
from services.reporting.stats.measures import MEASURES
from services.reporting.stats.periods import Group


def table(periods, categories, cells, by=("province",), measure="cases", k=None):
    q = CountQuery(MEASURES[measure], date(2026, 1, 1), date(2026, 12, 31), Group.month, by)
    return CountTable(q, periods, categories, cells, protect(cells, k, margins=q.margins))


def keys(rows, by=("province",)):
    return [(r["period"], *(r[d] for d in by)) for r in rows]


@pytest.mark.parametrize("periods, categories, cells, expected_margins", [
    (["2026-01", "2026-02"], [("01",), ("79",)], [[5, 6], [7, 8]],
     [("2026-01", "all"), ("2026-02", "all"), ("all", "01"), ("all", "79"), ("all", "all")]),
    (["all"], [("01",), ("79",)], [[5, 6]], [("all", "all")]),  # one period: its total is the grand total
    (["2026-01", "2026-02"], [("01",)], [[5], [6]], [("all", "all")]),  # one category
    (["all"], [("01",)], [[5]], []),  # one number
    (["2026-01", "2026-02"], [], [[], []], [("all", "all")]),  # nothing counted: the total still is (0)
])
def test_margins_are_published_once(periods, categories, cells, expected_margins):
    rows = tidy(table(periods, categories, cells))
    cell_keys = [(p, *c) for p in periods for c in categories]
    assert keys(rows) == cell_keys + expected_margins
    assert len(set(keys(rows))) == len(rows)


def test_overlapping_categories_have_no_margins_and_zero_totals_are_suppressed():
    multi = tidy(table(["2026-01", "2026-02"], [("forced_labour",), ("sexual_exploitation",)], [[5, 6], [7, 8]],
                       by=("exploitation",)))
    assert all("all" not in (r["period"], r["exploitation"]) for r in multi)
    empty = tidy(table(["2026-01", "2026-02"], [], [[], []], k=5))
    assert empty == [{"period": "all", "province": "all", "value": None, "suppressed": True}]
