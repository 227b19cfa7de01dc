"""The experiments' training helper: a fixed budget, or the lecture's early stopping."""

import json

import pytest

from cnn_jax.experiments.training import load_subsets, train
from tests.numerics import assert_close

MLP = {"num_layers": 1, "units": 32, "activation": "elu"}


@pytest.fixture(scope="module")
def subsets():
    return load_subsets("fashion_mnist", 512, 256)


def _val_losses(workdir):
    with open(workdir / "metrics.jsonl") as f:
        return [json.loads(line)["val_loss"] for line in f]


def test_patience_stops_on_the_test_loss_and_keeps_the_best_epoch(subsets, tmp_path):
    # 512 images, lr 0.03: the test loss turns up within a few epochs, long before 60.
    train_set, test_set = subsets
    _, _, r = train(str(tmp_path), "mlp", MLP, train_set, test_set, epochs=60, patience=2,
                    learning_rate=0.03)
    losses = _val_losses(tmp_path)
    best = min(range(len(losses)), key=losses.__getitem__)
    assert r["status"] == "stopped_early" and r["epochs_run"] == len(losses) < 60
    assert r["best_epoch"] == best + 1 and r["epochs_run"] == best + 1 + 2  # patience 2
    assert all(loss >= losses[best] for loss in losses[best + 1:])
    # The restored weights are the best epoch's: re-evaluated, they give its logged loss.
    assert_close(r["valid_loss"], losses[best], ops=256)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["early_stopping"] == {
        "monitor": "val_loss", "min_delta": 0.0, "patience": 2, "mode": "auto",
        "baseline": None, "restore_best_weights": True, "start_from_epoch": 0}


def test_patience_zero_trains_every_epoch(subsets, tmp_path):
    train_set, test_set = subsets
    _, _, r = train(str(tmp_path), "mlp", MLP, train_set, test_set, epochs=3,
                    learning_rate=0.03)
    assert r["status"] == "completed" and r["epochs_run"] == len(_val_losses(tmp_path)) == 3
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["early_stopping"] is None
