"""The report of ``lf-reasoning stats``: token lengths as a table, JSON or a histogram.

The lengths are measured by :mod:`lf_reasoning.llamafactory.lengths`, exactly as LLaMA-Factory's template and
``cutoff_len`` see them; ``cutoff_len`` truncates silently, so the point is to pick one that drops nothing you need.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lf_reasoning.llamafactory.lengths import LengthStats, Part, suggest_cutoff_len
from lf_reasoning.plot import new_figure, save_png

PARTS: tuple[Part, ...] = ("prompt", "thought", "answer", "total")
PERCENTILES = (50.0, 90.0, 95.0, 99.0)
CUTOFFS = (1024, 2048, 4096, 8192)
TRUNCATION_NOTE = (
    "LLaMA-Factory truncates longer records silently, from the tail: the end of the response (the "
    "answer and EOS) is cut,\nso the model trains on thoughts that never reach an answer; later turns "
    "are dropped.\nDrop long records instead: lf-reasoning convert … --max-tokens N."
)


def format_stats(stats: LengthStats, cutoff_len: int) -> str:
    """A percentile table per part, the share each cutoff_len truncates, and a suggested cutoff_len."""
    head = ["tokens", *(f"p{p:g}" for p in PERCENTILES), "max", "mean"]
    rows = [head]
    for part in PARTS:
        values = [stats.percentile(p, part) for p in (*PERCENTILES, 100.0)]
        rows.append([part, *map(str, values), f"{stats.mean(part):.1f}"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    table = [
        "  ".join([row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))])
        for row in rows
    ]
    dropped = f" ({stats.dropped} more that LLaMA-Factory drops)" if stats.dropped else ""
    lines = [
        f"{stats.n} records{dropped}",
        *table,
        "prompt is masked (system, user turns, template); thought + answer are trained (answer includes the "
        "thought words and end-of-turn)",
        "",
        "cutoff_len  truncated records",
    ]
    for cut in sorted({*CUTOFFS, cutoff_len}):
        share = stats.truncated_share(cut)
        mark = "  <- --cutoff-len" if cut == cutoff_len else ""
        lines.append(f"{cut:>10}  {round(share * stats.n):>9} ({share:.1%}){mark}")
    lines += [TRUNCATION_NOTE, f"suggested cutoff_len (covers p99, multiple of 256): {suggest_cutoff_len(stats)}"]
    return "\n".join(lines)


def stats_json(stats: LengthStats, cutoff_len: int) -> dict[str, Any]:
    """The numbers of :func:`format_stats` as a JSON-ready dict."""
    return {
        "records": stats.n,
        "dropped": stats.dropped,
        "parts": {
            part: {
                **{f"p{p:g}": stats.percentile(p, part) for p in PERCENTILES},
                "max": stats.percentile(100.0, part),
                "mean": round(stats.mean(part), 2),
            }
            for part in PARTS
        },
        "truncated_share": {str(cut): stats.truncated_share(cut) for cut in sorted({*CUTOFFS, cutoff_len})},
        "cutoff_len": cutoff_len,
        "suggested_cutoff_len": suggest_cutoff_len(stats),
    }


def plot_lengths(stats: LengthStats, path: Path, cutoff_len: int, title: str) -> None:
    """Write a histogram PNG of total lengths with ``cutoff_len`` marked (matplotlib's Agg canvas, no pyplot)."""
    fig = new_figure(8, 4.5)
    ax = fig.subplots()
    ax.hist(stats.total, bins=min(100, max(10, stats.n // 20)), color="#4c72b0")
    share = stats.truncated_share(cutoff_len)
    ax.axvline(cutoff_len, color="#c44e52", linestyle="--", label=f"cutoff_len {cutoff_len}: {share:.1%} truncated")
    ax.set(title=title, xlabel="tokens per record (LLaMA-Factory total)", ylabel="records")
    ax.legend()
    save_png(fig, path)
