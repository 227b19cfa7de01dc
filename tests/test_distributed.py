"""Several processes: the arguments of ``training.distributed`` and scripts/train.py's
``--coordinator/--num_processes/--process_id``, up to a real 2-process run on 127.0.0.1."""

import functools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

from cnn_jax import models
from cnn_jax.training import DeviceData, distributed, make_mesh
from cnn_jax.training.steps import create_train_state, make_optimizer, train_epoch
from tests.numerics import assert_close
from tests.test_train_script import ROOT, train

TINY_MLP = ["--dataset=synthetic_bars", "--model=mlp", "--model_arg=units=16", "--epochs=2",
            "--batch_size=256", "--checkpoint_every=0"]


@pytest.mark.parametrize("args, match", [
    (("nohost", None, None), "coordinator=nohost: expected HOST:PORT"),
    ((":1234", None, None), "expected HOST:PORT"),
    (("10.0.0.1:0", None, None), "port in 1..65535"),
    (("10.0.0.1:http", None, None), "port in 1..65535"),
    ((None, 0, None), "num_processes=0: must be >= 1"),
    ((None, 2, 2), r"process_id=2: must be in \[0, num_processes=2\)"),
    ((None, 2, -1), "process_id=-1"),
    ((None, None, 0), "process_id=0: give num_processes as well"),
])
def test_bad_arguments_name_the_argument(args, match):
    with pytest.raises(ValueError, match=match):
        distributed.check_arguments(*args)


def test_good_arguments_and_detection_pass():
    distributed.check_arguments("10.0.0.1:12345", 4, 3)
    distributed.check_arguments("[::1]:12345", 1, 0)
    distributed.check_arguments(None, None, None)  # all detected from the cluster environment


@pytest.mark.parametrize("flags, needle", [
    (["--process_id=2", "--num_processes=2"], "--process_id=2: must be in [0, num_processes=2)"),
    (["--coordinator=localhost"], "--coordinator=localhost: expected HOST:PORT with a port in "
     "1..65535, e.g. 10.0.0.1:12345 (process 0's address)"),
])
def test_train_script_refuses_bad_process_flags(tmp_path, flags, needle):
    proc = train(*TINY_MLP, f"--workdir={tmp_path}", *flags, check=False)
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert lines[0] == f"train.py: error: {needle}"
    assert not os.listdir(tmp_path)


def free_port() -> int:
    """A TCP port nobody listens on now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(workdir, *flags, devices: int):
    """scripts/train.py on TINY_MLP in a subprocess with ``devices`` CPU devices; its output
    goes to a file beside ``workdir`` (a pipe could fill and block the process)."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    log = open(f"{workdir}.{time.monotonic_ns()}.log", "w+")
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", "train.py"),
                             *TINY_MLP, f"--workdir={workdir}", *flags], env=env, cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT, text=True)
    proc.log = log
    return proc


def output(proc) -> str:
    proc.log.seek(0)
    return proc.log.read()


def kill_all(procs) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()
        p.log.close()


def finish(procs, timeout=120) -> list[str]:
    """Waits for every process and returns their outputs. As soon as one fails, or when
    ``timeout`` seconds have passed, every process still running is killed (a process
    whose partner died would otherwise wait for it in a collective) and the test fails."""
    deadline = time.monotonic() + timeout
    try:
        while any(p.poll() is None for p in procs):
            failed = [p for p in procs if p.poll() not in (None, 0)]
            assert not failed, output(failed[0])[-3000:]
            assert time.monotonic() < deadline, f"still running after {timeout} s: " + (
                output(procs[0])[-3000:])
            time.sleep(0.05)
        outs = [output(p) for p in procs]
    finally:
        kill_all(procs)
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-3000:]
    return outs


def pair(workdir, *flags):
    """Processes 0 and 1 of a 2-process run on 127.0.0.1, one CPU device each."""
    port = free_port()
    return [launch(workdir, *flags, f"--coordinator=127.0.0.1:{port}", "--num_processes=2",
                   f"--process_id={i}", devices=1) for i in range(2)]


def losses(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [(m["loss"], m["val_loss"]) for m in map(json.loads, f)]


def test_each_device_gathers_only_its_rows_of_a_batch_and_metrics_are_summed_across():
    """What makes several processes data-parallel, read off the compiled epoch of a 2-device
    mesh (one device per process in a 2-process run): the data set is replicated, and each
    device gathers only its B/2 rows of every batch (no gather of the whole batch, no
    all-gather); gradients and metric sums are all-reduced, so every process holds the
    global loss and the same parameters."""
    batch = 256
    mesh = make_mesh(2)
    images = np.zeros((2 * batch, 28, 28, 1), np.uint8)
    data = DeviceData.from_arrays(images, np.zeros(2 * batch, np.int32), images[:8],
                                  np.zeros(8, np.int32), 10, mesh=mesh)
    model = models.check("mlp", {"units": 16}, num_classes=10, input_shape=(28, 28, 1))
    state = create_train_state(model, make_optimizer("adam", 1e-3), jax.random.key(0),
                               (28, 28, 1))
    state = jax.device_put(state, NamedSharding(mesh, PartitionSpec()))
    epoch = jax.jit(functools.partial(train_epoch, batch_size=batch, mesh=mesh))
    hlo = epoch.lower(state, data.train_images, data.train_labels,
                      jax.random.key(1)).compile().as_text()
    image_gathers = re.findall(r"= u8\[(\d+),[^=]*? gather\(", hlo)
    assert image_gathers and set(image_gathers) == {str(batch // 2)}, image_gathers
    assert "all-gather(" not in hlo
    all_reduced = " ".join(line for line in hlo.splitlines() if "all-reduce(" in line)
    assert "f32[16,784]" in all_reduced  # the first layer's gradient
    assert "reduce_sum" in all_reduced  # the loss and accuracy sums


def test_two_processes_train_like_one_process_with_two_devices(tmp_path):
    """2 processes x 1 CPU device on 127.0.0.1 (gloo) against 1 process x 2 devices: the same
    global batches sharded the same way, so the same per-epoch losses (to float tolerance:
    the cross-process sum is gloo's, the in-process one XLA's; they were bit-identical here).
    Three training subprocesses of 2 epochs on 4096 synthetic images: about 19 s on the
    loaded 2-core machine, so it runs in the default suite (every process is killed when
    one fails or after 120 s)."""
    outs = finish(pair(tmp_path / "two"))
    assert all("devices: [CpuDevice(id=0), CpuDevice(id=2048)]" in out for out in outs)
    one = finish([launch(tmp_path / "one", "--num_devices=2", devices=2)])
    assert "completed" in one[0]
    # one set of files: process 0 alone writes them (two writers: two TensorBoard files)
    assert len(os.listdir(tmp_path / "two" / "tensorboard")) == 1
    assert not [f for f in os.listdir(tmp_path / "two") if f.startswith(".tmp")]
    assert json.load(open(tmp_path / "two" / "results.json"))["devices"] == 2
    # sums of 256 per-example losses per step and 16 steps per epoch, each side
    assert_close(losses(tmp_path / "two"), losses(tmp_path / "one"), ops=256 + 16 + 4096 // 256,
                 dtype=np.float32)


@pytest.mark.slow
def test_relaunch_after_kill_9_of_one_process_ends_like_an_uninterrupted_run(tmp_path):
    """2 processes, 6 epochs with a checkpoint after each: ``kill -9`` of process 1 after
    epoch 2 (process 0 is killed too, as a scheduler ends a job that lost a task), then both
    relaunched; the run resumes and ends with the per-epoch and final losses of one
    uninterrupted process with 2 devices. Slow: five training subprocesses, 36-45 s on
    the loaded 2-core machine (90 s seen under heavier load)."""
    flags = ["--epochs=6", "--batch_size=64", "--checkpoint_every=1"]
    run = tmp_path / "run"
    procs = pair(run, *flags)
    try:
        deadline = time.monotonic() + 120
        while not (run / "metrics.jsonl").exists() or len(
                (run / "metrics.jsonl").read_text().splitlines()) < 2:
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), (
                [output(p)[-2000:] for p in procs if p.poll() is not None])
            time.sleep(0.05)
        os.kill(procs[1].pid, signal.SIGKILL)
        os.kill(procs[0].pid, signal.SIGKILL)
    finally:
        kill_all(procs)
    done = len((run / "metrics.jsonl").read_text().splitlines())
    assert done < 6 and not (run / "results.json").exists()  # killed mid-run

    outs = finish(pair(run, *flags))
    assert all("resuming after epoch" in out for out in outs)
    finish([launch(tmp_path / "one", *flags, "--num_devices=2", devices=2)])
    assert_close(losses(run), losses(tmp_path / "one"), ops=256 + 64 + 4096 // 64,
                 dtype=np.float32)
    results = [json.load(open(d / "results.json")) for d in (run, tmp_path / "one")]
    assert results[0]["epochs_run"] == 6
    assert_close([r["valid_loss"] for r in results[:1]], [results[1]["valid_loss"]],
                 ops=256 + 1024 // 64, dtype=np.float32)
