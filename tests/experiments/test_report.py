"""The report writer on hand-made workdirs of every layout (no training)."""

import json
import os

import matplotlib.pyplot as plt
import pytest

from cnn_jax.experiments import report, results


def flagfile(root, name, workdir, *extra):
    os.makedirs(root / "experiments", exist_ok=True)
    (root / "experiments" / f"{name}.flags").write_text(
        "\n".join([f"# {name}", f"--workdir={workdir}", *extra, ""]))


@pytest.fixture
def repo(tmp_path):
    """A repository root with four flagfiles: an experiment, a seed sweep, a run, one not run."""
    root = tmp_path / "repo"
    for name in ("dense_vs_conv", "quickstart", "activation_maps", "dense_vs_conv_quick"):
        flagfile(root, name, f"runs/{name}")
    flagfile(root, "depth_sweep", "runs/depth_sweep", "--sweep=seed=0:2",
             "--sweep=num_layers=0|1|2")  # a grid of 6, of which 4 ran
    exp = root / "runs" / "dense_vs_conv"
    results.write_csv(str(exp), "models.csv", [{"model": "mlp", "params": 407050, "acc": 0.85},
                                               {"model": "cnn", "params": 225034, "acc": 0.9}])
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    results.save_png(fig, str(exp), "figures/weights.png")
    results.write_experiment(
        str(exp), name="dense_vs_conv", title="Dense vs conv", claim="Conv is local.",
        quick=False, finding="The CNN wins with fewer parameters.",
        tables=[("Models", "models.csv")], figures=[("Weights", "figures/weights.png")],
        numbers={"cnn_accuracy": 0.9})
    (exp / "checkpoints" / "3").mkdir(parents=True)
    (exp / "checkpoints" / "3" / "state.json").write_text("{}")
    (exp / "big.csv").write_text("x\n" + "1\n" * (report.MAX_FILE_BYTES // 2 + 1))
    sweep = root / "runs" / "depth_sweep"
    (sweep / "num_layers_0-seed_0").mkdir(parents=True)
    (sweep / "num_layers_0-seed_0" / "results.json").write_text("{}")
    (sweep / "summary.csv").write_text(
        "num_layers,seed,train_loss,train_accuracy,valid_loss,valid_accuracy,best_epoch,"
        "epochs_run,param_count,wall_time,status\n"
        "0,0,0.4,0.86,0.45,0.84,9,14,7850,10.0,stopped_early\n"
        "0,1,0.4,0.86,0.46,0.83,9,14,7850,10.0,stopped_early\n"
        "1,0,0.2,0.93,0.33,0.89,9,14,407050,20.0,stopped_early\n"
        "1,1,0.2,0.93,0.32,0.91,9,14,407050,20.0,stopped_early\n")
    (sweep / "aggregate.csv").write_text(
        "num_layers,valid_accuracy_mean,valid_accuracy_sd,train_loss_mean,train_loss_sd,n\n"
        "0,0.835,0.00707,0.4,0.0,2\n1,0.9,0.01414,0.2,0.0,2\n")
    run = root / "runs" / "quickstart"
    (run / "figures").mkdir(parents=True)
    (run / "results.json").write_text(json.dumps(
        {"model": "cnn", "valid_accuracy": 0.9, "epochs_run": 3, "status": "completed"}))
    (run / "figures" / "history.png").write_bytes(b"\x89PNG")
    return root


def test_collects_each_layout_and_lists_the_missing_as_not_run(repo, tmp_path):
    out = tmp_path / "report"
    status = report.build(str(out), str(repo))
    assert status == {"depth_sweep": "collected", "dense_vs_conv": "collected",
                      "activation_maps": "not run", "quickstart": "collected"}
    # Copies: small files only, no checkpoints, no sweep members, nothing over the limit.
    copied = {os.path.relpath(os.path.join(d, f), out / "dense_vs_conv")
              for d, _, fs in os.walk(out / "dense_vs_conv") for f in fs}
    assert copied == {"experiment.json", "models.csv", "figures/weights.png"}
    assert sorted(os.listdir(out / "depth_sweep")) == ["aggregate.csv", "summary.csv"]
    text = (out / "REPORT.md").read_text()
    # Report order follows the issue (depth sweep first), the rest alphabetically.
    assert text.index("## 1. The lecture's depth sweep") < text.index(
        "## Dense vs conv") < text.index("## activation_maps") < text.index("## Quickstart")
    assert "| sweep: 4 of 6 members |" in text
    assert "Members: 4 finished of the flagfile's 6 (4 in this summary)." in text
    assert "`python scripts/train.py --flagfile=experiments/depth_sweep.flags`" in text
    assert "| 1 | 0.2000 ± 0.0000 | 0.9000 ± 0.0141 | 2 |" in text  # mean ± sd, n
    assert "highest at num_layers=1 (0.9000)" in text
    assert "**Finding.** The CNN wins with fewer parameters." in text
    assert "| cnn | 225034 | 0.9 |" in text
    assert "![Weights](dense_vs_conv/figures/weights.png)" in text
    section = text[text.index("## activation_maps"):text.index("## Quickstart")]
    assert "**Not run.**" in section and "Finding" not in section
    assert "dense_vs_conv_quick" not in text  # quick variants only when asked


def test_an_experiment_run_with_changed_flags_says_so(repo, tmp_path):
    meta = repo / "runs" / "dense_vs_conv" / "experiment.json"
    record = json.loads(meta.read_text())
    record["command"] = ("python scripts/train.py "  # the repo has no scripts/dense_vs_conv.py
                         "--flagfile=experiments/dense_vs_conv.flags --epochs=1")
    meta.write_text(json.dumps(record))
    report.build(str(tmp_path / "report"), str(repo))
    text = (tmp_path / "report" / "REPORT.md").read_text()
    assert "| ran with `--epochs=1` |" in text


def test_rebuilds_from_the_committed_copy_without_workdirs(repo, tmp_path):
    out = tmp_path / "report"
    report.build(str(out), str(repo))
    first = (out / "REPORT.md").read_text()
    import shutil

    shutil.rmtree(repo / "runs")
    status = report.build(str(out), str(repo))
    assert set(status.values()) == {"committed", "not run"}
    assert (out / "REPORT.md").read_text() == first
    assert report.build(str(out), str(repo), from_report=True) == status


def test_quick_reports_only_quick_variants(repo, tmp_path):
    status = report.build(str(tmp_path / "q"), str(repo), quick=True)
    assert status == {"dense_vs_conv_quick": "not run"}


def test_write_experiment_refuses_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        results.write_experiment(str(tmp_path), name="x", title="x", claim="c", quick=True,
                                 finding="f", tables=[("t", "nope.csv")], figures=[],
                                 numbers={})


def test_copies_the_results_beside_a_figure_in_a_subfolder_and_links_its_csv(repo, tmp_path):
    exp = repo / "runs" / "dense_vs_conv"
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    results.save_png(fig, str(exp), "equivariance/figures/shift.png")
    (exp / "equivariance" / "equivariance.csv").write_text("kind,error\nshift,0.0\n")
    (exp / "equivariance" / "equivariance.md").write_text("| kind |\n")
    (exp / "other").mkdir()
    (exp / "other" / "unnamed.csv").write_text("x\n1\n")  # no named file there: not copied
    results.write_experiment(
        str(exp), name="dense_vs_conv", title="Dense vs conv", claim="Conv is local.",
        quick=False, finding="f", tables=[("Models", "models.csv")],
        figures=[("Shift", "equivariance/figures/shift.png")], numbers={})
    out = tmp_path / "report"
    report.build(str(out), str(repo))
    copied = {os.path.relpath(os.path.join(d, f), out / "dense_vs_conv")
              for d, _, fs in os.walk(out / "dense_vs_conv") for f in fs}
    assert copied == {"experiment.json", "models.csv", "figures/weights.png",
                      "equivariance/figures/shift.png", "equivariance/equivariance.csv",
                      "equivariance/equivariance.md"}
    text = (out / "REPORT.md").read_text()
    assert ("More data: [equivariance/equivariance.csv]"
            "(dense_vs_conv/equivariance/equivariance.csv)\n") in text
    assert "([CSV](dense_vs_conv/models.csv))" in text  # a table, not "more data"
    assert "More data: [models.csv]" not in text
