"""End to end: scripts/train.py on a tiny config with synthetic data, a sweep, bad flags."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--dataset=synthetic_bars", "--model=cnn", "--model_arg=features=(4,)",
        "--model_arg=dense_units=(8,)", "--epochs=2", "--batch_size=512", "--num_devices=1"]


def train(*args, check=True):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "train.py"), *args],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr[-3000:])
    return proc


def test_smoke_run_writes_every_result_file(tmp_path):
    proc = train(*TINY, f"--workdir={tmp_path}")
    assert "completed" in proc.stdout
    results = json.load(open(tmp_path / "results.json"))
    assert results["status"] == "completed" and results["epochs_run"] == 2
    assert 0 <= results["valid_accuracy"] <= 1
    lines = open(tmp_path / "metrics.jsonl").read().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]
    assert "epoch   2/2" in proc.stderr  # the progress line
    assert (tmp_path / "figures" / "history.png").stat().st_size > 0


def test_flagfile_sweep_skips_finished_members(tmp_path):
    flagfile = tmp_path / "sweep.flags"
    flagfile.write_text("\n".join(["--model=mlp", "--model_arg=units=8", "--sweep=num_layers=0:2",
                                   "--dataset=synthetic_bars", "--epochs=1", "--batch_size=512",
                                   "--num_devices=1", "--early_stopping", "--es_patience=5",
                                   "--es_restore_best_weights", f"--workdir={tmp_path / 'w'}"]))
    train(f"--flagfile={flagfile}")
    rows = list(csv.DictReader(open(tmp_path / "w" / "summary.csv")))
    assert [r["num_layers"] for r in rows] == ["0", "1"]
    assert (tmp_path / "w" / "figures" / "sweep.png").exists()
    assert "| num_layers |" in open(tmp_path / "w" / "summary.md").read()
    member = tmp_path / "w" / "num_layers_1" / "results.json"
    mtime = member.stat().st_mtime
    train(f"--flagfile={flagfile}")
    assert member.stat().st_mtime == mtime  # finished member not retrained


@pytest.mark.parametrize(
    "flag, needle",
    [("--batch_size=abc", "--batch_size"), ("--validation=foo", "--validation=foo: must be"),
     ("--model=nope", "--model=nope: unknown model"), ("--sweep=num_layers", "sweep must look like"),
     ("--model_arg=features", "--model_arg=features: must be name=value"),
     ("--platform=fpga", "--platform=fpga: must be cpu, gpu or tpu"),
     ("--es_mode=up", "--es_mode=up: must be one of"),
     ("--dataset=no_such_name", "--dataset=no_such_name: unknown dataset; known:")],
)
def test_bad_flag_is_a_one_line_usage_error(tmp_path, flag, needle):
    extra = ["--early_stopping"] if flag.startswith("--es_") else []
    proc = train(*TINY, f"--workdir={tmp_path}", flag, *extra, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("train.py: error:"), proc.stderr[-2000:]
    assert needle in lines[0] and "Traceback" not in proc.stderr
    assert not os.listdir(tmp_path)  # nothing written


def test_ctrl_c_stops_after_a_checkpoint_and_the_rerun_ends_like_an_uninterrupted_run(tmp_path):
    args = ["--dataset=synthetic_bars", "--model=mlp", "--model_arg=num_layers=2",
            "--model_arg=units=64", "--epochs=40", "--batch_size=32", "--num_devices=1"]
    train(*args, f"--workdir={tmp_path / 'whole'}")
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "train.py"), *args,
           f"--workdir={tmp_path / 'cut'}"]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "cut" / "metrics.jsonl"
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "rerun the same command to resume" in err
    done = len(metrics.read_text().splitlines())
    assert 2 <= done < 40 and not (tmp_path / "cut" / "results.json").exists()
    train(*args, f"--workdir={tmp_path / 'cut'}")
    metric_keys = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")
    read = lambda d: [{k: json.loads(x)[k] for k in metric_keys}
                      for x in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
    assert read("cut") == read("whole")
    whole = json.load(open(tmp_path / "whole" / "results.json"))
    cut = json.load(open(tmp_path / "cut" / "results.json"))
    assert {k: cut[k] for k in ("train_loss", "valid_loss", "epochs_run")} == {
        k: whole[k] for k in ("train_loss", "valid_loss", "epochs_run")}
