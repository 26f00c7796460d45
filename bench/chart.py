"""The chart of a `python -m bench` run: latency and achieved rate against the offered rate, one PNG.

    python -m bench chart bench/results/<UTC>.json [--out docs/performance.png]

Left: POST /cases and report -> first agency message, p50 and p99, on a log scale, with the bounds of
the sustainable-rate rule. A hollow marker is a lower bound: some reports of that stage never reached an
agency before the drain timeout, so the true percentile is higher. Right: the rates achieved (intake's
answers, first agency messages) against the offered rate, with the 1:1 line and the rule's minimum share;
the maximum sustainable rate is the dotted vertical line on both. matplotlib's Agg backend: no display.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend is chosen first
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter  # noqa: E402


PLAIN = FuncFormatter(lambda value, _pos: f"{value:g}")  # 20, 137.5, 5000: no 2x10^1 on a log axis


def _series(stages: list[dict], key: str, pct: str) -> tuple[list[float], list[float | None], list[bool]]:
    rates = [s["rate_per_s"] for s in stages]
    values = [(s.get(key) or {}).get(f"{pct}_ms") for s in stages]
    censored = [bool(s.get("missing")) and key == "first_message_latency" for s in stages]
    return rates, values, censored


def title_of(r: dict) -> str:
    m = r.get("machine") or {}
    stages = r.get("stages") or []
    seconds = sorted({s["duration_s"] for s in stages})
    when = (r.get("started_at") or "")[:16].replace("T", " ")
    note = f"\n{r['chart_note']}" if r.get("chart_note") else ""
    return (f"python -m bench, {when} UTC: {m.get('cores', '?')} cores, {m.get('memory_gb', '?')} GB, "
            f"stages of {'/'.join(f'{x:g}' for x in seconds)} s{note}")


def write(r: dict, path: Path) -> Path:
    """Draw the stages of results `r` to `path` (PNG) and return it."""
    stages = sorted(r.get("stages") or [], key=lambda s: s["rate_per_s"])
    if not stages:
        raise ValueError("no open-loop stage to draw")
    bounds = (r.get("sustainable") or {}).get("bounds") or {}
    best = (r.get("sustainable") or {}).get("rate_per_s")
    fig, (lat, thr) = plt.subplots(1, 2, figsize=(12, 6), dpi=110)
    rates = [s["rate_per_s"] for s in stages]

    for key, label, colour in (("http_latency", "POST /cases (intake)", "tab:blue"),
                               ("first_message_latency", "report -> first agency message", "tab:red")):
        for pct, style in (("p50", "--"), ("p99", "-")):
            xs, ys, censored = _series(stages, key, pct)
            pts = [(x, y, c) for x, y, c in zip(xs, ys, censored) if y is not None]
            lat.plot([x for x, _, _ in pts], [y for _, y, _ in pts], style, color=colour, label=f"{label} {pct}")
            for x, y, c in pts:
                lat.plot([x], [y], "o", color=colour, markerfacecolor="white" if c else colour)
    for bound, label, colour in ((bounds.get("intake_p99_ms"), "intake p99 bound", "tab:blue"),
                                 (bounds.get("message_p99_ms"), "message p99 bound", "tab:red")):
        if bound:
            lat.axhline(bound, color=colour, linestyle=":", linewidth=1)
            lat.annotate(f"{label} {bound:g} ms", (rates[-1], bound), textcoords="offset points", xytext=(-2, 3),
                         fontsize=8, color=colour, ha="right")
    lat.set_yscale("log")
    lat.set_ylabel("latency, ms (log; hollow: lower bound, reports missing)")
    lat.set_title("Latency from the scheduled send")

    thr.plot(rates, rates, ":", color="grey", label="offered (1:1)")
    if share := bounds.get("min_achieved"):
        thr.plot(rates, [share * x for x in rates], ":", color="black", linewidth=0.8,
                 label=f"{100 * share:g} % of offered")
    for key, label, colour in (("intake_achieved_per_s", "intake answered", "tab:blue"),
                               ("delivered_achieved_per_s", "first agency messages", "tab:red")):
        pts = [(s["rate_per_s"], s.get(key)) for s in stages if s.get(key) is not None]
        thr.plot([x for x, _ in pts], [y for _, y in pts], "o-", color=colour, label=label)
    thr.set_yscale("log")
    thr.set_ylabel("achieved, per second (log)")
    thr.set_title("Rate achieved")

    for ax in (lat, thr):
        ax.set_xscale("log")
        # The ladder's rates are labelled; a search stage's rate, often close to one of them, only ticked.
        ladder = sorted({s["rate_per_s"] for s in stages if not s.get("search")}) or rates
        ax.xaxis.set_major_locator(FixedLocator(ladder))
        ax.xaxis.set_minor_locator(FixedLocator(sorted(set(rates) - set(ladder))))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.xaxis.set_major_formatter(PLAIN)
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))  # 10, 20, 50, 100, ...
        ax.yaxis.set_major_formatter(PLAIN)
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("offered reports per second (open loop)")
        ax.grid(True, which="both", alpha=0.3)
        if best is not None:
            ax.axvline(best, color="green", linestyle=":", label=f"max sustainable {best:g}/s")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, frameon=False)
    fig.suptitle(title_of(r), fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench chart", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", type=Path, help="a bench/results/<UTC>.json of `python -m bench`")
    p.add_argument("--out", type=Path, help="the PNG to write (default: beside the JSON)")
    p.add_argument("--note", help="a second title line, e.g. 'short run, machine shared'")
    args = p.parse_args(argv)
    r = json.loads(args.results.read_text())
    if args.note:
        r["chart_note"] = args.note
    print(write(r, args.out or args.results.with_suffix(".png")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
