"""The benchmark report: every benchmark's figure against its in-run baseline, gathered into
one Markdown file (`var/bench.md`, or `KVCONSOLE_BENCH_REPORT`) when the run ends.

A benchmark records its figure before it asserts its target, so a missed target is in the
report too, marked as missed.
"""

import os
import platform
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import cryptography
import pytest
from cryptography.hazmat.backends.openssl.backend import backend as openssl

from tests.processes import ROOT


@dataclass(frozen=True)
class Figure:
    benchmark: str
    measured: str
    baseline: str
    ratio: float
    target: str
    met: bool


@dataclass
class BenchReport:
    figures: list[Figure] = field(default_factory=list)
    sections: list[tuple[str, str]] = field(default_factory=list)

    def ratio(
        self, benchmark: str, *, measured: str, baseline: str, ratio: float, target: str, met: bool
    ) -> None:
        """One benchmark's figure: what was measured, against what, and its target."""
        self.figures.append(Figure(benchmark, measured, baseline, ratio, target, met))

    def section(self, title: str, markdown: str) -> None:
        """Figures that are a table of their own (a curve, a comparison)."""
        self.sections.append((title, markdown))

    def markdown(self) -> str:
        lines = [
            "# kvconsole benchmarks",
            "",
            f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}, cryptography {cryptography.__version__} "
            f"({openssl.openssl_version_text()}).",
            "",
            "| benchmark | measured | baseline (same run) | ratio | target | met |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {f.benchmark} | {f.measured} | {f.baseline} | {f.ratio:.2f} | {f.target} | "
            f"{'yes' if f.met else '**no**'} |"
            for f in self.figures
        ]
        for title, markdown in self.sections:
            lines += ["", f"## {title}", "", markdown.rstrip()]
        return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def bench_report() -> Iterator[BenchReport]:
    report = BenchReport()
    yield report
    if report.figures or report.sections:
        path = Path(os.environ.get("KVCONSOLE_BENCH_REPORT", ROOT / "var" / "bench.md"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(report.markdown())
        print(f"\nbenchmark report written to {path}")
