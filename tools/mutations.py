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
        "shift = stateless_uniform((1, d), seed)",
        "shift = stateless_uniform((1, d), seed + tf.cast(tf.timestamp() * 1e6, "
        "seed.dtype) % 997)",
        ("tests/test_model.py::test_the_same_seed_gives_bit_identical_results_in_two_processes",)),
    Mutation(
        "clock-seeded-subsets", "collocation draws are a pure function of the seed and step",
        "keras_gradinn/collocation.py",
        "keys = stateless_uniform((len(self.pool),), seed)",
        "keys = stateless_uniform((len(self.pool),), seed + tf.cast(tf.timestamp() "
        "* 1e6, seed.dtype) % 997)",
        ("tests/test_model.py::test_collocation_points_lie_in_the_domain_and_are_reproducible",)),
    Mutation(
        "xla-unstable-uniform", "collocation draws are the same with and without XLA",
        "keras_gradinn/collocation.py",
        "return 2.0 * stateless_uniform((n, d), seed) - 1.0",
        "return tf.random.stateless_uniform((n, d), seed, minval=-1.0, maxval=1.0)",
        ("tests/test_model.py::test_collocation_draws_are_the_same_under_xla",)),
    Mutation(
        "xla-unstable-shift", "training with XLA equals the graph path, with the default sampler",
        "keras_gradinn/collocation.py",
        "shift = stateless_uniform((1, d), seed)",
        "shift = tf.random.stateless_uniform((1, d), seed)",
        ("tests/test_model.py::test_xla_training_matches_the_graph_path",)),
    Mutation(
        "seed-high-words-ignored", "every bit of the seed changes the draws",
        "keras_gradinn/collocation.py",
        "for word in (words[1, 1], words[0, 1], words[1, 0], words[0, 0]):",
        "for word in (words[0, 1], words[0, 0]):",
        ("tests/test_sampling.py::"
         "test_the_collocation_hash_draws_independent_uniform_numbers_the_same_under_xla",)),
    Mutation(
        "guard-keeps-bad-weights", "a diverging run keeps the last finite weights",
        "keras_gradinn/guard.py",
        "                v.assign(b)\n",
        "                pass\n",
        ("tests/test_model.py::test_a_diverging_run_stops_naming_the_step_and_term_and_keeps_finite_weights",)),
    Mutation(
        "guard-ignores-update", "a finite loss with a non-finite update is stopped, naming it",
        "keras_gradinn/guard.py",
        "tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in gradients])",
        "tf.constant(True)",
        ("tests/test_model.py::test_a_finite_loss_with_a_non_finite_gradient_stops_naming_the_weight_update",)),
    Mutation(
        "mismatch-in-float32", "float64 training computes in float64",
        "keras_gradinn/model.py",
        "dtype = tf.float64 if jacobian.dtype == tf.float64 else tf.float32",
        "dtype = tf.float32",
        ("tests/test_model.py::test_training_under_other_dtype_policies_matches_float32",)),
    Mutation(
        "unscaled-float16-loss", "mixed_float16 training matches float32",
        "keras_gradinn/model.py",
        "scaled_loss = self.optimizer.scale_loss(loss * self.members)",
        "scaled_loss = loss * self.members",
        ("tests/test_model.py::test_training_under_other_dtype_policies_matches_float32",)),
    Mutation(
        "transposed-field", "a prior field (n, m*d) or (n, m, d) is read as outputs x inputs",
        "keras_gradinn/model.py",
        "field = tf.reshape(field, [1, -1, self.output_dim, self.input_dim])",
        "field = tf.transpose(tf.reshape(field, [1, -1, self.input_dim, self.output_dim]), "
        "[0, 1, 3, 2])",
        ("tests/test_model.py::test_a_prior_field_of_either_shape_is_read_as_outputs_by_inputs",)),
    Mutation(
        "xla-step-differs", "training with XLA equals the graph path",
        "keras_gradinn/model.py",
        "scaled_loss = self.optimizer.scale_loss(loss * self.members)",
        "scaled_loss = self.optimizer.scale_loss(loss * self.members * "
        "(1.01 if self.jit_compile is True else 1.0))",
        ("tests/test_model.py::test_xla_training_matches_the_graph_path",)),
    Mutation(
        "csv-in-place", "prediction CSVs are written atomically",
        "keras_gradinn/cli/predict.py",
        'with files.atomic_file(path, newline="") as stream:',
        'with open(path, "w", newline="") as stream:',
        ("tests/test_atomic_writes.py::test_a_predict_that_fails_while_writing_leaves_the_old_csv_byte_identical",)),
    Mutation(
        "private-files", "written files get the mode a plain open() gives",
        "keras_gradinn/files.py",
        "        os.chmod(staging, plain_mode(target, directory=directory))\n",
        "",
        ("tests/test_atomic_writes.py::test_a_prediction_csv_gets_the_mode_open_gives",)),
    Mutation(
        "private-run-dir", "run directories get the mode a plain mkdir gives",
        "keras_gradinn/files.py",
        "        os.chmod(staging, plain_mode(target, directory=directory))\n",
        "",
        ("tests/test_atomic_writes.py::test_a_run_directory_gets_the_mode_mkdir_gives",)),
    Mutation(
        "run-dir-old-removed-first", "a replaced run directory survives a failed replacement",
        "keras_gradinn/files.py",
        "        target.rename(old)\n",
        "        shutil.rmtree(target)\n        old = None\n",
        ("tests/test_atomic_writes.py::test_a_fit_that_fails_while_replacing_a_run_leaves_the_old_run_byte_identical",)),
    Mutation(
        "failed-run-keeps-checkpoints", "a fit that fails leaves nothing behind",
        "keras_gradinn/cli/fit.py",
        "        discard()  # the staging is gone already, so the folders it was in can go too\n",
        "        pass\n",
        ("tests/test_atomic_writes.py::test_a_fit_that_fails_while_publishing_a_new_run_directory_leaves_nothing",)),
    Mutation(
        "checkpoint-debris-counts", "an interrupted checkpoint write is never resumed from",
        "keras_gradinn/checkpoints.py",
        'found = sorted(directory.glob("epoch-*"))',
        'found = sorted(directory.glob("*"))',
        ("tests/test_atomic_writes.py::test_a_checkpoint_killed_midway_leaves_debris_that_latest_ignores",)),
    Mutation(
        "checkpoint-left-partial",
        "a checkpoint write that fails keeps the previous one, no debris",
        "keras_gradinn/files.py",
        "        _discard(staging)\n",
        "        pass\n",
        ("tests/test_atomic_writes.py::test_a_checkpoint_that_fails_midway_leaves_the_previous_one_loadable_and_no_debris",)),
    Mutation(
        "prior-scale-off", "the smooth prior's initial_scale sets its magnitude",
        "keras_gradinn/priors.py",
        "factor = initial_scale / rms if rms > 0 else 0.0",
        "factor = initial_scale ** 1.00001 / rms if rms > 0 else 0.0",
        ("tests/test_priors.py::test_initial_scale_sets_smooth_prior_magnitude",)),
    Mutation(
        "stacked-member-differs", "a stack's members are the networks built with their seeds",
        "keras_gradinn/stacked.py",
        "        return tf.transpose(outputs, [1, 0, 2])\n",
        "        return tf.transpose(outputs, [1, 0, 2]) * 1.00001\n",
        ("tests/test_stacked.py::test_members_equal_the_networks_built_with_their_seeds",)),
    Mutation(
        "export-unchecked", "an export that differs from Keras is refused and leaves nothing",
        "keras_gradinn/export.py",
        "        if np.any(excess > 0):\n",
        "        if False:\n",
        ("tests/test_export.py::test_a_saved_model_that_disagrees_with_keras_is_refused_and_leaves_the_previous_version",
         "tests/test_export.py::test_verification_tolerance_follows_the_output_units")),
    Mutation(
        "export-tolerance-in-user-units", "the verification tolerance follows the output units",
        "keras_gradinn/export.py",
        'units = {"y": std[None, :], "dy_dx": (std[:, None] / half_width[None, :])[None]}',
        'units = {"y": 1.0, "dy_dx": 1.0}',
        ("tests/test_export.py::test_verification_tolerance_follows_the_output_units",)),
    Mutation(
        "tanh-slope", "the explicit chain rule takes the tape's training step, every activation",
        "keras_gradinn/jacobian.py",
        "return t, 1.0 - t * t",
        "return t, 1.0 - t",
        ("tests/test_jacobian.py::test_the_explicit_chain_rule_gives_the_tapes_training_update_for_every_activation",)),
    Mutation(
        "reverse-transposed", "the explicit chain rule takes the tape's training step, both modes",
        "keras_gradinn/jacobian.py",
        "    return tf.reshape(flat, [*lead, -1, m, d])",
        "    return tf.linalg.matrix_transpose(tf.reshape(flat, [*lead, -1, d, m]))",
        ("tests/test_jacobian.py::test_the_explicit_chain_rule_gives_the_tapes_training_update_for_every_activation",)),
    Mutation(
        "resume-from-scratch", "--resume continues from the last checkpoint",
        "keras_gradinn/checkpoints.py",
        '    """Loads a checkpoint into a compiled model; '
        'returns (next epoch, history so far)."""\n',
        '    """Loads a checkpoint into a compiled model; '
        'returns (next epoch, history so far)."""\n'
        '    shutil.rmtree(checkpoint)\n    return 0, {}\n',
        ("tests/test_cli.py::test_a_fit_killed_midway_resumes_to_the_uninterrupted_weights",)),
    Mutation(
        "resume-other-options", "--resume with different options is refused",
        "keras_gradinn/cli/fit.py",
        "    if json.loads(saved.read_text()) != config:\n",
        "    if False:\n",
        ("tests/test_cli.py::test_a_fit_killed_midway_resumes_to_the_uninterrupted_weights",)),
    Mutation(
        "run-dir-copied", "a killed fit leaves no half-written run directory",
        "keras_gradinn/files.py",
        "        staging.rename(target)\n",
        "        shutil.copytree(staging, target)\n",
        ("tests/test_cli.py::test_a_fit_killed_midway_resumes_to_the_uninterrupted_weights",)),
    Mutation(
        "stale-run-staging-kept", "a resumed fit removes the staging its killed run left",
        "keras_gradinn/cli/fit.py",
        '        for stale in out.parent.glob(f".{out.name}{files.STAGING_MARK}*"):\n',
        '        for stale in []:\n',
        ("tests/test_cli.py::test_a_fit_killed_midway_resumes_to_the_uninterrupted_weights",)),
    Mutation(
        "stale-checkpoint-staging-kept", "a resumed fit removes a killed checkpoint write",
        "keras_gradinn/checkpoints.py",
        '        for stale in self.directory.glob(f".epoch-*{files.STAGING_MARK}*"):\n',
        '        for stale in []:\n',
        ("tests/test_cli.py::test_a_fit_killed_midway_resumes_to_the_uninterrupted_weights",)),
    Mutation(
        "onnx-copied-first", "a killed export leaves no half-written ONNX file",
        "keras_gradinn/files.py",
        "            os.replace(staging, target)\n",
        "            shutil.copyfile(staging, target)\n            os.replace(staging, target)\n",
        ("tests/test_cli.py::test_an_export_killed_before_its_rename_leaves_no_file_and_runs_again",)),
    Mutation(
        "cli-unsafe-load", "info and predict refuse a model with smuggled code",
        "keras_gradinn/cli/common.py",
        "safe_mode=True, compile=False",
        "safe_mode=False, compile=False",
        ("tests/test_cli.py::test_commands_refuse_smuggled_code_and_pickles_without_running_them",)),
    Mutation(
        "npz-pickle", "NPZ data needing pickle is refused",
        "keras_gradinn/tables.py",
        "with np.load(path, allow_pickle=False) as archive",
        "with np.load(path, allow_pickle=True) as archive",
        ("tests/test_cli.py::test_commands_refuse_smuggled_code_and_pickles_without_running_them",)),
    Mutation(
        "refuse-everything", "random small problems train (at least 90 % of them)",
        "keras_gradinn/loop.py",
        "        bound = inspect.signature(keras.Model.fit).bind(self, x, y, *args, **kwargs)\n",
        '        raise ValueError("refused")\n',
        ("tests/test_properties.py",)),
    Mutation(
        "vague-sampler-error", "construction errors name the value",
        "keras_gradinn/collocation.py",
        'f"sampler must be one of {sampling.METHODS}, an array of points "',
        'f"bad sampler: use one of {sampling.METHODS}, an array of points "',
        ("tests/test_model.py::test_construction_errors_name_the_problem",)),
    Mutation(
        "outside-bounds-silent", "prediction outside the bounds warns",
        "keras_gradinn/domain.py",
        '            warnings.warn(f"{message}; the model extrapolates there", stacklevel=3)\n',
        "            pass\n",
        ("tests/test_model.py::test_predict_warns_about_points_outside_the_bounds",)),
    Mutation(
        "cli-traceback", "command-line errors are one line, not a traceback",
        "keras_gradinn/cli/__init__.py",
        '        message = str(error).strip().splitlines()[0] if str(error).strip() else ""\n',
        "        raise\n",
        ("tests/test_cli.py::test_fit_rejects_bad_data_in_one_line_and_writes_nothing",)),
    Mutation(
        "config-rounds-floats", "rerunning fit with its config.toml reproduces metrics.json",
        "keras_gradinn/cli/fit.py",
        "text = repr(value)",
        "text = repr(round(value, 2))",
        ("tests/test_cli.py::test_fit_predict_info_export_end_to_end",)),
    Mutation(
        "unsafe-deserialization", "a .keras file that smuggles code is refused",
        "keras_gradinn/model.py",
        "\nimport keras\n",
        "\nimport keras\nkeras.config.enable_unsafe_deserialization()\n",
        ("tests/test_model.py::test_safe_loading_refuses_smuggled_code",)),
    Mutation(
        "load-forgets-choice", "a saved estimator loads with its choice and predictions",
        "keras_gradinn/estimator.py",
        'estimator.best_prior_, estimator.best_index_ = info["best_prior"], info["best_index"]',
        'estimator.best_prior_, estimator.best_index_ = "none", info["best_index"]',
        ("tests/test_estimator.py::test_a_saved_estimator_loads_with_its_choice_and_predictions",)),
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
        '            if return_std:',
        '        X = np.asarray(X, dtype=np.float64)\n'
        '        with warnings.catch_warnings():\n'
        '            warnings.filterwarnings("ignore", message=".*outside the bounds.*")\n'
        '            if return_std:',
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
