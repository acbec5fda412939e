"""Collect benchmark figures and render them as one markdown table."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess

from bench.libs import versions

MiB = 1 << 20


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _rclone_version() -> str:
    try:
        from tests.servers import find_rclone

        binary = find_rclone()
        if binary:
            out = subprocess.run([binary, "version"], capture_output=True, text=True, timeout=10).stdout
            return out.splitlines()[0].strip() if out else "unknown"
    except Exception:
        pass
    return "unknown"


class Report:
    """Rows keyed by (scenario, op, threads); one cell per library: a number or an error."""

    def __init__(self, libs: list[str], quick: bool, runs: int, sizes: dict) -> None:
        self.libs = libs
        self.quick = quick
        self.runs = runs
        self.sizes = sizes
        self.titles: dict[str, tuple[str, str]] = {}
        self.rows: dict[tuple[str, str, int], dict[str, float | str]] = {}
        self.notes: list[str] = []
        #: Rows whose unit is not their scenario's (e.g. a latency row among rates).
        self.units: dict[tuple[str, str, int], str] = {}

    def describe(self, scen: str, title: str, unit: str) -> None:
        self.titles[scen] = (title, unit)

    def _row(self, scen: str, op: str, threads: int) -> dict[str, float | str]:
        return self.rows.setdefault((scen, op, threads), {})

    def value(self, scen: str, op: str, threads: int, lib: str, value: float | str) -> None:
        """Record a figure (or a text cell such as a request breakdown, shown as is, no ratio)."""
        self._row(scen, op, threads)[lib] = value

    def error(self, scen: str, op: str, threads: int, lib: str, exc: BaseException | str) -> None:
        reason = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        reason = " ".join(str(reason).split())[:240]
        note = f"{lib}: {reason}"
        if note not in self.notes:
            self.notes.append(note)
        self._row(scen, op, threads)[lib] = f"err[^{self.notes.index(note) + 1}]"

    def unit(self, scen: str, op: str, threads: int, unit: str) -> None:
        """Give one row its own unit (with its arrow: ``"s ↓"``), not the scenario's."""
        self.units[(scen, op, threads)] = unit

    @staticmethod
    def _fmt(value: float | str | None) -> str:
        if value is None:
            return "-"
        if isinstance(value, str):
            return value
        return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"

    def markdown(self, elapsed: float) -> str:
        # Tools that posted figures without being in --libs (S8's rclone) get columns too.
        libs = list(dict.fromkeys([*self.libs, *(lib for cells in self.rows.values() for lib in cells)]))
        # Only libraries with at least one cell (a run of only some scenarios has no empty columns).
        libs = [lib for lib in libs if any(lib in cells for cells in self.rows.values())] or libs
        peers = [lib for lib in libs if lib != "manystore"]
        show_ratio = "manystore" in libs
        header = ["Scenario", "Op", "Threads", "Unit", *libs]
        if show_ratio:
            header += [f"ms÷{p}" for p in peers]
        lines = [
            f"# manystore benchmark ({'quick' if self.quick else 'full'})",
            "",
            f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
            f"- machine: {os.cpu_count()} cores, {_cpu_model()}, {platform.platform()}",
            f"- Python {platform.python_version()} ({platform.python_implementation()})",
            "- versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()),
            f"- server: `{_rclone_version()}` (`rclone serve s3` on 127.0.0.1, same process for all)",
            f"- every figure is the median of {self.runs} runs; total wall time {elapsed:,.0f} s",
            "- ratio columns are manystore ÷ peer: > 1 means manystore is faster for rates "
            "(↑ units), < 1 means manystore uses less (memory, seconds, requests) for ↓ units",
            "- RSS: peak RSS of a fresh process minus its peak right before the timed runs "
            "(after imports, client creation and, for PUT, allocating the payload)",
            "",
        ]
        for scen, (title, _unit) in self.titles.items():
            lines.append(f"- **{scen}**: {title}")
        lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for (scen, op, threads), cells in self.rows.items():
            rss = op.endswith(" RSS")
            unit = "MiB ↓" if rss else self.titles.get(scen, ("", "?"))[1] + " ↑"
            unit = self.units.get((scen, op, threads), unit)
            row = [scen, op, str(threads), unit, *(self._fmt(cells.get(lib)) for lib in libs)]
            if show_ratio:
                ms = cells.get("manystore")
                for peer in peers:
                    other = cells.get(peer)
                    if isinstance(ms, float) and isinstance(other, float) and other > 0:
                        row.append(f"{ms / other:.2f}")
                    else:
                        row.append("-")
            lines.append("| " + " | ".join(row) + " |")
        if self.notes:
            lines.append("")
            lines += [f"[^{i}]: {note}" for i, note in enumerate(self.notes, 1)]
        return "\n".join(lines) + "\n"
