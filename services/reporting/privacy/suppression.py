"""Small-cell suppression for published count tables, and an exact auditor for it.

A published count below k (zero included: "nobody from province X this week" discloses too) is
replaced by "suppressed". That alone protects nothing while margins are published: an attacker
subtracts a row's published cells from its published total. So more numbers are suppressed until
the auditor proves that no suppressed one is determined by what is published, for an attacker who
knows that margins are sums and that counts are non-negative integers. Heuristic checks (e.g. "at
least two suppressions per line") miss attacks through zeros, which can only grow, so the audit is
exact.

Why the auditor is exact and linear. Lay the response out as an (R+1)x(C+1) table: the column
totals are row R, the row totals column C, the grand total the corner. Every row and column of it
(a "line") says: its data entries sum to its margin entry. Each entry lies on exactly one row line
and one column line, so the entries are the edges of a bipartite graph between row lines and
column lines, and the unknown entries form a subgraph. Writing y = x for cells and the grand total
and y = -x for row and column totals turns every line into "the y of its unknown entries sum to a
published constant": the consistent tables are x plus circulations on that subgraph, i.e. sums of
even cycles carrying +1 on the way row->column and -1 on the way column->row. An integer difference
between two consistent tables decomposes conformally into such simple cycles, and since the only
bounds are x >= 0, one unit step along one of them is consistent too. Hence an entry is protected
iff a simple cycle through it can carry a unit step without driving any count negative. Orient each
unknown entry by the directions such a step may take it (an entry at zero may only grow, i.e. a
total at zero may only take y down), and the question is whether the entry's arc lies on a directed
cycle. Across two strongly connected components it cannot; inside one it can unless it is a bridge
of the component's undirected edges (a cycle needs another way around; conversely, if the component
stays connected without it, strong connectivity yields a directed path back). Tarjan's SCC and bridge
algorithms thus audit a whole table in linear time, so the suppression loop can afford to re-audit
a year of days by province (366x34).

Complementary suppression closes such a cycle at least cost: the cheapest path between the entry's
two lines through entries already unknown (free, in the directions they may move) and published
ones (at their count; any margin costs more than any set of cells, which carry less information).

Margins that are not published are unknowns of the model too ("hidden": never shown, never
protected). A line whose margin is hidden absorbs any change, as if all such lines were one free
vertex: with margins=False no cell can be inferred, and primary suppression is all there is. With a
single row the column totals would repeat the cells, and with a single column the row totals would,
so only the grand total is published as a margin.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from heapq import heappop, heappush
from typing import NamedTuple

DEFAULT_K = 5

CELL, ROW_TOTAL, COL_TOTAL, GRAND = "cell", "row_total", "col_total", "grand"


class Entry(NamedTuple):
    """One published number: a cell (row, col), a row total (row, None), a column total (None, col)
    or the grand total (None, None)."""
    kind: str
    row: int | None = None
    col: int | None = None


@dataclass(frozen=True)
class Published:
    """What may be published. None marks a suppressed number; a margin tuple is None when that
    margin is not published at all. With one row, row_totals is (grand_total,): the same number,
    counted once (as the grand total); likewise col_totals with one column, and with one row and
    one column neither tuple is published (the grand total equals the cell). With margins=False,
    and for an empty table, no margin tuple is published; grand_total is None (an empty table's 0
    is suppressed when margins=True, and not published otherwise)."""
    k: int
    margins: bool
    cells: tuple[tuple[int | None, ...], ...]
    row_totals: tuple[int | None, ...] | None
    col_totals: tuple[int | None, ...] | None
    grand_total: int | None
    suppressed_primary: int
    suppressed_complementary: int

    @property
    def n_rows(self) -> int:
        return len(self.cells)

    @property
    def n_cols(self) -> int:
        return len(self.cells[0]) if self.cells else 0

    def suppressed_entries(self) -> list[Entry]:
        return [e for e in publishable_entries(self.n_rows, self.n_cols, margins=self.margins)
                if _published_value(self, e) is None]


def publishable_entries(n_rows: int, n_cols: int, *, margins: bool = True) -> list[Entry]:
    """The numbers a response of this shape publishes (each once), in table order."""
    return [_entry(i, n_rows, n_cols) for i in _slots(n_rows, n_cols, margins)]


def suppress(cells: Sequence[Sequence[int]], k: int = DEFAULT_K, *, margins: bool = True) -> Published:
    """Primary suppression of every number below k, then complementary suppression until
    `recoverable` finds nothing. Only the cells are published when margins=False (overlapping
    categories do not sum to a total), and then primary suppression is all there is to do.

    Each round gives every recoverable entry a cycle, so a second audit normally finds nothing.
    It ends in any case: a round suppresses at least one more number, and once all are suppressed
    none is recoverable (any entry can grow by one along with its row, column and grand totals)."""
    t = _Table(cells, k, margins)
    suppressed = {i for i in t.slots if t.val[i] < k}
    if t.R and t.C:
        g = t.graph(suppressed)
        while rec := t.audit(g, suppressed):
            t.protect(rec, suppressed, g)
    return t.published(suppressed)


def publish(cells: Sequence[Sequence[int]], suppressed: Iterable[Entry], *, k: int = DEFAULT_K,
            margins: bool = True) -> Published:
    """Publish with exactly these entries suppressed, nothing more (for audits and tests)."""
    t = _Table(cells, k, margins)
    slots = set(t.slots)
    chosen = set()
    for e in suppressed:
        i = t.index(e)
        if i not in slots:
            raise ValueError(f"{e} is not published for a {t.R}x{t.C} table (margins={margins})")
        chosen.add(i)
    return t.published(chosen)


def recoverable(cells: Sequence[Sequence[int]], published: Published) -> list[Entry]:
    """The suppressed entries of `published` whose exact value follows from its published numbers.

    An empty table's suppressed grand total is reported: it can only be 0, and nothing can hide it."""
    t = _Table(cells, published.k, published.margins)
    if len(published.cells) != t.R or any(len(row) != t.C for row in published.cells):
        raise ValueError("published table has a different shape")
    try:
        suppressed = {i for i in t.slots if _published_value(published, _entry(i, t.R, t.C)) is None}
    except (IndexError, TypeError) as exc:
        raise ValueError("published margins do not fit the table") from exc
    expected = t.published(suppressed)
    if (expected.cells, expected.row_totals, expected.col_totals, expected.grand_total) != (
            tuple(map(tuple, published.cells)),
            None if published.row_totals is None else tuple(published.row_totals),
            None if published.col_totals is None else tuple(published.col_totals), published.grand_total):
        raise ValueError("the published numbers are not this table's")
    if not (t.R and t.C):
        return [_entry(i, t.R, t.C) for i in sorted(suppressed)]
    return [_entry(i, t.R, t.C) for i in t.audit(t.graph(suppressed), suppressed)]


# --- internals -------------------------------------------------------------------------------------
# Entries are numbered row-major in the augmented table: i = r*(C+1) + c, r in 0..R, c in 0..C.
# Graph vertices: row line r is r, column line c is R+1+c.


def _slots(R: int, C: int, margins: bool) -> list[int]:
    W = C + 1
    if not (R and C):
        return [R * W + C] if margins else []
    cells = [r * W + c for r in range(R) for c in range(C)]
    if not margins:
        return cells
    if R == 1 or C == 1:
        return cells + [R * W + C]
    return list(range((R + 1) * W))


def _entry(i: int, R: int, C: int) -> Entry:
    r, c = divmod(i, C + 1)
    if r < R:
        return Entry(CELL, r, c) if c < C else Entry(ROW_TOTAL, r, None)
    return Entry(COL_TOTAL, None, c) if c < C else Entry(GRAND)


def _published_value(p: Published, e: Entry) -> int | None:
    if e.kind == CELL:
        return p.cells[e.row][e.col]
    if e.kind == ROW_TOTAL:
        return p.row_totals[e.row] if p.row_totals is not None else None
    if e.kind == COL_TOTAL:
        return p.col_totals[e.col] if p.col_totals is not None else None
    return p.grand_total


class _Table:
    def __init__(self, cells: Sequence[Sequence[int]], k: int, margins: bool) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be an integer >= 1, not {k!r}")
        rows = [list(row) for row in cells]
        R, C = len(rows), len(rows[0]) if rows else 0
        for row in rows:
            if len(row) != C:
                raise ValueError("cells must be a rectangular table")
            for v in row:
                if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                    raise ValueError(f"counts must be non-negative integers, not {v!r}")
        self.k, self.margins, self.R, self.C, self.W = k, margins, R, C, C + 1
        val = []
        for row in rows:
            val.extend(row)
            val.append(sum(row))
        val.extend(sum(row[c] for row in rows) for c in range(C))
        val.append(sum(val[r * self.W + C] for r in range(R)))
        self.val = val
        self.slots = _slots(R, C, margins)
        slot = bytearray(len(val))
        for i in self.slots:
            slot[i] = 1
        self.slot = slot

    def cost(self, i: int) -> tuple[int, int, int]:
        """What suppressing an entry costs: a cell before any margin, then the smaller count."""
        r, c = divmod(i, self.W)
        return int(r == self.R or c == self.C), self.val[i], i

    @cached_property
    def totals(self) -> list[int]:
        """The row and column totals' entries (the margins but the grand total)."""
        return [*range(self.C, self.R * self.W, self.W), *range(self.R * self.W, self.R * self.W + self.C)]

    @cached_property
    def price(self) -> list[int]:
        """`cost` as one number for path lengths: a margin outweighs any set of cells."""
        margin = self.val[-1] * (self.R + self.C + 2) + 1
        price = self.val[:]
        for i in [*self.totals, len(price) - 1]:
            price[i] += margin
        return price

    @cached_property
    def up(self) -> bytearray:
        """Whether y may grow, for every entry (as in `arcs`)."""
        up = bytearray(b"\x01" * len(self.val))
        for i in self.totals:
            up[i] = self.val[i] >= 1
        return up

    @cached_property
    def down(self) -> bytearray:
        """Whether y may shrink, for every entry (as in `arcs`)."""
        down = bytearray(v >= 1 for v in self.val)
        for i in self.totals:
            down[i] = 1
        return down

    def index(self, e: Entry) -> int:
        R, C, W = self.R, self.C, self.W
        ok = {CELL: e.row is not None and e.col is not None, ROW_TOTAL: e.row is not None and e.col is None,
              COL_TOTAL: e.row is None and e.col is not None, GRAND: e.row is None and e.col is None}
        if not ok.get(e.kind) or (e.row is not None and not 0 <= e.row < R) or (
                e.col is not None and not 0 <= e.col < C):
            raise ValueError(f"no such entry: {e}")
        return (R if e.row is None else e.row) * W + (C if e.col is None else e.col)

    def published(self, suppressed: set[int]) -> Published:
        R, C, W, val = self.R, self.C, self.W, self.val
        grid: list[list[int | None]] = [val[r * W:(r + 1) * W] for r in range(R + 1)]
        for i in suppressed:
            grid[i // W][i % W] = None
        cells = tuple(tuple(row[:C]) for row in grid[:R])
        row_totals = col_totals = grand = None
        if self.margins:
            grand = grid[R][C]
            if R >= 2 and C >= 2:
                row_totals = tuple(row[C] for row in grid[:R])
                col_totals = tuple(grid[R][:C])
            elif R == 1 and C >= 2:
                row_totals = (grand,)
            elif C == 1 and R >= 2:
                col_totals = (grand,)
        primary = sum(1 for i in suppressed if val[i] < self.k)
        return Published(k=self.k, margins=self.margins, cells=cells, row_totals=row_totals,
                         col_totals=col_totals, grand_total=grand, suppressed_primary=primary,
                         suppressed_complementary=len(suppressed) - primary)

    # The residual graph: unknown entry i joins u = row line and v = column line, with the arc u->v
    # when y_i may grow by one (x grows for cells and the grand total, shrinks for totals) and v->u
    # when it may shrink.

    def arcs(self, i: int) -> tuple[int, int, bool, bool]:
        r, c = divmod(i, self.W)
        positive = (r < self.R) == (c < self.C)        # a cell or the grand total
        movable = self.val[i] >= 1
        return r, self.R + 1 + c, positive or movable, movable or not positive

    def graph(self, suppressed: set[int]) -> _Graph:
        g = _Graph(self.R + self.C + 2)
        for i in suppressed:
            g.add(i, *self.arcs(i))
        for i in range(len(self.val)):
            if not self.slot[i]:
                g.add(i, *self.arcs(i))
        return g

    def audit(self, g: _Graph, suppressed: set[int]) -> list[int]:
        comp = g.scc()
        inside = [(u, v, i) for i, (u, v) in g.ends.items() if comp[u] == comp[v]]
        bridges = _bridges(g.n, inside)
        return sorted(i for i in suppressed if comp[g.ends[i][0]] != comp[g.ends[i][1]] or i in bridges)

    def protect(self, rec: list[int], suppressed: set[int], g: _Graph) -> None:
        """Give every recoverable entry a feasible cycle: the cheapest path between its ends through
        entries already unknown (free, in the directions they may move) and published ones (at their
        cost, either direction: they are >= k >= 1), closed by the entry itself. Suppressing the
        path's published entries protects them too, as they lie on the same cycle."""
        unknown = bytearray(len(self.val))
        for i in g.ends:
            unknown[i] = 1
        for e in sorted(rec, key=self.cost):
            u, v, up, down = self.arcs(e)
            ends = [(head, tail) for ok, head, tail in ((up, v, u), (down, u, v)) if ok]
            if any(g.reach(head, e, g.out)[tail] for head, tail in ends):
                continue                                # protected by an earlier pick of this round
            paths = [p for head, tail in ends if (p := self.cheapest_path(head, tail, e, unknown))]
            if not paths:
                raise RuntimeError("no cycle can protect an entry")  # impossible: see suppress()
            for i in min(paths)[1]:
                suppressed.add(i)
                unknown[i] = 1
                g.add(i, *self.arcs(i))

    def cheapest_path(self, head: int, tail: int, skip: int, unknown: bytearray) -> tuple[int, list[int]] | None:
        """Dijkstra over the complete bipartite graph of lines (every entry joins its two lines)."""
        R, C, W = self.R, self.C, self.W
        n = R + C + 2
        up, down, price = self.up, self.down, self.price
        inf = float("inf")
        dist: list[float] = [inf] * n
        via = [-1] * n
        dist[head] = 0
        heap = [(0, head)]
        while heap:
            d, a = heappop(heap)
            if d > dist[a]:
                continue
            if a == tail:
                break
            if a <= R:                                  # a row line: its entries a*W .. a*W+C
                first = a * W
                for i in range(first, first + W):
                    if unknown[i]:
                        if not up[i] or i == skip:
                            continue
                        nd = d
                    else:
                        nd = d + price[i]
                    b = R + 1 + i - first
                    if nd < dist[b]:
                        dist[b] = nd
                        via[b] = i
                        heappush(heap, (nd, b))
            else:                                       # a column line: every W-th entry from its column
                for b, i in enumerate(range(a - R - 1, (R + 1) * W, W)):
                    if unknown[i]:
                        if not down[i] or i == skip:
                            continue
                        nd = d
                    else:
                        nd = d + price[i]
                    if nd < dist[b]:
                        dist[b] = nd
                        via[b] = i
                        heappush(heap, (nd, b))
        if dist[tail] == inf:
            return None
        picked, b = [], tail
        while b != head:
            i = via[b]
            if not unknown[i]:
                picked.append(i)
            r, c = divmod(i, W)
            b = R + 1 + c if b == r else r
        return int(dist[tail]), picked


class _Graph:
    def __init__(self, n: int) -> None:
        self.n = n
        self.out: list[list[tuple[int, int]]] = [[] for _ in range(n)]
        self.inn: list[list[tuple[int, int]]] = [[] for _ in range(n)]
        self.ends: dict[int, tuple[int, int]] = {}

    def add(self, i: int, u: int, v: int, up: bool, down: bool) -> None:
        self.ends[i] = (u, v)
        if up:
            self.out[u].append((v, i))
            self.inn[v].append((u, i))
        if down:
            self.out[v].append((u, i))
            self.inn[u].append((v, i))

    def reach(self, start: int, skip: int, adj: list[list[tuple[int, int]]]) -> bytearray:
        seen = bytearray(self.n)
        seen[start] = 1
        stack = [start]
        while stack:
            for w, i in adj[stack.pop()]:
                if not seen[w] and i != skip:
                    seen[w] = 1
                    stack.append(w)
        return seen

    def scc(self) -> list[int]:
        """Tarjan's strongly connected components, iteratively."""
        n, out = self.n, self.out
        index, low, comp = [-1] * n, [0] * n, [-1] * n
        on_stack = bytearray(n)
        stack: list[int] = []
        counter = ncomp = 0
        for s in range(n):
            if index[s] != -1:
                continue
            index[s] = low[s] = counter
            counter += 1
            stack.append(s)
            on_stack[s] = 1
            work = [(s, 0)]
            while work:
                v, j = work[-1]
                if j < len(out[v]):
                    work[-1] = (v, j + 1)
                    w = out[v][j][0]
                    if index[w] == -1:
                        index[w] = low[w] = counter
                        counter += 1
                        stack.append(w)
                        on_stack[w] = 1
                        work.append((w, 0))
                    elif on_stack[w] and index[w] < low[v]:
                        low[v] = index[w]
                    continue
                work.pop()
                if work:
                    p = work[-1][0]
                    if low[v] < low[p]:
                        low[p] = low[v]
                if low[v] == index[v]:
                    while True:
                        w = stack.pop()
                        on_stack[w] = 0
                        comp[w] = ncomp
                        if w == v:
                            break
                    ncomp += 1
        return comp


def _bridges(n: int, edges: list[tuple[int, int, int]]) -> set[int]:
    """Bridges of an undirected multigraph given as (u, v, edge id), iteratively."""
    adj: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    for u, v, i in edges:
        adj[u].append((v, i))
        adj[v].append((u, i))
    disc, low = [-1] * n, [0] * n
    t = 0
    bridges: set[int] = set()
    for s in range(n):
        if disc[s] != -1 or not adj[s]:
            continue
        disc[s] = low[s] = t
        t += 1
        work = [(s, -1, 0)]
        while work:
            v, via, j = work[-1]
            if j < len(adj[v]):
                work[-1] = (v, via, j + 1)
                w, i = adj[v][j]
                if i == via:
                    continue
                if disc[w] == -1:
                    disc[w] = low[w] = t
                    t += 1
                    work.append((w, i, 0))
                elif disc[w] < low[v]:
                    low[v] = disc[w]
                continue
            work.pop()
            if work:
                p = work[-1][0]
                if low[v] < low[p]:
                    low[p] = low[v]
                if low[v] > disc[p]:
                    bridges.add(via)
    return bridges
