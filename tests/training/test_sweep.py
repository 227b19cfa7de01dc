"""Sweeps: the value syntax, the grid, member folders, the seed aggregate, a tiny run."""

import csv
import math
import statistics

import pytest

from cnn_jax.config import TrainConfig
from cnn_jax.training import sweep


@pytest.mark.parametrize(("spec", "name", "values"), [
    ("num_layers=0:25", "num_layers", list(range(25))),
    ("num_layers=2:10:4", "num_layers", [2, 6]),
    ("learning_rate=lin:0.1:0.5:5", "learning_rate", [0.1, 0.2, 0.3, 0.4, 0.5]),
    ("learning_rate=log:1e-4:1e-1:4", "learning_rate", [1e-4, 1e-3, 1e-2, 1e-1]),
    ("learning_rate=1e-3,1e-2", "learning_rate", [1e-3, 1e-2]),
    ("features=(8,16)|(16,32)", "features", [(8, 16), (16, 32)]),
    ("features=(8,)|(16, 32, 64)", "features", [(8,), (16, 32, 64)]),
    ("activation=elu|relu", "activation", ["elu", "relu"]),
    ("standardize=True,False", "standardize", [True, False]),
    ("seed=3", "seed", [3]),
])
def test_parse_sweep_forms(spec, name, values):
    got_name, got = sweep.parse_sweep(spec)
    assert got_name == name and len(got) == len(values)
    for g, v in zip(got, values):
        assert type(g) is type(v)
        if isinstance(v, float):
            assert math.isclose(g, v, rel_tol=1e-12)  # linspace/geomspace round in float64
        else:
            assert g == v


@pytest.mark.parametrize("spec", [
    "num_layers", "=1,2", "num_layers=", "num_layers=0:x", "num_layers=5:0",
    "lr=log:0:1:3", "lr=lin:0:1", "lr=lin:0:1:0", "features=(8,16", "x=1,,2", "a b=1",
    "lr=1e-3+", "x=1|",
])
def test_parse_sweep_rejects_malformed_specs_with_one_line(spec):
    with pytest.raises(ValueError) as e:
        sweep.parse_sweep(spec)
    message = str(e.value)
    assert "\n" not in message
    assert "START:STOP" in message or message == "the range has no values"


def test_check_axes_accepts_fields_and_model_arguments_only():
    config = TrainConfig(model="mlp")
    sweep.check_axes(config, [("num_layers", [0]), ("seed", [0]), ("learning_rate", [1e-3])])
    with pytest.raises(ValueError, match="'widht' is neither a config field"):
        sweep.check_axes(config, [("widht", [1])])
    with pytest.raises(ValueError, match="'num_classes' is neither"):  # set by the data
        sweep.check_axes(config, [("num_classes", [3])])
    with pytest.raises(ValueError, match="swept twice"):
        sweep.check_axes(config, [("seed", [0]), ("seed", [1])])


def test_members_are_the_grid_product_first_axis_outermost(tmp_path):
    grid = sweep.members([("seed", [0, 1]), ("num_layers", [0, 1, 2])])
    assert grid == [{"seed": s, "num_layers": n} for s in (0, 1) for n in (0, 1, 2)]
    assert sweep.member_dir("w", {"seed": 0, "num_layers": 3}) == "w/seed_0-num_layers_3"
    assert sweep.member_dir("w", {"features": (8, 16)}) == "w/features_8x16"


def test_aggregate_is_mean_and_sample_sd_over_seeds():
    rows = [{"num_layers": d, "seed": s, **{m: float(10 * d + s * s) for m in sweep.METRICS}}
            for d in (0, 1) for s in (0, 1, 2)]
    rows.append({"num_layers": 2, "seed": 0, **{m: 7.0 for m in sweep.METRICS}})
    agg = sweep.aggregate(rows, ["num_layers", "seed"])
    assert [a["num_layers"] for a in agg] == [0, 1, 2] and [a["n"] for a in agg] == [3, 3, 1]
    for a, d in zip(agg[:2], (0, 1)):
        values = [10 * d + s * s for s in (0, 1, 2)]  # independent reference: statistics
        assert a["valid_loss_mean"] == pytest.approx(statistics.mean(values), rel=1e-12)
        assert a["valid_loss_sd"] == pytest.approx(statistics.stdev(values), rel=1e-12)
    assert agg[2]["valid_loss_mean"] == 7.0 and math.isnan(agg[2]["valid_loss_sd"])


def test_grid_run_writes_rows_aggregate_and_figure(tmp_path, tiny_data, monkeypatch):
    config = TrainConfig(model="mlp", model_kwargs={"units": 4}, dataset="unused", epochs=1,
                         batch_size=100, num_devices=1, checkpoint_every=0)
    axes = [("num_layers", [0, 1]), ("seed", [0, 1])]
    monkeypatch.setattr(sweep, "load_data", lambda *a, **k: tiny_data)
    rows = sweep.run_sweep(config, axes, str(tmp_path))
    assert [(r["num_layers"], r["seed"]) for r in rows] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert rows[0]["valid_loss"] != rows[1]["valid_loss"]  # the seed reached the member
    summary = list(csv.DictReader(open(tmp_path / "summary.csv")))
    assert [(r["num_layers"], r["seed"]) for r in summary] == [("0", "0"), ("0", "1"),
                                                                ("1", "0"), ("1", "1")]
    agg = list(csv.DictReader(open(tmp_path / "aggregate.csv")))
    assert [(a["num_layers"], a["n"]) for a in agg] == [("0", "2"), ("1", "2")]
    expected = statistics.mean([rows[0]["valid_loss"], rows[1]["valid_loss"]])
    assert float(agg[0]["valid_loss_mean"]) == pytest.approx(expected, rel=1e-6)  # 7 digits
    assert (tmp_path / "figures" / "sweep.png").stat().st_size > 10_000
    assert (tmp_path / "num_layers_1-seed_0" / "results.json").exists()
    assert "Mean and sample sd over seeds" in (tmp_path / "summary.md").read_text()


def test_summary_holds_members_further_on_that_an_earlier_run_finished(tmp_path, tiny_data,
                                                                        monkeypatch):
    """A sub-grid run first, then the whole grid interrupted after its first member: the
    summary has that member and the later one finished before (not one of another config)."""
    config = TrainConfig(model="mlp", model_kwargs={"units": 4}, dataset="unused", epochs=1,
                         batch_size=100, num_devices=1, checkpoint_every=0)
    monkeypatch.setattr(sweep, "load_data", lambda *a, **k: tiny_data)
    later = sweep.run_sweep(config, [("seed", [0]), ("num_layers", [2])], str(tmp_path))
    # a finished member of another config in the grid's folder is not summarised
    sweep.run_sweep(config.replace(epochs=2), [("seed", [1]), ("num_layers", [2])],
                    str(tmp_path))
    real_fit, calls = sweep.fit, []

    def fit_once(*args, **kwargs):  # the second member is interrupted (Ctrl-C)
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(sweep, "fit", fit_once)
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(config, [("seed", [0, 1]), ("num_layers", [0, 1, 2])], str(tmp_path))
    summary = list(csv.DictReader(open(tmp_path / "summary.csv")))
    assert [(r["seed"], r["num_layers"]) for r in summary] == [("0", "0"), ("0", "2")]
    row = next(r for r in summary if (r["seed"], r["num_layers"]) == ("0", "2"))
    assert float(row["valid_loss"]) == pytest.approx(later[0]["valid_loss"], rel=1e-6)  # 7 digits
