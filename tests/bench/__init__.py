"""Tests of the benchmarks (`bench/`): each runs, small, and prints its table."""
