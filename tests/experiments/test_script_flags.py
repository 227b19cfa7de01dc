"""Every flag of the ten experiment scripts, given malformed values.

Each bad value must give exit code 2 and exactly one stderr line
``SCRIPT: error: --FLAG=VALUE: ...`` naming the flag, with no traceback, before any data is
loaded, anything is compiled or any file is written (``tests/script_checks.py``: parse plus
the script's whole-configuration check, as its ``main`` does first). Each script's good
configuration (its quick flagfile) must pass the check, so a check that refuses everything
fails here. A limit that only the loaded data can contradict (more examples than a split
whose size is not known beforehand) is run end to end: one line, exit 2, no workdir left.

``python -m tests.experiments.test_script_flags`` lists the cases (``tests/flag_table.py``
prints every script's cases with their outcome).
"""

import os
import re
import subprocess
import sys

import pytest

from tests.data.test_sources import fake_mnist_arrays, write_idx_pair
from tests.script_checks import ROOT, failures, line_ok, walk

CHECKS = {
    **{f"{name}.py": "settings_from_flags" for name in (
        "activation_maps", "dense_vs_conv", "keras_agreement", "parameter_sharing",
        "receptive_fields", "sparse_interactions", "variable_input")},
    "rotation.py": "config_from_flags",
    "equivariance_practice.py": "config_from_flags",
    "report.py": "check_flags",
}
MISSING = "/nonexistent/cnn_jax_test"

# malformed values by kind of flag
COUNT = ("", "x", "1.5", "0", "-1")  # an integer >= 1
NONNEGATIVE = ("", "x", "1.5", "-1")
SEED = ("", "x", "1.5", "-1", "4294967296")
RATE = ("", "x", "nan", "inf", "-inf", "0", "-0.001")
BOOL = ("", "maybe", "2")
SIZES = ("", "x", "1,,2", "1.5", "0", "4,-1")  # layer widths; 8,8 is allowed
SIZES_OR_NONE = ("x", "1,,2", "0", "-1")
COMMON = (("nosuch", "1"), ("flagfile", MISSING))  # an unknown flag; a flagfile not there


def _each(flag, values):
    return [(flag, v) for v in values]


def _dataset(train_max, test_max):
    """--dataset and its example counts (base: fashion_mnist, 60,000 + 10,000 images)."""
    return [*_each("dataset", ("", "no_such_set", "5")),
            *_each("train_examples", (*NONNEGATIVE, str(train_max + 1))),
            *_each("test_examples", (*NONNEGATIVE, str(test_max + 1)))]


def cases(fx) -> dict[str, list[tuple[str, str]]]:
    """{script: [(flag, value)]}: ``--flag=value`` added to the script's quick flagfile."""
    a_file = str(fx / "a_file")
    workdir = _each("workdir", ("", a_file, f"{a_file}/out"))
    images = _dataset(60_000, 10_000)
    out = {
        "activation_maps.py": [
            *workdir, *images, *_each("epochs", COUNT), *_each("patience", NONNEGATIVE),
            *_each("features", SIZES),
            *_each("dense_units", SIZES_OR_NONE), *_each("images", (*COUNT, "257")),
            *_each("maps", (*COUNT, "9")), *_each("seed", SEED), *_each("quick", BOOL)],
        "dense_vs_conv.py": [
            *workdir, *images, *_each("epochs", COUNT), *_each("patience", NONNEGATIVE),
            *_each("mlp_layers", COUNT),
            *_each("mlp_units", COUNT), *_each("features", SIZES),
            *_each("dense_units", SIZES_OR_NONE), *_each("templates", (*COUNT, "33")),
            *_each("seed", SEED), *_each("quick", BOOL)],
        "keras_agreement.py": [
            *workdir, *images,
            *_each("depths", ("", "x", "-1", "1.5", "1,,2", "1,1")),
            *_each("seeds", ("", "x", "-1", "0,,1", "0,0", "4294967296")),
            *_each("units", COUNT), *_each("epochs", COUNT), *_each("patience", NONNEGATIVE),
            *_each("batch_size", COUNT), *_each("ours_dir", ("", a_file)),
            *_each("quick", BOOL)],
        "parameter_sharing.py": [
            *workdir, *images, *_each("epochs", COUNT), *_each("patience", NONNEGATIVE),
            *_each("features", SIZES),
            *_each("dense_units", SIZES_OR_NONE), *_each("max_shift", COUNT),
            *_each("seed", SEED), *_each("quick", BOOL)],
        "receptive_fields.py": [  # base: max_depth 3, size 16, test_examples 64
            *workdir, *images, *_each("max_depth", COUNT), *_each("channels", COUNT),
            *_each("size", ("", "x", "0", "6")), *_each("samples", (*COUNT, "65")),
            *_each("mass", ("", "x", "0", "-0.5", "1.5", "nan", "inf")),
            *_each("train_depth", (*COUNT, "4")), *_each("epochs", COUNT),
            *_each("seed", SEED), *_each("quick", BOOL)],
        "sparse_interactions.py": [  # base: sizes 4,6,8, kernel 3
            *workdir,
            *_each("sizes", ("", "x", "4,,6", "8", "8,6", "4,4", "2,8", "4,1.5")),
            *_each("channels", COUNT), *_each("filters", COUNT), *_each("kernel", COUNT),
            *_each("quick", BOOL)],
        "variable_input.py": [
            *workdir, *images, *_each("epochs", COUNT), *_each("features", SIZES),
            *_each("canvases", ("", "x", "27", "36,,42", "36,36", "42,36", "-1")),
            *_each("heads", ("", "gapp", "gap,gap", "gap,,gmp")), *_each("seed", SEED),
            *_each("quick", BOOL)],
        "rotation.py": [  # base: synthetic_bars (4096 + 1024), n_train 256, n_valid 64
            *workdir, *_each("dataset", ("", "no_such_set")),
            *_each("data_dir", ("", MISSING, a_file)),
            *_each("n_train", (*COUNT, "4096")), *_each("n_valid", (*COUNT, "3841")),
            *_each("n_test", (*COUNT, "4801")), *_each("data_seed", SEED),
            *_each("seeds", ("", "x", "-1", "0,0", "0,,1", "4294967296")),
            *_each("conditions", ("", "sideways", "rotated,rotated", "rotated,,upright")),
            *_each("cnn_features", SIZES), *_each("p4cnn_features", SIZES),
            *_each("epochs", COUNT), *_each("batch_size", COUNT),
            *_each("learning_rate", RATE), *_each("patience", NONNEGATIVE),
            *_each("train", BOOL), *_each("quick", BOOL)],
        "equivariance_practice.py": [  # base: synthetic_bars, n_train 256, n_eval 128
            *workdir, *_each("dataset", ("", "no_such_set")),
            *_each("data_dir", ("", MISSING, a_file)),
            *_each("n_train", (*COUNT, "4097")), *_each("n_eval", (*COUNT, "1025")),
            *_each("models", ("", "resnet", "mlp,mlp", "mlp,,cnn")),
            *_each("mlp_units", COUNT), *_each("cnn_features", SIZES),
            *_each("cnn_dense_units", COUNT), *_each("p4cnn_features", SIZES),
            *_each("sesn_features", SIZES), *_each("sesn_kernel_size", (*COUNT, "4")),
            *_each("sesn_num_scales", COUNT), *_each("sesn_pool", ("", "mean")),
            *_each("shifts", ("", "x", "nan", "0,0", "0,,1")),
            *_each("angles", ("", "x", "inf", "90,90")),
            *_each("zooms", ("", "0", "-1", "x", "1,1")),
            *_each("epochs", COUNT), *_each("batch_size", COUNT),
            *_each("learning_rate", RATE), *_each("seed", SEED),
            *_each("equivariance_batch", COUNT), *_each("equivariance_like_sweeps", BOOL),
            *_each("quick", BOOL)],
        "report.py": [
            *_each("out", ("", a_file, f"{a_file}/report")),
            *_each("root", ("", MISSING, a_file, str(fx / "empty_dir"))),
            *_each("quick", BOOL), *_each("from_report", BOOL)],
    }
    return {script: [*c, *COMMON] for script, c in out.items()}


def fixtures(tmp):
    """Folders and files the path flags point at (outside every case's scratch folder)."""
    fx = tmp / "fixtures"
    (fx / "empty_dir").mkdir(parents=True)
    (fx / "a_file").write_text("x")
    (fx / "repo" / "experiments").mkdir(parents=True)
    (fx / "repo" / "experiments" / "x.flags").write_text("--workdir=runs/x\n")
    return fx


def base(fx):
    """``(script, scratch) -> args``: each script's good configuration, writing under
    ``scratch/new``."""

    def args(script, scratch):
        if script == "report.py":
            return [f"--root={fx / 'repo'}", f"--out={scratch}/new/report"]
        flagfile = os.path.join(ROOT, "experiments", script.replace(".py", "_quick.flags"))
        return [f"--flagfile={flagfile}", f"--workdir={scratch}/new"]

    return args


def defined_flags(script: str) -> set[str]:
    """The flags ``scripts/SCRIPT`` defines: its ``DEFINE_*`` calls, or its experiment's
    ``Settings`` fields and --workdir."""
    text = open(os.path.join(ROOT, "scripts", script)).read()
    names = set(re.findall(r'flags\.DEFINE_\w+\(\s*"(\w+)"', text))
    if not names:
        import dataclasses
        import importlib

        module = importlib.import_module(f"cnn_jax.experiments.{script[:-3]}")
        names = {"workdir", *(f.name for f in dataclasses.fields(module.Settings))}
    return names


@pytest.mark.parametrize("script", sorted(CHECKS))
def test_every_malformed_value_is_one_line_naming_the_flag_before_any_work(tmp_path, script):
    fx = fixtures(tmp_path)
    todo = cases(fx)[script]
    walked = walk(tmp_path, {script: CHECKS[script]}, {script: todo}, base(fx))[script]
    good, bad = walked[0], walked[1:]
    assert good["code"] is None, good["stderr"]  # the walk below cannot pass vacuously
    assert good["compiled"] == 0 and good["loaded"] == 0 and good["files"] == []
    problems = failures(script, bad)
    assert not problems, "\n".join(problems)
    assert defined_flags(script) <= {c["flag"] for c in bad}  # every flag is walked
    assert len(bad) >= (15 if script == "report.py" else 30)


# ----------------------------------------------------------------------------- after loading

UNSIZED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "unsized_run.py")
# (script, the flag to blame, arguments); "cifar10" is answered by the 4096 + 1024 synthetic
# bars (unsized_run.py), whose sizes the checks cannot know before loading
AFTER_LOAD = [
    *[(f"{name}.py", "train_examples", ["--dataset=cifar10", "--train_examples=4097"])
      for name in ("activation_maps", "dense_vs_conv", "keras_agreement", "parameter_sharing",
                   "receptive_fields")],
    ("variable_input.py", "test_examples", ["--dataset=cifar10", "--test_examples=1025"]),
    # a local IDX copy of 300 + 50 images (sizes unknown before reading)
    ("rotation.py", "n_valid", ["--dataset=mnist", "--data_dir={idx}", "--n_train=256",
                                "--n_valid=64"]),
    ("equivariance_practice.py", "n_train", ["--dataset=mnist", "--data_dir={idx}",
                                             "--n_train=400"]),
]


def test_a_limit_only_the_data_can_contradict_is_one_line_and_leaves_no_workdir(tmp_path):
    idx = tmp_path / "idx"
    idx.mkdir()
    write_idx_pair(idx, "train", *fake_mnist_arrays(300, 0))
    write_idx_pair(idx, "t10k", *fake_mnist_arrays(50, 1))
    procs = []
    for script, flag, args in AFTER_LOAD:  # all at once: each process imports JAX
        cwd = tmp_path / script
        cwd.mkdir()
        flagfile = os.path.join(ROOT, "experiments", script.replace(".py", "_quick.flags"))
        argv = [sys.executable, UNSIZED, os.path.join(ROOT, "scripts", script),
                f"--flagfile={flagfile}", f"--workdir={cwd}/new",
                *(a.format(idx=idx) for a in args)]
        env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT}
        procs.append((script, flag, cwd, subprocess.Popen(
            argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)))
    failures = []
    for script, flag, cwd, proc in procs:
        _, err = proc.communicate(timeout=300)
        if proc.returncode != 2 or not line_ok(script, flag, err):
            failures.append(f"{script}: exit {proc.returncode}, stderr {err[-2000:]!r}")
        elif os.listdir(cwd):
            failures.append(f"{script}: left {os.listdir(cwd)}")
    assert not failures, "\n".join(failures)


if __name__ == "__main__":
    import pathlib

    for script, todo in cases(pathlib.Path("FIXTURES")).items():
        print(script, len(todo), "cases:", ", ".join(f"--{f}={v}" for f, v in todo))
