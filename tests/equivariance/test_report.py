"""The equivariance report and its script, end to end on a tiny zoo."""

import csv
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax import equivariance, layers, models
from cnn_jax import equivariance_report as report
from tests.numerics import tolerance

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMALL = {"shift": (0, 1, 2), "rotate": (0.0, 45.0, 90.0), "scale": (0.71, 1.0)}


def test_smooth_images():
    x = report.smooth_images((2, 16, 16, 3), sigma=2.0, seed=1)
    assert x.shape == (2, 16, 16, 3) and x.dtype == np.float32
    # normalised in float64, then each value rounded once to float32
    np.testing.assert_allclose(x.astype(np.float64).std(), 1.0, rtol=tolerance(np.float32, 2))
    rough = report.smooth_images((2, 16, 16, 3), sigma=0.0, seed=1)
    # smoothing: neighbouring pixels correlate strongly, unlike white noise
    corr = lambda a: np.corrcoef(a[:, :, :-1].ravel(), a[:, :, 1:].ravel())[0, 1]
    assert corr(x) > 0.8 and abs(corr(rough)) < 0.2
    with pytest.raises(ValueError, match="shape"):
        report.smooth_images((16, 16, 3))


def test_run_report_writes_table_csv_and_figures(tmp_path):
    subjects = [
        report.Subject("conv", layers.Conv2D(3, 3, padding="circular")),
        report.Subject("p4", layers.LiftingConv(2), group="p4"),
        report.Subject("cnn", models.get("cnn", features=(2,), dense_units=(4,), num_classes=3)),
    ]
    out = report.run_report(str(tmp_path), subjects, image_size=12, magnitudes=SMALL,
                            log=lambda m: None)
    names = sorted(os.listdir(tmp_path))
    assert names == ["equivariance.csv", "equivariance.md", "figures"]
    assert sorted(os.listdir(tmp_path / "figures")) == ["rotate.png", "scale.png", "shift.png",
                                                         "stages_cnn.png"]
    with open(tmp_path / "equivariance.csv") as f:
        rows = list(csv.DictReader(f))
    # conv: 1 stage; p4: 1; cnn: conv_1, pool_1, dense_1, logits -> 6 stages x 8 magnitudes
    assert len(rows) == 6 * 8 == len(out["rows"])
    err = {(r["subject"], r["kind"], r["stage"], float(r["magnitude"])):
           float(r["relative_error"]) for r in rows}
    # theory: exact; in float32 each side sums 3*3*3 products per output in its own order
    assert err[("conv", "shift", "output", 2.0)] < tolerance(np.float32, 2 * 27)
    assert err[("p4", "rotate", "output", 90.0)] < tolerance(np.float32, 2 * 27)
    assert err[("conv", "rotate", "output", 90.0)] > 0.1  # a generic filter is not
    assert err[("cnn", "shift", "logits", 0.0)] == 0.0
    table = out["table"]
    assert "| cnn | pool_1 |" in table and "| cnn | logits |" in table
    assert "| conv | output |" in table


def test_stage_order_is_network_order(key):
    model = models.get("cnn", features=(2, 3), dense_units=(4,), num_classes=3)
    x = jnp.zeros((1, 16, 16, 1))
    params = equivariance.random_parameters(model, x.shape)
    assert report.stage_order(model, params, x) == ["conv_1", "pool_1", "conv_2", "pool_2",
                                                   "dense_1", "logits"]


def test_trained_subject_reads_num_classes(key):
    model = models.get("p4cnn", features=(2,), num_classes=7)
    params = model.init(key, jnp.zeros((1, 8, 8, 1)))["params"]
    subject = report.trained_subject("p4cnn", {"features": (2,)}, params)
    assert subject.module.num_classes == 7 and subject.group == "p4"
    logits, _ = subject.module.apply(subject.params, jnp.ones((1, 8, 8, 1)))
    assert logits.shape == (1, 7)


def run_script(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "equivariance.py"),
                           *args], capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_script_end_to_end_with_checkpoint(tmp_path):
    """The script measures a zoo subject and a trained run's model from its workdir."""
    from cnn_jax.config import TrainConfig
    from cnn_jax.training.checkpoint import save_final_params

    run = tmp_path / "run"
    run.mkdir()
    model = models.get("cnn", features=(2,), dense_units=(4,), num_classes=10)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 12, 12, 1)))
    save_final_params(str(run), variables)  # the files training.fit leaves, as restore reads them
    config = TrainConfig(model="cnn", model_kwargs={"features": (2,), "dense_units": (4,)})
    (run / "config.json").write_text(json.dumps(config.to_dict()))
    (run / "model.json").write_text(json.dumps(
        {"num_classes": 10, "input_shape": [12, 12, 1], "mean": None, "std": None}))
    (run / "results.json").write_text("{}")
    out = tmp_path / "report"
    proc = run_script(f"--workdir={out}", "--only=conv3x3 circular", f"--checkpoint={run}",
                      "--image_size=12", "--shifts=0,1", "--angles=0,90", "--zooms=1.41",
                      "--nofigures")
    assert proc.returncode == 0, proc.stderr
    assert "| conv3x3 circular | output |" in proc.stdout
    assert "| trained cnn | logits |" in proc.stdout
    assert (out / "equivariance.md").exists() and (out / "equivariance.csv").exists()


@pytest.mark.parametrize("args,match", [
    (["--only=nonexistent"], "unknown subject(s) 'nonexistent'"),
    (["--angles=a,b"], "--angles"),
    ([], "--workdir=: missing; this flag is required"),
])
def test_script_usage_errors(tmp_path, args, match):
    workdir = [] if match.startswith("--workdir") else [f"--workdir={tmp_path}"]
    proc = run_script(*workdir, *args)
    assert proc.returncode == 2 and match in proc.stderr


def test_report_measures_sesn_only_where_the_scale_ladder_holds(tmp_path):
    model = models.get("sesn", features=(4, 4), scale_span=2, conv_impl="xla")
    params = equivariance.random_parameters(model, (2, 28, 28, 1), 0)["params"]
    subject = report.trained_subject("sesn", {"features": (4, 4), "scale_span": 2,
                                              "conv_impl": "xla"}, params)
    assert subject.scale_reach == {"lift": 0, "sconv_2": 1}
    out = report.run_report(str(tmp_path), [subject], magnitudes={"scale": (0.71, 1.41)},
                            figures=False, log=lambda _: None)
    errors = {r[3]: r[4] for r in out["rows"] if r[2] == "sconv_2"}
    assert set(errors) == {0.71, 1.41}
    assert max(errors.values()) < 0.1  # 0.4-0.5 with the off-ladder scale counted
