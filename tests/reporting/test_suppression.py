"""Small-cell suppression (services/reporting/privacy/suppression.py): primary suppression below k,
complementary suppression, and the graph auditor cross-checked against an exhaustive search over
every non-negative integer table consistent with what is published."""
from __future__ import annotations

import math
import random

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from services.reporting.privacy.suppression import (
    DEFAULT_K, Entry, Published, publish, publishable_entries, recoverable, suppress,
)

GRAND = Entry("grand")


def cell(r: int, c: int) -> Entry:
    return Entry("cell", r, c)


def true_value(cells: list[list[int]], e: Entry) -> int:
    if e.kind == "cell":
        return cells[e.row][e.col]
    if e.kind == "row_total":
        return sum(cells[e.row])
    if e.kind == "col_total":
        return sum(row[e.col] for row in cells)
    return sum(map(sum, cells))


def shown(p: Published, e: Entry) -> int | None:
    if e.kind == "cell":
        return p.cells[e.row][e.col]
    if e.kind == "row_total":
        return p.row_totals[e.row]
    if e.kind == "col_total":
        return p.col_totals[e.col]
    return p.grand_total


def brute_force_unique(cells: list[list[int]], p: Published) -> set[Entry]:
    """The suppressed entries that take one value only, over every table of non-negative integers
    that reproduces every published number of `p` (cells, row totals, column totals, grand total).

    Exhaustive search, independent of the graph argument. The unknowns are the suppressed cells and
    every margin not published; each row and column, and the row of column totals and the column
    of row totals, says that its entries sum to its margin. For every suppressed entry, look for a
    consistent table in which its value is below the true one, then one in which it is above; it
    is unique iff neither exists. The search narrows every unknown's range by what each equation
    allows, then branches on the narrowest open range (halving it). A published number bounds every
    entry it sums. A cell under no published number is in no equation whose sum is published: it
    can take any value, carrying its row, column and grand totals along, without touching anything
    published, so those entries are not unique and the cell is held at its true value."""
    R, C = len(cells), len(cells[0])
    rows_pub = p.row_totals if p.row_totals is not None else (None,) * R
    cols_pub = p.col_totals if p.col_totals is not None else (None,) * C
    entries = ([cell(r, c) for r in range(R) for c in range(C)] + [Entry("row_total", r) for r in range(R)]
               + [Entry("col_total", None, c) for c in range(C)] + [GRAND])
    published = {cell(r, c): p.cells[r][c] for r in range(R) for c in range(C)}
    published.update({Entry("row_total", r): t for r, t in enumerate(rows_pub)})
    published.update({Entry("col_total", None, c): t for c, t in enumerate(cols_pub)})
    published[GRAND] = p.grand_total
    inf = float("inf")
    free: set[Entry] = set()
    for r in range(R):
        for c in range(C):
            e = cell(r, c)
            bounds = [t for t in (rows_pub[r], cols_pub[c], p.grand_total) if t is not None]
            if published[e] is None and not bounds:
                free |= {e, Entry("row_total", r), Entry("col_total", None, c), GRAND}
                published[e] = cells[r][c]
    unknowns = [e for e in entries if published[e] is None]
    at = {e: i for i, e in enumerate(unknowns)}

    def top(e: Entry) -> int:
        """The most an entry can be, given what is published."""
        if published[e] is not None:
            return published[e]
        if e.kind == "cell":
            return min(t for t in (rows_pub[e.row], cols_pub[e.col], p.grand_total) if t is not None)
        if p.grand_total is not None:
            return p.grand_total
        if e.kind == "row_total":
            return sum(top(cell(e.row, c)) for c in range(C))
        if e.kind == "col_total":
            return sum(top(cell(r, e.col)) for r in range(R))
        return sum(top(cell(r, c)) for r in range(R) for c in range(C))

    lines = ([([cell(r, c) for c in range(C)], Entry("row_total", r)) for r in range(R)]
             + [([cell(r, c) for r in range(R)], Entry("col_total", None, c)) for c in range(C)]
             + [([Entry("row_total", r) for r in range(R)], GRAND),
                ([Entry("col_total", None, c) for c in range(C)], GRAND)])
    equations = []                                   # ([(unknown, +1 or -1)], constant): sum = constant
    for parts, margin in lines:
        terms = [(at[e], 1) for e in parts if e in at] + ([(at[margin], -1)] if margin in at else [])
        constant = (published[margin] or 0) * (margin not in at) - sum(published[e] or 0 for e in parts)
        equations.append((terms, constant))

    def narrow(lo: list[int], hi: list[int]) -> bool:
        changed = True
        while changed:
            changed = False
            for terms, b in equations:
                least = sum(lo[i] if a > 0 else -hi[i] for i, a in terms)
                most = sum(hi[i] if a > 0 else -lo[i] for i, a in terms)
                if least > b or most < b:
                    return False
                for i, a in terms:
                    rest_least = least - (lo[i] if a > 0 else -hi[i])
                    rest_most = most - (hi[i] if a > 0 else -lo[i])
                    new_lo, new_hi = (b - rest_most, b - rest_least) if a > 0 else (rest_least - b, rest_most - b)
                    new_lo, new_hi = max(lo[i], new_lo), min(hi[i], new_hi)
                    if new_lo > new_hi:
                        return False
                    if (new_lo, new_hi) != (lo[i], hi[i]):
                        lo[i], hi[i], changed = new_lo, new_hi, True
                        least = rest_least + (new_lo if a > 0 else -new_hi)
                        most = rest_most + (new_hi if a > 0 else -new_lo)
        return True

    def exists(lo: list[int], hi: list[int]) -> bool:
        lo, hi = list(lo), list(hi)
        if not narrow(lo, hi):
            return False
        open_ = [i for i in range(len(lo)) if lo[i] < hi[i]]
        if not open_:
            return True
        i = min(open_, key=lambda j: hi[j] - lo[j])
        mid = (lo[i] + hi[i]) // 2
        return (exists(lo, hi[:i] + [mid] + hi[i + 1:])
                or exists(lo[:i] + [mid + 1] + lo[i + 1:], hi))

    unique = set()
    lo, hi = [0] * len(unknowns), [top(e) for e in unknowns]
    assert all(h < inf for h in hi)
    for e in p.suppressed_entries():
        if e in free:
            continue
        i, t = at[e], true_value(cells, e)
        if not (exists(lo, hi[:i] + [t - 1] + hi[i + 1:]) or exists(lo[:i] + [t + 1] + lo[i + 1:], hi)):
            unique.add(e)
    return unique


def assert_truthful(cells: list[list[int]], p: Published) -> None:
    """Every published number is the true one, margins included, and every number below k is
    suppressed."""
    R, C = len(cells), len(cells[0]) if cells else 0
    for e in publishable_entries(R, C, margins=p.margins):
        v = shown(p, e)
        assert v is None or v == true_value(cells, e), e
        if true_value(cells, e) < p.k:
            assert v is None, e
    for r, row in enumerate(p.cells):
        for c, v in enumerate(row):
            assert v is None or v == cells[r][c]
    if p.row_totals is not None:
        assert len(p.row_totals) == R
        for r, t in enumerate(p.row_totals):
            assert t is None or t == sum(cells[r])
    if p.col_totals is not None:
        assert len(p.col_totals) == C
        for c, t in enumerate(p.col_totals):
            assert t is None or t == sum(row[c] for row in cells)
    assert p.grand_total is None or p.grand_total == sum(map(sum, cells))
    assert p.suppressed_primary + p.suppressed_complementary == len(p.suppressed_entries())
    assert p.suppressed_primary == sum(
        1 for e in p.suppressed_entries() if true_value(cells, e) < p.k)


tables = st.integers(1, 4).flatmap(lambda rows: st.integers(1, 4).flatmap(
    lambda cols: st.lists(st.lists(st.integers(0, 12), min_size=cols, max_size=cols),
                          min_size=rows, max_size=rows)))
small = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- primary suppression ---------------------------------------------------------------------------

def test_every_number_below_k_is_suppressed_zero_included():
    cells = [[0, 4, 5, 12], [7, 1, 9, 0], [3, 3, 3, 3]]
    p = suppress(cells, 5)
    for r in range(3):
        for c in range(4):
            if cells[r][c] < 5:
                assert p.cells[r][c] is None
    assert p.suppressed_primary == 8
    assert_truthful(cells, p)


def test_nothing_is_suppressed_when_nothing_is_below_k():
    cells = [[5, 6, 7], [8, 9, 10], [11, 12, 13]]
    p = suppress(cells, 5)
    assert p.cells == tuple(map(tuple, cells))
    assert p.row_totals == (18, 27, 36) and p.col_totals == (24, 27, 30) and p.grand_total == 81
    assert (p.suppressed_primary, p.suppressed_complementary) == (0, 0)
    assert p.suppressed_entries() == []


@given(tables, st.integers(1, 6), st.booleans())
@small
def test_nothing_below_k_means_nothing_suppressed(cells, k, margins):
    cells = [[v + k for v in row] for row in cells]
    p = suppress(cells, k, margins=margins)
    assert p.suppressed_entries() == []
    assert_truthful(cells, p)


def test_margins_below_k_are_suppressed_too():
    cells = [[1, 2, 30], [0, 1, 40]]
    p = suppress(cells, 5)
    assert p.col_totals[0] is None and p.col_totals[1] is None
    assert_truthful(cells, p)
    assert recoverable(cells, p) == []


def test_default_k_is_five():
    assert DEFAULT_K == 5
    assert suppress([[4, 5], [5, 5]]).cells[0][0] is None


def test_k_of_one_suppresses_only_zeros():
    cells = [[0, 1, 2], [3, 0, 4], [5, 6, 7]]
    p = suppress(cells, 1)
    assert p.suppressed_primary == 2
    assert recoverable(cells, p) == []
    assert brute_force_unique(cells, p) == set()


# --- classic attacks -------------------------------------------------------------------------------

def test_single_small_cell_is_not_given_away_by_its_row_total():
    cells = [[3, 10, 12], [8, 9, 10], [20, 21, 22]]
    primary_only = publish(cells, [cell(0, 0)], k=5)
    assert recoverable(cells, primary_only) == [cell(0, 0)]        # 25 - 10 - 12 = 3
    assert brute_force_unique(cells, primary_only) == {cell(0, 0)}
    p = suppress(cells, 5)
    assert p.cells[0][0] is None and p.suppressed_complementary >= 3  # a row and a column partner
    assert recoverable(cells, p) == [] and brute_force_unique(cells, p) == set()
    assert_truthful(cells, p)


def test_zeros_beside_a_total_are_protected():
    one_row = [[0, 0, 7]]
    p = suppress(one_row, 5)
    assert p.cells == ((None, None, None),) and p.row_totals == (7,) and p.grand_total == 7
    assert p.col_totals is None
    assert recoverable(one_row, p) == [] and brute_force_unique(one_row, p) == set()

    cells = [[0, 0, 7], [9, 8, 6], [10, 11, 12]]
    primary_only = publish(cells, [cell(0, 0), cell(0, 1)], k=5)
    assert set(recoverable(cells, primary_only)) == {cell(0, 0), cell(0, 1)}   # 0 + 0 = 7 - 7
    p = suppress(cells, 5)
    assert recoverable(cells, p) == [] and brute_force_unique(cells, p) == set()
    assert_truthful(cells, p)


def test_a_rectangle_of_zeros_does_not_hide_zeros():
    """Zeros can only grow, and a cycle of zeros has nothing to shrink."""
    cells = [[0, 0, 9], [0, 0, 9], [9, 9, 9]]
    zeros = [cell(0, 0), cell(0, 1), cell(1, 0), cell(1, 1)]
    assert recoverable(cells, publish(cells, zeros, k=1)) == zeros
    assert brute_force_unique(cells, publish(cells, zeros, k=1)) == set(zeros)
    p = suppress(cells, 1)
    assert recoverable(cells, p) == [] and brute_force_unique(cells, p) == set()


def test_two_by_two_patterns():
    cells = [[3, 10], [10, 10]]
    assert recoverable(cells, publish(cells, [cell(0, 0)])) == [cell(0, 0)]
    two = publish(cells, [cell(0, 0), cell(0, 1)])
    assert set(recoverable(cells, two)) == {cell(0, 0), cell(0, 1)}   # column totals give both
    rectangle = publish(cells, [cell(0, 0), cell(0, 1), cell(1, 0), cell(1, 1)])
    assert recoverable(cells, rectangle) == [] and brute_force_unique(cells, rectangle) == set()
    p = suppress(cells, 5)
    assert recoverable(cells, p) == [] and brute_force_unique(cells, p) == set()
    assert p.row_totals == (13, 20) and p.col_totals == (13, 20) and p.grand_total == 33

    # A rectangle is not enough when its zero cannot shrink and its partners cannot either.
    cells = [[0, 6], [6, 0]]
    rectangle = publish(cells, [cell(0, 0), cell(0, 1), cell(1, 0), cell(1, 1)], k=1)
    assert recoverable(cells, rectangle) == []   # 0 6 / 6 0 -> 1 5 / 5 1
    cells = [[0, 6], [6, 6]]
    p = suppress(cells, 1)
    assert recoverable(cells, p) == [] and brute_force_unique(cells, p) == set()


def test_suppressed_margin_cannot_be_rebuilt_from_the_other_margins():
    cells = [[1, 1, 1], [20, 20, 20], [30, 30, 30]]
    p = suppress(cells, 5)
    assert p.row_totals[0] is None
    assert recoverable(cells, p) == [] and brute_force_unique(cells, p) == set()
    assert_truthful(cells, p)


# --- shapes ----------------------------------------------------------------------------------------

def test_one_column_publishes_the_grand_total_once():
    cells = [[2], [9], [9]]
    p = suppress(cells, 5)
    assert p.row_totals is None and p.col_totals == (p.grand_total,) == (20,)
    assert p.cells == ((None,), (None,), (9,))
    assert recoverable(cells, p) == [] and brute_force_unique(cells, p) == set()


def test_one_by_one():
    assert suppress([[7]]).cells == ((7,),) and suppress([[7]]).grand_total == 7
    p = suppress([[3]])
    assert p.cells == ((None,),) and p.grand_total is None and p.row_totals is p.col_totals is None
    assert recoverable([[3]], p) == []


def test_empty_tables_publish_only_a_suppressed_grand_total():
    for cells in ([], [[], []]):
        p = suppress(cells, 5)
        assert p.row_totals is None and p.col_totals is None and p.grand_total is None
        assert (p.suppressed_primary, p.suppressed_complementary) == (1, 0)
        assert recoverable(cells, p) == [GRAND]                  # it can only be 0
        q = suppress(cells, 5, margins=False)
        assert q.suppressed_entries() == [] and recoverable(cells, q) == []


def test_without_margins_only_primary_suppression_applies():
    cells = [[0, 9, 9], [9, 1, 9], [9, 9, 9]]
    p = suppress(cells, 5, margins=False)
    assert p.row_totals is None and p.col_totals is None and p.grand_total is None
    assert p.cells == ((None, 9, 9), (9, None, 9), (9, 9, 9))
    assert (p.suppressed_primary, p.suppressed_complementary) == (2, 0)
    assert recoverable(cells, p) == []


def test_invalid_input_is_rejected():
    with pytest.raises(ValueError):
        suppress([[1, 2], [3]])
    with pytest.raises(ValueError):
        suppress([[1, -2]])
    with pytest.raises(ValueError):
        suppress([[1, 2]], 0)
    with pytest.raises(ValueError):
        publish([[1, 2]], [Entry("row_total", 0, None)])   # one row: the grand total stands for it
    p = suppress([[3, 10], [10, 10]])
    with pytest.raises(ValueError):
        recoverable([[4, 10], [10, 10]], p)                  # not the table that was published
    with pytest.raises(ValueError):
        recoverable([[3, 10, 1], [10, 10, 1]], p)


# --- the auditor against brute force ---------------------------------------------------------------

@given(tables, st.integers(1, 6), st.booleans(), st.data())
@small
def test_auditor_agrees_with_brute_force(cells, k, margins, data):
    entries = publishable_entries(len(cells), len(cells[0]), margins=margins)
    primary = [e for e in entries if true_value(cells, e) < k]
    extra = data.draw(st.lists(st.sampled_from(entries), max_size=len(entries)))
    p = publish(cells, set(primary) | set(extra), k=k, margins=margins)
    found = recoverable(cells, p)
    event("some recoverable" if found else "none recoverable" if p.suppressed_entries() else "none suppressed")
    assert set(found) == brute_force_unique(cells, p)


@given(tables, st.integers(1, 6), st.booleans())
@small
def test_after_suppression_no_suppressed_number_can_be_recovered(cells, k, margins):
    p = suppress(cells, k, margins=margins)
    event("complemented" if p.suppressed_complementary else "primary only" if p.suppressed_primary else "none")
    assert_truthful(cells, p)
    assert brute_force_unique(cells, p) == set()
    assert recoverable(cells, p) == []
    if not margins:
        assert p.suppressed_complementary == 0


# --- scale -----------------------------------------------------------------------------------------

def poisson_table(rows: int, cols: int, mean: float, seed: int) -> list[list[int]]:
    rng = random.Random(seed)

    def draw() -> int:
        limit, n, prod = math.exp(-mean), 0, rng.random()
        while prod > limit:
            n += 1
            prod *= rng.random()
        return n

    return [[draw() for _ in range(cols)] for _ in range(rows)]


@pytest.mark.parametrize("mean", [6.5, 0.3, 40.0])
def test_a_year_of_days_by_province(mean):
    """366 days x 34 provinces: completes (speed is measured elsewhere, not asserted here)."""
    cells = poisson_table(366, 34, mean, seed=7)
    p = suppress(cells, 5)
    assert_truthful(cells, p)
    assert recoverable(cells, p) == []


@pytest.mark.parametrize("seed", range(5))
def test_medium_tables_with_isolated_small_cells(seed):
    cells = poisson_table(12, 6, 14.0, seed)
    p = suppress(cells, 5)
    assert_truthful(cells, p)
    assert recoverable(cells, p) == []
