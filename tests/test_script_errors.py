"""Every flag of scripts/benchmark.py and scripts/equivariance.py, given malformed values.

Each bad value must give exit code 2 and exactly one stderr line
``SCRIPT: error: --FLAG=VALUE: ...`` naming the flag, with no traceback, before any data is
loaded, anything is compiled or any file is written. Most cases run in one process per
script (``tests/script_checks.py``: parse + the script's check, as its ``main`` does first);
a few run the real scripts end to end. Each script also gets a good configuration, which
must pass its check, so a check that rejects everything fails here.
"""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from tests.script_checks import failures, line_ok, walk

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "scripts")
CHECKS = {"benchmark.py": "check_flags", "equivariance.py": "settings_from_flags"}


def _fixtures(tmp):
    """Folders and files the path flags point at (outside every case's scratch folder)."""
    os.makedirs(tmp / "fixtures" / "empty_dir")
    (tmp / "fixtures" / "a_file").write_text("x")
    return tmp / "fixtures"


def _trained_runs(fx):
    """Training workdirs for --checkpoint: good, and broken in each way that matters."""
    from cnn_jax.training.checkpoint import save_final_params

    def params(features, dense):
        import jax

        from cnn_jax import models

        model = models.get("cnn", features=features, dense_units=dense, num_classes=10)
        shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x),
                                jax.ShapeDtypeStruct((1, 12, 12, 1), np.float32))["params"]
        return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)

    config = {"model": "cnn", "model_kwargs": {"features": [2], "dense_units": [4]}}
    runs = {}
    for name, cfg, p in [("good", config, params((2,), (4,))),
                         ("other_config", config, params((3,), (4,))),
                         ("unknown_model", {**config, "model": "resnet"}, params((2,), (4,))),
                         ("no_final", config, None), ("bad_json", None, None)]:
        run = fx / f"run_{name}"
        run.mkdir()
        (run / "config.json").write_text("{\"model\": " if cfg is None else json.dumps(cfg))
        (run / "model.json").write_text(json.dumps({"num_classes": 10, "mean": None,
                                                    "std": None}))
        (run / "results.json").write_text("{}")
        if p is not None:
            save_final_params(str(run), p)
        runs[name] = run
    return runs


def _cases(fx, runs):
    """(script, flag, value): ``--flag=value`` added to a good base configuration."""
    missing = "/nonexistent/cnn_jax_test"
    bench = [
        *[("frameworks", v) for v in ("", "ours,,keras", "tensorflow", "1")],
        *[("models", v) for v in ("", "resnet", "mlp,")],
        *[("depths", v) for v in ("", "x", "-1", "1.5", "1,,2", "100000")],
        *[("conv_impl", v) for v in ("", "cudnn", "auto,fast")],
        *[("epochs", v) for v in ("", "x", "1.5", "-1", "1", "100000")],
        *[("batch_size", v) for v in ("", "abc", "0", "-5", "99999999")],
        *[("dataset", v) for v in ("", "no_such_name", "5")],
        *[("limit", v) for v in ("", "x", "-1")],
        *[("seed", v) for v in ("", "x", "-1", "4294967296")],
        *[("num_seeds", v) for v in ("", "x", "1", "-1", "1.5")],
        *[("out", v) for v in ("", str(fx / "empty_dir"), str(fx / "a_file" / "bench"))],
        *[("sweep_dir", v) for v in ("", missing, str(fx / "empty_dir"), str(fx / "a_file"))],
        *[("isolate", v) for v in ("", "maybe", "2")],
        *[("profile", v) for v in ("", "maybe")],
        *[("worker", v) for v in ("", "tensorflow")],
        ("worker_out", str(fx / "w.json")),  # without --worker
        ("nosuch", "1"),  # an unknown flag
        ("flagfile", missing),
    ]
    equiv = [
        *[("workdir", v) for v in ("", str(fx / "a_file"), str(fx / "a_file" / "out"))],
        *[("checkpoint", v) for v in ("", missing, str(fx / "empty_dir"))],
        *[("checkpoint", str(runs[k])) for k in ("other_config", "unknown_model", "no_final",
                                                  "bad_json")],
        ("zoo", "maybe"),
        *[("only", v) for v in ("", "nonexistent")],
        *[("image_size", v) for v in ("", "x", "0", "-3", "5000", "5")],
        *[("channels", v) for v in ("", "x", "0", "1000")],
        *[("batch", v) for v in ("", "x", "0", "-1", "100000")],
        *[("sigma", v) for v in ("", "abc", "-1", "nan", "inf")],
        *[("seed", v) for v in ("", "x", "-1", "4294967296")],
        *[("shifts", v) for v in ("", "a", "1,,2", "nan")],
        *[("angles", v) for v in ("", "x", "inf")],
        *[("zooms", v) for v in ("", "0", "-1", "x")],
        *[("conv_impl", v) for v in ("", "cudnn")],
        ("figures", "maybe"),
        ("nosuch", "1"),
    ]
    return [("benchmark.py", f, v) for f, v in bench] + [("equivariance.py", f, v)
                                                         for f, v in equiv]


def _base(script, scratch, runs):
    if script == "benchmark.py":
        return ["--frameworks=ours", "--models=mlp,cnn", "--depths=0,2", "--epochs=2",
                "--dataset=synthetic_bars", f"--out={scratch}/new/bench"]
    # image_size 5 is too small for the CNN; the base uses --only=cnn so that case traces it
    return [f"--workdir={scratch}/new", "--only=cnn", "--image_size=12", "--nofigures",
            f"--checkpoint={runs['good']}"]


@pytest.fixture(scope="module")
def walked(tmp_path_factory):
    """Runs every case (and one good configuration per script) through the scripts' checks."""
    tmp = tmp_path_factory.mktemp("script_errors")
    fx = _fixtures(tmp)
    runs = _trained_runs(fx)
    cases = {s: [] for s in CHECKS}
    for script, flag, value in _cases(fx, runs):
        cases[script].append((flag, value))
    return walk(tmp, CHECKS, cases, lambda script, scratch: _base(script, scratch, runs))


@pytest.mark.parametrize("script", sorted(CHECKS))
def test_a_good_configuration_passes_the_check_without_work(walked, script):
    good = walked[script][0]
    assert good["flag"] is None
    assert good["code"] is None, good["stderr"]
    assert good["compiled"] == 0 and good["loaded"] == 0 and good["files"] == []


@pytest.mark.parametrize("script", sorted(CHECKS))
def test_every_malformed_value_is_one_line_naming_the_flag_before_any_work(walked, script):
    bad = walked[script][1:]
    flags_walked = {c["flag"] for c in bad}
    assert len(bad) >= 40 if script == "benchmark.py" else len(bad) >= 45
    problems = failures(script, bad)
    assert not problems, "\n".join(problems)
    # every flag the script defines is walked (the internal ones too)
    defined = set(re.findall(r'flags\.DEFINE_\w+\(\s*"(\w+)"',
                             open(os.path.join(SCRIPTS, script)).read()))
    assert defined <= flags_walked, defined - flags_walked


def _run(script, *args, cwd):
    return subprocess.Popen([sys.executable, os.path.join(SCRIPTS, script), *args],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT})


def test_end_to_end_the_real_scripts_exit_2_with_one_line_and_write_nothing(tmp_path):
    # four processes (each imports jax): a check of our own, one of absl's, a traced one
    # and a checkpoint one; the walk above covers the rest in-process
    workdir = tmp_path / "new"
    cases = [
        ("benchmark.py", "epochs", ["--epochs=1", f"--out={workdir}/b"]),
        ("benchmark.py", "isolate", ["--isolate=maybe"]),
        ("equivariance.py", "image_size", [f"--workdir={workdir}", "--only=cnn",
                                           "--image_size=5"]),
        ("equivariance.py", "checkpoint", [f"--workdir={workdir}", "--checkpoint=/nonexistent"]),
    ]
    procs = [(s, f, _run(s, *a, cwd=tmp_path)) for s, f, a in cases]  # all at once
    for script, flag, proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 2 and line_ok(script, flag, err), (script, flag, err)
    assert os.listdir(tmp_path) == []  # no workdir, no report, nothing in the cwd
