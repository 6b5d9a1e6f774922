"""Benchmark suite: methods, runner and report (needs `pip install keras-gradinn[bench]`)."""
