"""GradINN under MultiWorkerMirroredStrategy: two worker processes on localhost.

Both workers run tests/multiworker_worker.py (one CPU replica each, so two
replicas in sync) while this process trains the same configuration without
a strategy. With a fixed collocation set of exactly `n_collocation` points
every replica uses every point at every step (collocation.py's "subset" mode
draws a permutation of the whole pool), so the mean over replicas of the
gradient term is the single-process term and the runs must agree.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import socket
import subprocess
import sys
import time

import keras
import multiworker_worker as worker
import numpy as np
import pytest
from conftest import SUBPROCESS_TIMEOUT, assert_equal_to_rounding

import keras_gradinn as kg

TESTS = pathlib.Path(__file__).resolve().parent
# A worker whose port was taken between `free_ports` and its own bind exits
# with this in its log (TensorFlow's gRPC server, checked on TF 2.20).
BIND_FAILURE = "Could not start gRPC server"
LAUNCH_ATTEMPTS = 3


def free_ports(count: int) -> list[int]:
    """Ports the system reports free on every interface, held open together so they differ.

    They are released before the workers bind them (TF_CONFIG must name
    every worker's port before any worker starts, so a worker cannot bind
    port 0 and report it), and another process may take one meanwhile:
    `run_workers` then launches again on fresh ports.
    """
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("", 0))  # the workers' gRPC servers bind 0.0.0.0:port
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def child_env() -> dict[str, str]:
    """This environment without TF_CONFIG, with this checkout's package first on the path."""
    root = str(TESTS.parent)
    path = os.environ.get("PYTHONPATH")
    env = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["PYTHONPATH"] = root if not path else f"{root}{os.pathsep}{path}"
    return env


def worker_env(cluster: dict, index: int) -> dict[str, str]:
    """The environment of worker `index` of `cluster`."""
    task = {"type": "worker", "index": index}
    return {**child_env(), "TF_CONFIG": json.dumps({"cluster": cluster, "task": task})}


def launch(out_dir: pathlib.Path) -> list[subprocess.Popen]:
    """Starts the two workers; their output goes to files, so no pipe can fill and block them."""
    cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
    processes = []
    for index in range(2):
        with open(out_dir / f"worker-{index}.log", "w") as log:
            processes.append(subprocess.Popen(
                [sys.executable, str(TESTS / "multiworker_worker.py"), str(out_dir)],
                env=worker_env(cluster, index), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            ))
    return processes


def wait(processes: list[subprocess.Popen], timeout: float) -> list[int | None]:
    """Waits until every worker exits, one fails, or `timeout` passes; returns the exit codes.

    A worker that dies leaves the others waiting for it inside a step, so
    the first failure ends the wait rather than the timeout. The poll is a
    check every 0.2 s, not a time assumption: the only limit is `timeout`.
    """
    deadline = time.monotonic() + timeout
    while any(p.poll() is None for p in processes) and time.monotonic() < deadline:
        if any(p.poll() not in (None, 0) for p in processes):
            break
        time.sleep(0.2)
    return [p.poll() for p in processes]


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def logs(out_dir: pathlib.Path, codes: list[int | None]) -> str:
    return "\n".join(
        f"--- worker {i} ({'still running' if code is None else f'exit {code}'}):\n"
        f"{(out_dir / f'worker-{i}.log').read_text()[-3000:]}"
        for i, code in enumerate(codes)
    )


def lost_a_port(out_dir: pathlib.Path, codes: list[int | None]) -> bool:
    """Whether a worker failed because its port was taken before it could bind it."""
    return any(code not in (None, 0) and BIND_FAILURE in (out_dir / f"worker-{i}.log").read_text()
               for i, code in enumerate(codes))


def run_workers(out_dir: pathlib.Path, meanwhile) -> dict:
    """Runs the two workers to success, calling `meanwhile()` while the first launch runs.

    Returns what `meanwhile` returned. A launch that loses a port to another
    process (the one failure `free_ports` cannot rule out) is retried on
    fresh ports, at most LAUNCH_ATTEMPTS times in all; any other failure,
    or a timeout, fails the test at once with every worker's log.
    """
    result = None
    for attempt in range(1, LAUNCH_ATTEMPTS + 1):
        processes = launch(out_dir)
        try:
            if attempt == 1:
                result = meanwhile()
            codes = wait(processes, SUBPROCESS_TIMEOUT)
        finally:
            stop(processes)
        if codes == [0] * len(processes):
            return result
        if not (lost_a_port(out_dir, codes) and attempt < LAUNCH_ATTEMPTS):
            pytest.fail(f"the workers did not all succeed (launch {attempt} of at most "
                        f"{LAUNCH_ATTEMPTS}, time limit {SUBPROCESS_TIMEOUT:g} s):\n"
                        f"{logs(out_dir, codes)}")
    raise AssertionError("unreachable")


def single_process() -> dict:
    """The fixed-set and array runs of the workers, without a strategy."""
    x, y = worker.data()
    model = worker.build(worker.fixed_points())
    fitted = model.fit(worker.dataset(x, y), epochs=worker.EPOCHS, verbose=0)
    on_arrays = worker.build(worker.fixed_points())
    on_arrays_fitted = on_arrays.fit(x, y, batch_size=worker.GLOBAL_BATCH, epochs=2,
                                     shuffle=False, verbose=0)
    return {
        "history": worker.history(fitted),
        "weights": model.get_weights(),
        "predictions": model.predict(x, verbose=0),
        "evaluate": model.evaluate(worker.dataset(x, y), verbose=0, return_dict=True),
        "arrays_history": worker.history(on_arrays_fitted),
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(worker results, single-process results, output folder); all run at once."""
    out_dir = tmp_path_factory.mktemp("multiworker")
    reference = run_workers(out_dir, single_process)
    results = [json.loads((out_dir / f"worker-{i}.json").read_text()) for i in range(2)]
    return results, reference, out_dir


def assert_same_history(actual: dict, expected: dict) -> None:
    assert sorted(actual) == sorted(expected) == ["data_loss", "gradient_loss", "loss"]
    for key, values in expected.items():
        assert actual[key] == pytest.approx(values, rel=1e-5), key


def test_two_workers_train_like_one_process(runs):
    results, reference, _ = runs
    for result in results:
        assert result["replicas"] == 2
        assert pathlib.Path(result["package"]).parent == pathlib.Path(kg.__file__).parent
        fixed = result["fixed"]
        assert fixed["step"] == worker.EPOCHS * 2  # global steps: 64 rows / 32 per global batch
        assert_same_history(fixed["history"], reference["history"])
        for got, want in zip(fixed["weights"], reference["weights"], strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(fixed["predictions"], reference["predictions"], rtol=1e-4)
        assert fixed["evaluate"] == pytest.approx(reference["evaluate"], rel=1e-5)
        assert_same_history(fixed["arrays_history"], reference["arrays_history"])


def test_the_chief_alone_saves_a_model_that_predicts_like_the_workers(runs):
    results, _, out_dir = runs
    loaded = keras.models.load_model(out_dir / "model.keras")
    x, _ = worker.data()
    # Same weights, but the worker predicted its half-batches under the
    # strategy: other kernels, so equal to float32 rounding of the largest
    # prediction (rtol alone fails wherever a prediction is near 0).
    want = np.asarray(results[0]["fixed"]["predictions"])
    assert_equal_to_rounding(loaded.predict(x, verbose=0), want)
    assert int(loaded.collocation_step.numpy()) == results[0]["fixed"]["step"]


def test_each_replica_draws_its_own_sobol_points_from_seed_step_and_replica(runs):
    results, _, _ = runs
    single = worker.build("sobol", n_collocation=16)
    step = results[0]["sobol"]["step"]
    assert step == results[1]["sobol"]["step"] == 4
    for replica, result in enumerate(results):
        history = result["sobol"]["history"]
        assert all(math.isfinite(v) for values in history.values() for v in values)
        assert history["gradient_loss"][-1] > 0
        # Draw number step * replicas + replica, as `collocation_points` documents.
        expected = single.collocation_points(step * 2 + replica).numpy()
        np.testing.assert_array_equal(result["sobol"]["points"], expected)
    assert not np.allclose(results[0]["sobol"]["points"], results[1]["sobol"]["points"])
    # Both workers agree on the weights, so they report the same epoch means.
    assert results[0]["sobol"]["history"] == results[1]["sobol"]["history"]


def test_backup_and_restore_resumes_to_the_uninterrupted_run(runs):
    results, reference, _ = runs
    for result in results:
        restart = result["restart"]
        assert restart["step"] == worker.EPOCHS * 2  # the collocation step came back too
        for key, values in restart["history"].items():
            assert values == pytest.approx(reference["history"][key][2:], rel=1e-5), key
        for got, want in zip(restart["weights"], reference["weights"], strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_a_non_finite_step_on_one_worker_stops_every_worker_at_that_step(runs):
    # Every replica must judge the whole step: one judging only its own half of
    # the batch lets worker 0 train on and wait forever for a stopped worker 1.
    results, _, _ = runs
    for result in results:
        error = result["guard"]["error"]
        assert error is not None
        assert error.startswith("NonFiniteLossError: training stopped at step 1: the data_loss "
                                "became NaN"), error
        assert "the update is not undone" in error


MIRRORED_GUARD_SCRIPT = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras_gradinn as kg, multiworker_worker as worker
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
print(strategy.num_replicas_in_sync)
print(worker.guard_case(strategy)["error"])
"""


def test_a_non_finite_step_on_one_of_two_mirrored_devices_is_reported_at_that_step():
    # Regression: the guard kept the first replica's verdict, so a row that
    # overflowed on the second device was reported steps later, if at all.
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_GUARD_SCRIPT], capture_output=True, text=True,
        timeout=SUBPROCESS_TIMEOUT, cwd=TESTS, env=child_env(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    replicas, error = result.stdout.splitlines()[-2:]
    assert replicas == "2"
    assert error.startswith("NonFiniteLossError: training stopped at step 1: the data_loss "
                            "became NaN"), error


def test_a_worker_whose_port_is_taken_fails_with_the_message_the_retry_looks_for():
    # If TensorFlow words the bind failure differently, `run_workers` would
    # stop retrying a launch that lost a port: this pins the message.
    with socket.socket() as taken:
        taken.bind(("", 0))
        taken.listen()
        cluster = {"worker": [f"localhost:{taken.getsockname()[1]}",
                              f"localhost:{free_ports(1)[0]}"]}
        result = subprocess.run(
            [sys.executable, "-c",
             "import tensorflow as tf; tf.distribute.MultiWorkerMirroredStrategy()"],
            capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT, env=worker_env(cluster, 0),
        )
    assert result.returncode != 0
    assert BIND_FAILURE in result.stdout + result.stderr, result.stderr[-3000:]


def test_a_launch_that_loses_a_port_is_retried_on_fresh_ports(tmp_path, monkeypatch):
    # Stand-in workers: the first launch fails as a worker whose port was
    # taken does, the second succeeds; `meanwhile` runs once.
    launches, calls = [], []

    def fake_launch(out_dir):
        launches.append(free_ports(2))
        lost = len(launches) == 1
        processes = []
        for index in range(2):
            with open(out_dir / f"worker-{index}.log", "w") as log:
                lose = lost and index == 1
                code = f"print({BIND_FAILURE!r}); raise SystemExit(1)" if lose else ""
                processes.append(subprocess.Popen([sys.executable, "-c", code], stdout=log,
                                                  stderr=subprocess.STDOUT))
        return processes

    monkeypatch.setattr(sys.modules[__name__], "launch", fake_launch)
    assert run_workers(tmp_path, lambda: calls.append(1) or "reference") == "reference"
    assert len(launches) == 2 and calls == [1]

    # Any other failure is not retried: it fails the test with the logs.
    def failing_launch(out_dir):
        launches.append(None)
        with open(out_dir / "worker-0.log", "w") as log, open(out_dir / "worker-1.log", "w"):
            return [subprocess.Popen([sys.executable, "-c", "raise SystemExit('broken')"],
                                     stdout=log, stderr=subprocess.STDOUT),
                    subprocess.Popen([sys.executable, "-c", ""])]

    monkeypatch.setattr(sys.modules[__name__], "launch", failing_launch)
    launches.clear()
    with pytest.raises(pytest.fail.Exception, match="(?s)launch 1 of at most 3.*broken"):
        run_workers(tmp_path, lambda: None)
    assert launches == [None]
