"""End to end: scripts/train.py on a tiny config with synthetic data, a sweep, bad flags."""

import csv
import json
import os
import subprocess
import sys

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
    [("--batch_size=abc", "--batch_size"), ("--validation=foo", "validation"),
     ("--model=nope", "--model must be one of"), ("--sweep=num_layers", "sweep must look like"),
     ("--model_arg=features", "--model_arg must be name=value"), ("--platform=fpga", "--platform"),
     ("--es_mode=up", "early_stopping.mode")],
)
def test_bad_flag_is_a_one_line_usage_error(tmp_path, flag, needle):
    extra = ["--early_stopping"] if flag.startswith("--es_") else []
    proc = train(*TINY, f"--workdir={tmp_path}", flag, *extra, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("train.py: error:"), proc.stderr[-2000:]
    assert needle in lines[0] and "Traceback" not in proc.stderr
