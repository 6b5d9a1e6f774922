"""Benchmark suite: the protocol (methods, runner, report), its tuning, perf and scale.

None of it is needed to use the library. Importing this package imports
nothing else, so a benchmark child process can enter it without TensorFlow.
"""

#: Seed of the test inputs of the demo and the scale benchmark; no training set
#: uses it. (The protocol's problems draw their test sets with `problems.TEST_SEED`.)
TEST_SEED = 10_000
