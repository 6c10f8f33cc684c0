"""The figures every benchmark returns, their JSON form, and the report ``python -m bench`` writes.

A benchmark module (``bench.ingest``, ``bench.labels``…) has ``main(argv)`` accepting ``--quick``
and ``--json PATH``. With ``--json`` it writes the figures it measured to PATH as a JSON array of
objects with the fields of :class:`Figure` (``write_json``), also when it fails part-way (then with
the figures measured so far, and a non-zero exit status). ``python -m bench`` runs each module in
its own process and turns their figures into ``report.md`` (a table per benchmark) and
``report.png`` (the ratio of each figure to its baseline, on a log scale).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import signal
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

STATUS_OK, STATUS_FAILED, STATUS_MISSING = "ok", "failed", "missing"


@dataclass
class Figure:
    """One measured figure, with the baseline measured in the same run (when there is one)."""

    bench: str  # the group it is reported under ("ingest", "end-to-end", "labels"…)
    name: str
    value: float
    unit: str  # "/s", "ms", "s", "MiB", "" (a count or a ratio)
    baseline: float | None = None  # in the same unit as value
    baseline_name: str | None = None
    goal: str | None = None  # as text: "ratio >= 0.8", "< 200 ms"
    met: bool | None = None  # None: no goal, or not decidable

    @property
    def ratio(self) -> float | None:
        """value / baseline; None without a (non-zero, finite) baseline."""
        if not _finite(self.baseline) or self.baseline == 0 or not _finite(self.value):
            return None
        return self.value / self.baseline

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("value", "baseline"):  # JSON has no NaN: not measurable is null
            if data[key] is not None and not _finite(data[key]):
                data[key] = None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Figure:
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        if values.get("value") is None:
            values["value"] = math.nan
        values["value"] = float(values["value"])
        if values.get("baseline") is not None:
            values["baseline"] = float(values["baseline"])
        if values.get("met") is not None:
            values["met"] = bool(values["met"])
        return cls(**values)


def _finite(number: float | None) -> bool:
    return number is not None and math.isfinite(number)


# --- the --json convention of every benchmark module ---------------------------------------------


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        metavar="PATH",
        type=Path,
        help="also write the figures to PATH as JSON (a list of objects, the fields of bench.report.Figure)",
    )


def bench_args(
    module: str, description: str, quick_help: str, argv: Sequence[str] | None
) -> argparse.Namespace:
    """The options every benchmark takes: ``--quick`` (its small sizes) and ``--json PATH``."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    add_json_argument(parser)
    return parser.parse_args(argv)


def write_json(path: Path | str, figures: Iterable[Figure]) -> None:
    """The figures as a JSON array, written to a temporary file and renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps([figure.to_dict() for figure in figures], indent=2) + "\n")
    temporary.replace(path)


def read_json(path: Path | str) -> list[Figure]:
    data = json.loads(Path(path).read_text())
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON array of figures")
    return [Figure.from_dict(item) for item in data]


def print_figures(figures: Sequence[Figure]) -> None:
    """The figures as the report shows them, one a line (the end of a benchmark's output)."""
    print("\nFigures:")
    for figure in figures:
        line = f"  [{figure.bench}] {figure.name}: {format_value(figure.value, figure.unit)}"
        if figure.ratio is not None:
            line += f"; baseline {format_value(figure.baseline, figure.unit)} ({figure.baseline_name})"
            line += f"; ratio {format_ratio(figure.ratio)}"
        if figure.goal:
            line += f"; goal {figure.goal}: {_met_plain(figure.met)}"
        print(line)


# --- formatting ----------------------------------------------------------------------------------


def format_number(number: float | None) -> str:
    if number is None or not _finite(number):
        return "n/a"
    size = abs(number)
    if size >= 1000:
        return f"{number:,.0f}"
    if size >= 100:
        return f"{number:.0f}"
    if size >= 10:
        return f"{number:.1f}"
    if size >= 1 or size == 0:
        return f"{number:.2f}"
    return f"{number:.3g}"


def format_value(number: float | None, unit: str) -> str:
    text = format_number(number)
    if text == "n/a" or not unit:
        return text
    return f"{text}{unit}" if unit.startswith("/") else f"{text} {unit}"


def format_ratio(ratio: float | None) -> str:
    if ratio is None:
        return ""
    return f"{ratio:.3g}x" if ratio < 100 else f"{ratio:,.0f}x"


def _met_plain(met: bool | None) -> str:
    return {True: "met", False: "NOT met", None: "undecided"}[met]


def _met_text(met: bool | None) -> str:
    return {True: "met", False: "**not met**", None: ""}[met]


# --- the report ----------------------------------------------------------------------------------


@dataclass
class BenchRun:
    """One benchmark module's run under ``python -m bench``."""

    module: str
    status: str  # STATUS_OK, STATUS_FAILED or STATUS_MISSING
    figures: list[Figure] = field(default_factory=list)
    seconds: float | None = None
    exit_code: int | None = None
    error: str | None = None  # why it failed: the tail of its output
    log: str | None = None  # its whole output, a file next to the report
    load: tuple[float, float] | None = None  # 1-minute load average at its start and end


def write_report(runs: Sequence[BenchRun], out: Path, context: dict[str, str]) -> tuple[Path, Path]:
    """``out/report.md`` and ``out/report.png``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    markdown, chart = out / "report.md", out / "report.png"
    write_chart(runs, chart, context)
    markdown.write_text(render_markdown(runs, context, chart.name))
    return markdown, chart


def render_markdown(runs: Sequence[BenchRun], context: dict[str, str], chart: str | None) -> str:
    lines = ["# Benchmark report", ""]
    lines += [f"- {key}: {value}" for key, value in context.items()]
    lines += [
        "",
        "Each figure is measured against real PostgreSQL and a private redis-server, with its "
        "baseline measured in the same run; ratio = value / baseline. The machine is shared: "
        "compare ratios, not absolute figures. Nothing here is asserted.",
        "",
        "## Runs",
        "",
        "| benchmark | status | wall time | load average (start → end) | figures | output |",
        "|---|---|---|---|---|---|",
    ]
    for run in runs:
        seconds = f"{run.seconds:.0f} s" if run.seconds is not None else ""
        load = f"{run.load[0]:.2f} → {run.load[1]:.2f}" if run.load else ""
        status = run.status if run.status == STATUS_OK else f"**{run.status}**"
        if run.exit_code not in (None, 0):
            status += f" (exit {run.exit_code})"
        log = f"[{Path(run.log).name}]({Path(run.log).name})" if run.log else ""
        lines.append(f"| {run.module} | {status} | {seconds} | {load} | {len(run.figures)} | {log} |")
    if chart:
        lines += ["", f"![ratio of each figure to its baseline]({chart})"]
    for group, figures in group_figures(runs).items():
        lines += ["", f"## {group}", "", "| figure | value | baseline | ratio | goal | met |"]
        lines.append("|---|---|---|---|---|---|")
        for figure in figures:
            baseline = ""
            if figure.baseline is not None:
                baseline = format_value(figure.baseline, figure.unit)
                if figure.baseline_name:
                    baseline += f" ({_cell(figure.baseline_name)})"
            lines.append(
                f"| {_cell(figure.name)} | {format_value(figure.value, figure.unit)} | {baseline} | "
                f"{format_ratio(figure.ratio)} | {_cell(figure.goal or '')} | {_met_text(figure.met)} |"
            )
    problems = [run for run in runs if run.status != STATUS_OK]
    if problems:
        lines += ["", "## Failed and missing", ""]
        for run in problems:
            lines.append(f"### {run.module}: {run.status}")
            lines.append("")
            if run.error:
                lines += ["```", run.error.rstrip(), "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def group_figures(runs: Sequence[BenchRun]) -> dict[str, list[Figure]]:
    """Figures by their ``bench`` group, groups in the order they first appear."""
    groups: dict[str, list[Figure]] = {}
    for run in runs:
        for figure in run.figures:
            groups.setdefault(figure.bench, []).append(figure)
    return groups


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# --- the chart -----------------------------------------------------------------------------------

_COLOURS = {True: "#2e9e4f", False: "#d64541", None: "#5b7fa8"}


def write_chart(runs: Sequence[BenchRun], path: Path, context: dict[str, str]) -> None:
    """One horizontal bar per figure with a baseline, from 1 to its ratio on a log scale, grouped
    by benchmark; green when its goal is met, red when not, blue without a goal. The ratio and
    both values are written right of the plot; figures without a baseline are only in report.md."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    from matplotlib.transforms import blended_transform_factory

    rows: list[tuple[str, Figure | None]] = []  # (label, figure); None: a group heading
    for group, figures in group_figures(runs).items():
        charted = [figure for figure in figures if figure.ratio is not None and figure.ratio > 0]
        if charted:
            rows.append((group, None))
            rows += [(figure.name, figure) for figure in charted]
    not_ok = [f"{run.module}: {run.status}" for run in runs if run.status != STATUS_OK]

    height = 1.3 + 0.3 * max(len(rows), 3)
    figure_, axes = plt.subplots(figsize=(12, height), dpi=110)
    if not rows:
        axes.text(0.5, 0.5, "no figure with a baseline", ha="center", va="center", transform=axes.transAxes)
        axes.set_axis_off()
    else:
        ratios = [row.ratio for _, row in rows if row is not None and row.ratio is not None]
        axes.set_xscale("log")
        axes.set_xlim(min([*ratios, 0.5]) / 1.6, max([*ratios, 2.0]) * 1.6)
        outside = blended_transform_factory(axes.transAxes, axes.transData)
        positions = list(range(len(rows)))[::-1]
        labels = []
        for y, (label, row) in zip(positions, rows, strict=True):
            if row is None:
                labels.append(label.upper())
                axes.axhspan(y - 0.5, y + 0.5, color="#ececec", zorder=0)
                continue
            labels.append(_shorten(label, 72))
            ratio = row.ratio or 1.0
            axes.barh(y, ratio - 1.0, left=1.0, height=0.6, color=_COLOURS[row.met], zorder=2)
            axes.plot(ratio, y, marker="D", markersize=4, color=_COLOURS[row.met], zorder=4)  # shows near 1x
            text = (
                f"{format_ratio(ratio):>7}  {format_value(row.value, row.unit)} vs "
                f"{format_value(row.baseline, row.unit)}"
            )
            axes.text(
                1.01, y, text, va="center", ha="left", fontsize=8, family="monospace", transform=outside
            )
        axes.set_yticks(positions, labels, fontsize=8)
        for tick, (_, row) in zip(axes.get_yticklabels(), rows, strict=True):
            if row is None:
                tick.set_fontweight("bold")
        axes.set_ylim(-0.6, len(rows) - 0.4)
        axes.axvline(1.0, color="black", linewidth=1.0, zorder=3)
        axes.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}x"))
        axes.xaxis.set_minor_formatter(NullFormatter())
        axes.tick_params(axis="x", labelsize=8)
        axes.grid(axis="x", which="major", color="#cccccc", linewidth=0.6, zorder=1)
        axes.set_xlabel("ratio = value / baseline measured in the same run (log scale; 1x = the baseline)")
        axes.legend(
            handles=[
                Patch(color=_COLOURS[True], label="goal met"),
                Patch(color=_COLOURS[False], label="goal not met"),
                Patch(color=_COLOURS[None], label="no goal"),
            ],
            loc="lower right",
            bbox_to_anchor=(1.0, 1.0),
            ncol=3,
            fontsize=8,
            frameon=False,
        )
    title = "Benchmarks: each figure against its baseline"
    details = ", ".join(value for key, value in context.items() if key in ("mode", "finished"))
    axes.set_title(f"{title}\n{details}" if details else title, fontsize=10, loc="left")
    if not_ok:
        axes.annotate(
            "Not measured in full: " + "; ".join(not_ok),
            xy=(0, 0),
            xycoords="figure fraction",
            xytext=(6, 4),
            textcoords="offset points",
            fontsize=8,
            color=_COLOURS[False],
        )
    figure_.savefig(path, bbox_inches="tight", pad_inches=0.25)
    plt.close(figure_)


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# --- a benchmark module's main ------------------------------------------------------------------


def bench_main(measure: Callable[[bool, list[Figure]], object], args: argparse.Namespace) -> None:
    """What every benchmark's ``main`` does with its parsed ``--quick`` and ``--json``: print each
    line as soon as it is written, turn SIGTERM into an exit (so every clean-up runs), measure,
    print the figures, and write them to ``--json`` (also those measured before a failure)."""
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # each figure shows as soon as it is measured
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the clean-up runs
    figures: list[Figure] = []
    try:
        measure(args.quick, figures)
    finally:
        if args.json is not None:
            write_json(args.json, figures)
    print_figures(figures)
