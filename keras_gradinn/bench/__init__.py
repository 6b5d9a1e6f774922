"""Benchmark suite: methods, runner and report."""
