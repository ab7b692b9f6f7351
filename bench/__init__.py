"""Benchmarks: each prints min/median/max over repetitions and ratios measured in one run."""
