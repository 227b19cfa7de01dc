"""Experiment 8 (equivariance in practice): the quick run end to end."""

import csv
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def script(*args):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "equivariance_practice.py"), *args],
        capture_output=True, text=True, env=env, cwd=ROOT)


def test_quick_run_writes_the_contract(tmp_path):
    proc = script("--flagfile=experiments/equivariance_practice_quick.flags",
                  f"--workdir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.load(open(tmp_path / "experiment.json"))
    assert record["name"] == "equivariance_practice" and record["quick"] is True
    for item in record["tables"]:
        assert (tmp_path / item["csv"]).stat().st_size > 0
    for item in record["figures"]:
        assert (tmp_path / item["png"]).stat().st_size > 0
    rows = list(csv.DictReader(open(tmp_path / "accuracy.csv")))
    models = ("mlp", "cnn", "p4cnn", "sesn")
    assert {(r["model"], r["kind"], float(r["magnitude"])) for r in rows} == {
        (m, k, v) for m in models for k, mags in
        (("shift", (0, 3)), ("rotate", (0, 90)), ("scale", (1, 1.41))) for v in mags}
    assert all(0 <= float(r["accuracy"]) <= 1 for r in rows)
    # every upright score is the same test set, model by model
    upright = {(r["model"], r["kind"]): float(r["accuracy"]) for r in rows
               if float(r["magnitude"]) in (0, 1)}
    for m in models:
        assert upright[(m, "shift")] == upright[(m, "rotate")] == upright[(m, "scale")]
    # the trained P4 CNN's logits are invariant to quarter turns; the CNN's are not
    eq = {(r["model"], r["stage"]): r for r in csv.DictReader(
        open(tmp_path / "equivariance_summary.csv"))}
    assert float(eq[("p4cnn", "logits")]["rotate_90"]) < 1e-4
    assert float(eq[("cnn", "logits")]["rotate_90"]) > 1e-2
    assert record["numbers"]["param_count_mlp"] > record["numbers"]["param_count_sesn"] > 0


def test_unknown_model_is_a_usage_error(tmp_path):
    proc = script(f"--workdir={tmp_path}", "--models=mlp,vit")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "equivariance_practice.py: error: --models=mlp,vit")
