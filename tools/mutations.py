"""Breaks each guarantee of docs/reliability.md on purpose and checks that its test fails.

Each `Mutation` is a one-line change to the package (an exact text that must
occur once in a file, and its replacement) and the tests that must then
fail. For each, the tracked files are copied to a scratch folder, the
change is applied there (the working tree is never touched), and the tests
run in the scratch copy. A mutation that leaves its tests passing is a
guarantee without a proof.

    python tools/mutations.py              # all, as a Markdown table
    python tools/mutations.py --only save  # the mutations whose name contains "save"
    python tools/mutations.py --list

Exits 1 if any mutation survives or no longer applies. Slow (each mutation
starts pytest and TensorFlow), so it is not part of `make test`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class Mutation:
    """`old` -> `new` in `path` (relative to the repository) must make `tests` fail."""

    name: str
    guarantee: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTATIONS: tuple[Mutation, ...] = (
    Mutation(
        "save-in-place", "`.keras` files are written atomically",
        "keras_gradinn/model.py",
        "super().save(staging, overwrite=True, **kwargs)",
        "super().save(path, overwrite=True, **kwargs)",
        ("tests/test_model.py::test_a_save_that_fails_midway_leaves_the_previous_file_intact",)),
    Mutation(
        "clock-seeded-draws", "the same seed gives bit-identical results in two processes",
        "keras_gradinn/collocation.py",
        "shift = tf.random.stateless_uniform((1, d), seed)",
        "shift = tf.random.stateless_uniform((1, d), seed + tf.cast(tf.timestamp() * 1e6, "
        "seed.dtype) % 997)",
        ("tests/test_model.py::test_the_same_seed_gives_bit_identical_results_in_two_processes",)),
    Mutation(
        "clock-seeded-subsets", "collocation draws are a pure function of the seed and step",
        "keras_gradinn/collocation.py",
        "keys = tf.random.stateless_uniform((len(self.pool),), seed)",
        "keys = tf.random.stateless_uniform((len(self.pool),), seed + tf.cast(tf.timestamp() "
        "* 1e6, seed.dtype) % 997)",
        ("tests/test_model.py::test_collocation_points_lie_in_the_domain_and_are_reproducible",)),
    Mutation(
        "choose-worst", "the automatic choice is the best held-out score",
        "keras_gradinn/estimator.py",
        "self.best_index_ = int(np.argmax(mean))",
        "self.best_index_ = int(np.argmin(mean))",
        ("tests/test_estimator.py::"
         "test_the_choice_is_the_best_held_out_score_and_never_below_the_plain_network",)),
    Mutation(
        "screening-leaks", "screening makes the derivative along dropped inputs exactly zero",
        "keras_gradinn/stacked.py",
        "kernels = [self.kernels[0] * tf.cast(self.input_mask, self.kernels[0].dtype)[:, :, None],",
        "kernels = [self.kernels[0] * tf.cast(1 + 0 * self.input_mask, self.kernels[0].dtype)"
        "[:, :, None],",
        ("tests/test_estimator.py::test_screening_drops_the_inert_inputs_exactly",)),
    Mutation(
        "predict-skips-checks", "the estimator passes scikit-learn's estimator checks",
        "keras_gradinn/estimator.py",
        '        X = validate_data(self, X, reset=False, dtype=np.float64)\n'
        '        with warnings.catch_warnings():\n'
        '            warnings.filterwarnings("ignore", message=".*outside the bounds.*")\n'
        '            predicted',
        '        X = np.asarray(X, dtype=np.float64)\n'
        '        with warnings.catch_warnings():\n'
        '            warnings.filterwarnings("ignore", message=".*outside the bounds.*")\n'
        '            predicted',
        ("tests/test_estimator.py::test_scikit_learn_estimator_checks_with_a_fixed_prior",)),
    Mutation(
        "complex-accepted", "bad input gets a clear error naming the problem",
        "keras_gradinn/validation.py",
        'raise ValueError(f"{label} must be real numbers; got complex values")',
        "pass",
        ("tests/test_bad_input.py",)),
)


def _tracked_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    return [name for name in listed.stdout.decode().split("\0") if name]


def _scratch_copy(folder: pathlib.Path) -> None:
    for name in _tracked_files():
        source, target = ROOT / name, folder / name
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def _apply(mutation: Mutation, folder: pathlib.Path) -> None:
    path = folder / mutation.path
    text = path.read_text()
    count = text.count(mutation.old)
    if count != 1:
        raise ValueError(f"mutation {mutation.name!r}: the text to replace occurs {count} times "
                         f"in {mutation.path} (expected once); update tools/mutations.py")
    path.write_text(text.replace(mutation.old, mutation.new))


def run(mutation: Mutation) -> tuple[bool, str, float]:
    """Applies `mutation` to a scratch copy and runs its tests: (killed, last output line, s)."""
    with tempfile.TemporaryDirectory(prefix=f"mutant-{mutation.name}-") as scratch:
        folder = pathlib.Path(scratch)
        _scratch_copy(folder)
        _apply(mutation, folder)
        env = {**os.environ, "PYTHONPATH": str(folder), "TF_CPP_MIN_LOG_LEVEL": "2"}
        # The mutant must be what the tests import, not an installed copy.
        where = subprocess.run([sys.executable, "-c", "import keras_gradinn; "
                                "print(keras_gradinn.__file__)"], cwd=folder, env=env,
                               capture_output=True, text=True, check=True).stdout.strip()
        if not pathlib.Path(where).resolve().is_relative_to(folder.resolve()):
            raise RuntimeError(f"the scratch copy imports keras_gradinn from {where}")
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-n", "0", "-p", "no:cacheprovider",
             *mutation.tests],
            cwd=folder, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        lines = [line for line in result.stdout.splitlines() if line.strip()]
        return result.returncode != 0, (lines[-1] if lines else result.stderr[-200:]), seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="run the mutations whose name contains this text")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if args.only is None or args.only in m.name]
    if args.list:
        for m in chosen:
            print(f"{m.name}: {m.guarantee} ({m.path})")
        return 0
    print("| guarantee | mutation | test | result |\n| --- | --- | --- | --- |", flush=True)
    survived = 0
    for m in chosen:
        try:
            killed, last, seconds = run(m)
        except ValueError as error:
            killed, last, seconds = False, str(error), 0.0
        survived += not killed
        verdict = "fails (mutation caught)" if killed else "**passes: not caught**"
        tests = ", ".join(f"`{t.removeprefix('tests/')}`" for t in m.tests)
        print(f"| {m.guarantee} | `{m.name}` in `{m.path}` | {tests} | {verdict}: {last} "
              f"({seconds:.0f} s) |", flush=True)
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
