"""Benchmark suite: the protocol (methods, runner, report), its tuning, perf and scale.

None of it is needed to use the library. Importing this package imports
nothing else, so a benchmark child process can enter it without TensorFlow.
"""
