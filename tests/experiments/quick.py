"""Runs an experiment's quick flagfile in-process and builds the report from its workdir."""

import importlib
import os
import shutil
import sys

from cnn_jax.experiments import report

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import _experiment  # noqa: E402


def run_quick(name: str, tmp_path) -> tuple[dict, str]:
    """Runs ``experiments/NAME_quick.flags`` under ``tmp_path`` (as a repository root), then
    ``report.build(..., quick=True)``; checks the contract and returns (record, workdir)."""
    module = importlib.import_module(f"cnn_jax.experiments.{name}")
    flagfile = os.path.join(ROOT, "experiments", f"{name}_quick.flags")
    workdir, settings = _experiment.parse(module, ["prog", f"--flagfile={flagfile}"])
    assert workdir == f"runs/{name}_quick" and settings.quick
    os.makedirs(tmp_path / "experiments", exist_ok=True)
    shutil.copy(flagfile, tmp_path / "experiments")
    record = module.run(str(tmp_path / workdir), settings, command_line="cmd")
    assert record["name"] == name and record["quick"] is True and record["finding"]
    status = report.build(str(tmp_path / "report"), str(tmp_path), quick=True)
    assert status == {f"{name}_quick": "collected"}
    text = (tmp_path / "report" / "REPORT.md").read_text()
    assert record["finding"] in text and "(quick variant)" in text
    for fig in record["figures"]:
        assert os.path.getsize(tmp_path / "report" / f"{name}_quick" / fig["png"]) > 1000
        assert f"]({name}_quick/{fig['png']})" in text
    return record, str(tmp_path / workdir)
