"""The experiment and report scripts through the command line: usage errors and a rebuild."""

import os
import subprocess
import sys

import pytest

from tests.experiments.quick import ROOT, _experiment


def script(name, *args, cwd=ROOT):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT}
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", name), *args],
                          capture_output=True, text=True, env=env, cwd=cwd)


def test_bad_flag_is_one_line_and_exit_2(tmp_path):
    proc = script("sparse_interactions.py", f"--workdir={tmp_path}", "--sizes=8,x")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == ("sparse_interactions.py: error: --sizes=8,x: item 'x' is "
                                   "not an integer; expected an integer")
    assert not os.listdir(tmp_path)  # nothing written


@pytest.mark.parametrize("argv, needle", [
    (["--sizes=16,8"], "--sizes=16,8: item 8 is out of order; expected increasing values"),
    (["--sizes=8"], "--sizes=8: give at least two increasing sizes"),
    (["--kernel=oops"], "--kernel"),
    (["--nope=1"], "nope"),
    ([], "--workdir=: missing"),
])
def test_parse_names_the_bad_flag(argv, needle):
    from cnn_jax.experiments import sparse_interactions

    extra = [] if not argv else ["--workdir=w"]
    with pytest.raises(ValueError, match=needle):
        _experiment.parse(sparse_interactions, ["prog", *extra, *argv])


def test_report_script_rebuilds_from_the_report_folder(tmp_path):
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "x.flags").write_text("--workdir=runs/x\n")
    (tmp_path / "report").mkdir()  # --from_report rebuilds from what the folder holds
    proc = script("report.py", f"--out={tmp_path / 'report'}", f"--root={tmp_path}",
                  "--from_report")
    assert proc.returncode == 0, proc.stderr
    assert "x" in proc.stdout and "not run" in proc.stdout
    assert "**Not run.**" in (tmp_path / "report" / "REPORT.md").read_text()
