"""``inspect --html``: one self-contained page (inline CSS and SVG, no network assets) of what is trained."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from html import escape
from pathlib import Path

from lf_reasoning.atomic import write_atomic
from lf_reasoning.commands.inspect import ROLE_NAMES, Encoded, InspectReport, cut_note
from lf_reasoning.llamafactory.inspect_encode import ROLES, Cut, DroppedRecord
from lf_reasoning.paths import Target

# Trained: the role's background, bold, underlined; masked: the role's colour, faded. Readable in both schemes.
_CSS = """
:root { --bg: #fff; --fg: #1d1d1f; --muted: #6b6b70; --card: #f5f5f7; --line: #d2d2d7; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #1c1c1e; --fg: #f2f2f7; --muted: #a1a1a6; --card: #2c2c2e; --line: #48484a; }
}
body { font: 15px/1.45 system-ui, sans-serif; background: var(--bg); color: var(--fg); margin: 0 auto;
  max-width: 1200px; padding: 16px 24px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 0 0 8px; } h3 { font-size: 13px;
  margin: 0 0 6px; color: var(--muted); font-weight: 600; }
.meta, .note { color: var(--muted); font-size: 13px; }
.summary { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0; }
.box { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
.big { font-size: 24px; font-weight: 700; }
svg text { fill: var(--fg); font-size: 11px; }
table { border-collapse: collapse; font-size: 13px; } td { padding: 1px 10px 1px 0; }
.legend span.s { margin-right: 6px; }
article { border-top: 1px solid var(--line); padding: 12px 0; }
.cols { display: grid; grid-template-columns: repeat(auto-fit, minmax(380px, 1fr)); gap: 14px; }
pre { white-space: pre-wrap; word-break: break-word; font: 13px/1.5 ui-monospace, monospace; margin: 0;
  background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 8px; }
.s { border-radius: 3px; }
.t { color: #111; font-weight: 700; text-decoration: underline; text-decoration-thickness: 2px; }
.m { opacity: .55; }
.nl { opacity: .5; font-weight: 400; }
.cut { display: block; color: #fff; background: #c62828; font-weight: 700; padding: 2px 6px; margin: 4px 0;
  border-radius: 4px; }
.t.system { background: #f1c9fb; } .m.system { color: #9c27b0; }
.t.user { background: #bcd8ff; } .m.user { color: #1e6fd9; }
.t.thought { background: #a8ece8; } .m.thought { color: #00897b; }
.t.answer { background: #b9f0b1; } .m.answer { color: #2e7d32; }
.t.tool { background: #ffe69a; } .m.tool { color: #b26a00; }
.t.empty_thought { background: #ffc4c4; } .m.empty_thought { color: #d32f2f; }
.t.template { background: #dadada; } .m.template { color: var(--muted); }
"""


_GENERATOR = b"<meta name='generator' content='lf-reasoning inspect'>"


def html_target(path: Path) -> Target:
    """``--html PATH`` as a write target: an existing file is replaced only when it is a page we wrote."""
    return Target("--html", path, ours=lambda p: _GENERATOR in p.read_bytes()[:4096], foreign="is not an inspect page")


def write_html(report: InspectReport, path: Path) -> None:
    """Write the page to ``path`` atomically (temp file + rename)."""
    write_atomic(path, render_html(report).encode("utf-8"))


def render_html(report: InspectReport) -> str:
    options = report.options
    title = f"lf-reasoning inspect {report.name}"
    settings = [f"template <b>{escape(report.template)}</b>", f"cutoff_len <b>{options.cutoff_len}</b>"]
    settings += ["mask_history"] * options.mask_history + ["train_on_prompt"] * options.train_on_prompt
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>{_GENERATOR.decode()}",
        f"<title>{escape(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{escape(report.name)}</h1>",
        f"<p class='meta'>{' · '.join(settings)} · model {escape(report.model)}<br>",
        f"{escape(report.template_reason)}</p>",
        *(f"<p class='note'>warning: {escape(w)}</p>" for w in report.warnings),
    ]
    if report.summary is not None:
        parts.append(_summary_html(report))
    parts.append(_legend_html())
    columns = [(options.enable_thinking, report.records)]
    if report.other is not None:
        columns.append((options.enable_thinking is False, report.other))
        columns.sort(key=lambda c: c[0] is not True)  # enable_thinking true on the left
    for n in range(len(report.records)):
        parts.append(_record_html([(thinking, records[n]) for thinking, records in columns], report))
    parts.append("</body></html>\n")
    return "".join(parts)


def _summary_html(report: InspectReport) -> str:
    summary = report.summary
    assert summary is not None
    cutoff = report.options.cutoff_len
    share = summary.over_cutoff(cutoff)
    dropped = f"<div class='note'>+ {summary.dropped} LLaMA-Factory drops</div>" if summary.dropped else ""
    boxes = [
        f"<div class='box'><div class='big'>{len(summary.totals)}</div>records{dropped}</div>",
        f"<div class='box'><div class='big'>{share:.1%}</div>over cutoff_len {cutoff}<div class='note'>"
        f"{sum(t > cutoff for t in summary.totals)} records lose their tail</div></div>",
        f"<div class='box'><h3>tokens per record (enable_thinking "
        f"{str(report.options.enable_thinking).lower()})</h3>{_histogram(summary.totals, cutoff)}</div>",
    ]
    if summary.scores:
        boxes.append(f"<div class='box'><h3>score distribution</h3>{_score_bars(summary.scores)}</div>")
    open_word, close_word = report.thought_words
    rows = "".join(f"<tr><td>{escape(k)}</td><td>{v}</td></tr>" for k, v in sorted(summary.thoughts.items()))
    boxes.append(
        f"<div class='box'><h3>thought words in use</h3><div class='note'>template words: "
        f"<code>{escape(repr(open_word))}</code> … <code>{escape(repr(close_word))}</code></div>"
        f"<table>{rows}</table><div class='note'>responses, by thought form</div></div>"
    )
    return f"<section class='summary'>{''.join(boxes)}</section>"


def _histogram(totals: Sequence[int], cutoff: int, width: int = 360, height: int = 140, bins: int = 24) -> str:
    """An inline SVG histogram of record lengths, cutoff_len marked."""
    top = max(max(totals, default=1), cutoff)
    step = max(1, -(-top // bins))
    counts = Counter(min(t // step, bins - 1) for t in totals)
    peak = max(counts.values(), default=1)
    plot_h, bar_w = height - 30, width / bins
    bars = "".join(
        f"<rect x='{i * bar_w:.1f}' y='{plot_h - counts[i] / peak * plot_h:.1f}' width='{bar_w - 1:.1f}' "
        f"height='{counts[i] / peak * plot_h:.1f}' fill='#4c72b0'><title>{i * step}–{(i + 1) * step - 1} tokens: "
        f"{counts[i]}</title></rect>"
        for i in range(bins)
        if counts[i]
    )
    x = min(cutoff / (step * bins), 1.0) * width
    return (
        f"<svg width='{width}' height='{height}' viewBox='0 0 {width} {height}' role='img'>{bars}"
        f"<line x1='{x:.1f}' x2='{x:.1f}' y1='0' y2='{plot_h}' stroke='#c62828' stroke-width='2' "
        f"stroke-dasharray='4 3'/><text x='{min(x + 3, width - 90):.1f}' y='12'>cutoff_len {cutoff}</text>"
        f"<text x='0' y='{height - 12}'>0</text><text x='{width - 4}' y='{height - 12}' text-anchor='end'>"
        f"{step * bins} tokens</text><text x='0' y='{height - 1}'>max bar: {peak} records</text></svg>"
    )


def _score_bars(scores: Sequence[float], width: int = 260, height: int = 120) -> str:
    counts = Counter(scores)
    values = sorted(counts)
    peak = max(counts.values())
    bar_w = width / len(values)
    plot_h = height - 18
    bars = "".join(
        f"<rect x='{i * bar_w:.1f}' y='{plot_h - counts[v] / peak * plot_h:.1f}' width='{bar_w - 2:.1f}' "
        f"height='{counts[v] / peak * plot_h:.1f}' fill='#55a868'><title>score {v:g}: {counts[v]}</title></rect>"
        f"<text x='{(i + 0.5) * bar_w:.1f}' y='{height - 4}' text-anchor='middle'>{v:g}</text>"
        for i, v in enumerate(values)
    )
    return f"<svg width='{width}' height='{height}' viewBox='0 0 {width} {height}' role='img'>{bars}</svg>"


def _legend_html() -> str:
    trained = "".join(f"<span class='s t {r}'>{escape(ROLE_NAMES[r])}</span>" for r in ROLES)
    masked = "".join(f"<span class='s m {r}'>{escape(ROLE_NAMES[r])}</span>" for r in ROLES)
    return (
        "<section class='legend box'><div><b>trained</b> (loss computed; bold, underlined): "
        f"{trained}</div><div><b>masked</b> (no loss; faded): {masked}</div><div class='note'>↵ marks a newline; "
        "hover a span for its role and token count.</div></section>"
    )


def _record_html(columns: list[tuple[bool | None, Encoded]], report: InspectReport) -> str:
    index = columns[0][1].index
    cells = []
    for thinking, record in columns:
        label = f"enable_thinking: {str(thinking).lower()}" if report.reasoning else "enable_thinking has no effect"
        cells.append(f"<div><h3>{escape(label)}</h3>{_segments_html(record, report.options.cutoff_len)}</div>")
    return f"<article><h2>record {index}</h2><div class='cols'>{''.join(cells)}</div></article>"


def _segments_html(record: Encoded, cutoff_len: int) -> str:
    if isinstance(record, DroppedRecord):
        return f"<p class='note'>{escape(record.reason)}</p>"
    cuts = {cut.at: cut for cut in record.cuts}
    spans, position = [], 0
    for segment in record.segments:
        if position in cuts:
            spans.append(_cut_html(cuts[position], cutoff_len))
        kind = "t" if segment.trained else "m"
        what = f"{segment.role} · {'trained' if segment.trained else 'masked'} · {segment.tokens} tokens"
        text = escape(segment.text).replace("\n", "<span class='nl'>↵</span>\n")
        spans.append(f"<span class='s {kind} {segment.role}' title='{escape(what)}'>{text}</span>")
        position += segment.tokens
    if position in cuts:
        spans.append(_cut_html(cuts[position], cutoff_len))
    trained = sum(record.counts(True).values())
    notes = f"{record.tokens} tokens, {trained} trained"
    if record.removed_thoughts:
        notes += f"; thought removed by the template from {record.removed_thoughts} turn(s)"
    return f"<pre>{''.join(spans)}</pre><p class='note'>{escape(notes)}</p>"


def _cut_html(cut: Cut, cutoff_len: int) -> str:
    return f"<span class='cut'>{escape(cut_note(cut, cutoff_len))}</span>"
