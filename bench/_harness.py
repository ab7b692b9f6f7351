"""Timing helpers: interleaved repetitions, summaries, ratios, and a plain table."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

__all__ = ["Summary", "interleave", "interleave_async", "paired_delta", "print_table", "ratio"]


@dataclass(frozen=True, slots=True)
class Summary:
    """Min, median and max of one variant's samples (in the unit the caller chose)."""

    name: str
    samples: tuple[float, ...]

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def max(self) -> float:
        return max(self.samples)


def ratio(numerator: Summary, denominator: Summary) -> float:
    """Median over median: the robust figure on a noisy, shared machine."""
    return numerator.median / denominator.median


def paired_delta(variant: Summary, baseline: Summary) -> float:
    """The median of per-round differences: robust when load comes and goes."""
    return statistics.median(v - b for v, b in zip(variant.samples, baseline.samples, strict=True))


def interleave(variants: dict[str, Callable[[], float]], repeats: int) -> dict[str, Summary]:
    """Run each variant once per round, A B C A B C ..., so drift hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, run in variants.items():
            gc.collect()
            samples[name].append(run())
    return {name: Summary(name, tuple(values)) for name, values in samples.items()}


async def interleave_async(
    variants: dict[str, Callable[[], Awaitable[float]]], repeats: int
) -> dict[str, Summary]:
    """`interleave` for coroutine functions, in the running loop."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, run in variants.items():
            gc.collect()
            samples[name].append(await run())
    return {name: Summary(name, tuple(values)) for name, values in samples.items()}


def print_table(title: str, unit: str, rows: Sequence[Summary], baseline: Summary) -> None:
    """Print min/median/max per variant and its ratio to *baseline*."""
    print(f"\n{title}")
    print(f"  {'variant':<34}{'min':>10}{'median':>10}{'max':>10}  {'vs ' + baseline.name:>16}")
    for row in rows:
        print(
            f"  {row.name:<34}{row.min:>10.3f}{row.median:>10.3f}{row.max:>10.3f}"
            f"  {ratio(row, baseline):>15.3f}x   ({unit})"
        )


def clock() -> float:
    """CPU time of this process: for in-process, CPU-bound benchmarks it leaves out the time
    other tenants of a shared machine steal, which wall-clock timers count."""
    return time.process_time()
