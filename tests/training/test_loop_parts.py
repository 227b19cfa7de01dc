"""The pieces of ``fit`` around the epoch programs, each against a hand-made case: loading the
configured data, the device mesh, the evaluation batch, saved configurations, restarting,
and the progress line."""

import json
import os
import sys

import flax
import jax
import numpy as np
import pytest

from cnn_jax import models
from cnn_jax.config import TrainConfig
from cnn_jax.data import sources
from cnn_jax.training import loop
from tests.data.test_sources import fake_mnist_arrays, write_idx_pair


def test_load_data_holds_out_the_configured_fraction_with_the_configured_seed():
    config = TrainConfig(dataset="synthetic_bars", validation="holdout",
                         validation_fraction=0.25, seed=7, standardize=True, num_devices=1)
    data = loop.load_data(config, loop.make_mesh(1))
    whole = sources.load("synthetic_bars", "train")  # 4096 bars, 1024 per class
    held = sources.holdout_mask(whole.labels, 0.25, 7)
    assert data.num_classes == 4 and held.sum() == 4 * 256
    np.testing.assert_array_equal(data.valid_labels, whole.labels[held])
    np.testing.assert_array_equal(data.valid_images, whole.images[held])
    np.testing.assert_array_equal(data.train_labels, whole.labels[~held])
    # another seed holds out other examples (the negative control of the seed's wiring)
    assert not np.array_equal(held, sources.holdout_mask(whole.labels, 0.25, 8))
    # standardisation statistics are the training part's, per channel
    pixels = whole.images[~held].reshape(-1, 1) / 255.0
    np.testing.assert_array_equal(data.mean, pixels.mean(0).astype(np.float32))
    np.testing.assert_array_equal(data.std, pixels.std(0).astype(np.float32))


def test_load_data_reads_data_dir_and_validates_on_its_test_split(tmp_path):
    train, test = fake_mnist_arrays(7, 0), fake_mnist_arrays(3, 1)
    write_idx_pair(tmp_path, "train", *train)
    write_idx_pair(tmp_path, "t10k", *test)
    config = TrainConfig(dataset="mnist", data_dir=str(tmp_path), num_devices=1)
    data = loop.load_data(config, loop.make_mesh(1))
    np.testing.assert_array_equal(data.train_images[..., 0], train[0])
    np.testing.assert_array_equal(data.valid_images[..., 0], test[0])
    np.testing.assert_array_equal(data.valid_labels, test[1])
    assert data.num_classes == 10 and data.mean is None and data.std is None


def test_make_mesh_takes_the_first_devices_or_all():
    devices = jax.devices()
    assert len(devices) >= 4, "tests/conftest.py sets 4 host devices"
    assert list(loop.make_mesh(2).devices) == devices[:2]
    assert list(loop.make_mesh(0).devices) == devices
    assert list(loop.make_mesh().devices) == devices  # the default: every device
    assert loop.make_mesh(3).axis_names == ("batch",)
    assert list(loop.make_mesh(len(devices)).devices) == devices
    with pytest.raises(ValueError, match=f"num_devices={len(devices) + 1} but only "
                                         f"{len(devices)} devices"):
        loop.make_mesh(len(devices) + 1)


@pytest.mark.parametrize("batch, devices, expected",
                         [(256, 1, 256), (256, 4, 256), (10, 4, 12), (9, 4, 12), (3, 2, 4)])
def test_eval_batch_is_the_training_batch_rounded_up_to_the_devices(batch, devices, expected):
    assert loop.eval_batch_size(batch, loop.make_mesh(devices)) == expected


def test_saved_config_fills_new_fields_and_returns_unreadable_ones_as_saved(tmp_path):
    assert loop.saved_config(str(tmp_path)) is None
    d = TrainConfig(seed=5).to_dict()
    del d["precision"]  # a config.json written before the field existed
    (tmp_path / "config.json").write_text(json.dumps(d))
    assert loop.saved_config(str(tmp_path)) == TrainConfig(seed=5).to_dict()
    odd = {**d, "colour": "red"}  # no such field: kept as it is, for the diff to name
    (tmp_path / "config.json").write_text(json.dumps(odd))
    assert loop.saved_config(str(tmp_path)) == odd


def test_discard_run_removes_the_run_files_only(tmp_path):
    for name in loop.RUN_FILES:
        if "." in name:
            (tmp_path / name).write_text("{}")
        else:
            (tmp_path / name / "x").mkdir(parents=True)
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "other").mkdir()
    loop.discard_run(str(tmp_path), keep=("seeds_checkpoints", "final"))
    assert sorted(os.listdir(tmp_path)) == ["final", "notes.txt", "other", "seeds_checkpoints"]
    loop.discard_run(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["notes.txt", "other"]
    loop.discard_run(str(tmp_path))  # nothing left to discard: no error


def test_progress_line():
    row = {"epoch": 2, "loss": 0.51234, "accuracy": 0.8, "val_loss": 0.6, "val_accuracy": 0.75,
           "samples_per_s": 12345.6, "epoch_time": 3.0}
    history = [{**row, "epoch": e, "epoch_time": t}
               for e, t in zip(range(1, 8), (9.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0))]
    # ETA: the mean of the last 5 epoch times (4 s) times the 93 epochs left, in minutes
    assert loop._progress(history, 100) == (
        "epoch   7/100  loss 0.5123  acc 0.8000  val_loss 0.6000  val_acc 0.7500  "
        "12,346 samples/s  6.00s  ETA <= 6.2 min")


def test_load_data_logs_what_it_loaded_and_places_it_on_the_mesh(caplog):
    config = TrainConfig(dataset="synthetic_bars", validation="holdout",
                         validation_fraction=0.25, seed=7, num_devices=4)
    mesh = loop.make_mesh(4)
    with caplog.at_level("INFO", logger=loop.log.name):
        data = loop.load_data(config, mesh)
    assert caplog.messages == ["data: synthetic_bars train 3072, valid 1024 "
                               "(synthetic|holdout(fraction=0.25, seed=7):train)"]
    for array in (data.train_images, data.train_labels, data.valid_images, data.valid_labels):
        assert array.sharding.mesh.devices.size == 4 and array.sharding.is_fully_replicated


def test_discard_run_logs_the_workdir(tmp_path, caplog):
    with caplog.at_level("INFO", logger=loop.log.name):
        loop.discard_run(str(tmp_path))
    assert caplog.messages == [f"{tmp_path}: previous run discarded (restart)"]


def test_write_start_records_classes_input_shape_and_statistics(tmp_path):
    images = np.zeros((6, 4, 3, 2), np.uint8)
    labels = np.zeros(6, np.int32)
    for standardize in (False, True):
        data = loop.DeviceData.from_arrays(images + 51 * np.arange(2, dtype=np.uint8), labels,
                                           images[:2], labels[:2], 5, standardize=standardize)
        config = TrainConfig(standardize=standardize)
        loop.write_start(str(tmp_path), config, data)
        model = json.load(open(tmp_path / "model.json"))
        # per-channel statistics of the training images as float32 (channel 1 is 51/255)
        f32 = lambda *v: [float(np.float32(x)) for x in v]  # noqa: E731
        assert model == {"num_classes": 5, "input_shape": [4, 3, 2],
                         "mean": f32(0.0, 0.2) if standardize else None,
                         "std": f32(1e-6, 1e-6) if standardize else None}
        assert json.load(open(tmp_path / "config.json")) == config.to_dict()


def test_run_results_status_and_epochs():
    from cnn_jax.config import EarlyStoppingConfig
    from cnn_jax.training.early_stopping import EarlyStopping

    evals = dict(train_eval={"loss": 0.5, "accuracy": 0.75},
                 valid_eval={"loss": 0.25, "accuracy": 0.5}, wall_time=3.0, devices=2)
    history = [{}] * 4
    plain = loop.run_results(TrainConfig(model="cnn"), None, history, "completed", "",
                             param_count=7, restores=False, **evals)
    assert plain["status"] == "completed" and plain["epochs_run"] == 4
    assert (plain["best_epoch"], plain["stopped_epoch"], plain["final_weights_epoch"]) == (4, 0, 4)
    assert {k: plain[k] for k in ("model", "param_count", "train_loss", "valid_accuracy",
                                  "wall_time", "devices")} == {
        "model": "cnn", "param_count": 7, "train_loss": 0.5, "valid_accuracy": 0.5,
        "wall_time": 3.0, "devices": 2}
    stopper = EarlyStopping(EarlyStoppingConfig(patience=1, restore_best_weights=True))
    for epoch, loss in enumerate([1.0, 0.5, 0.7]):  # best epoch 2, stops at epoch 3
        stopper.update(epoch, {"val_loss": loss})
    assert stopper.stop_training
    stopped = loop.run_results(TrainConfig(), stopper, history, "completed", "",
                               param_count=7, restores=True, **evals)
    assert stopped["status"] == "stopped_early"
    assert (stopped["best_epoch"], stopped["stopped_epoch"], stopped["final_weights_epoch"]) == (
        2, 3, 2)
    bad = loop.run_results(TrainConfig(), stopper, history, "non_finite_loss", "nan",
                           param_count=7, restores=True, **evals)
    assert bad["status"] == "non_finite_loss" and bad["message"] == "nan"


def test_barrier_syncs_only_when_several_processes_run(monkeypatch):
    from jax.experimental import multihost_utils

    synced = []
    monkeypatch.setattr(multihost_utils, "sync_global_devices", synced.append)
    loop.barrier("fit: one")  # one process: nothing to wait for
    assert synced == []
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    loop.barrier("fit: two")
    assert synced == ["fit: two"]


def test_tensorboard_without_tensorboardx_warns_once_and_writes_nothing(tmp_path, monkeypatch,
                                                                         caplog):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # its import raises ImportError
    caplog.set_level("WARNING", logger=loop.log.name)
    loop.TensorBoard(None).close()  # another process's: no folder, no warning
    assert caplog.messages == []
    board = loop.TensorBoard(str(tmp_path / "tensorboard"))
    board.epoch({"epoch": 1, "loss": 0.5, "accuracy": 0.8, "val_loss": 0.6,
                 "val_accuracy": 0.7, "epoch_time": 1.0, "samples_per_s": 10.0}, 0, None)
    board.close()
    assert caplog.messages == ["tensorboardX is not installed: no TensorBoard events (pip "
                               "install tensorboardX); metrics.jsonl has every epoch"]
    assert not (tmp_path / "tensorboard").exists()


def test_model_arguments_refuse_precision_set_twice():
    config = TrainConfig(model="cnn", model_kwargs={"precision": "high"}, precision="high")
    with pytest.raises(ValueError) as err:
        loop.model_arguments(config)
    assert str(err.value) == ("precision='high' and model_kwargs precision='high': set it in "
                              "one place (the precision field)")


def test_model_arguments_add_precision_unless_default(monkeypatch):
    config = TrainConfig(model="cnn", model_kwargs={"features": (4,)}, precision="highest")
    assert loop.model_arguments(config) == {"features": (4,), "precision": "highest"}
    assert loop.model_arguments(config.replace(precision="default")) == {"features": (4,)}

    class NoPrecision(flax.linen.Module):  # a model without a precision argument
        num_classes: int = 10

        def __call__(self, x, *, train=False):
            return x.reshape(x.shape[0], -1)[:, : self.num_classes], {}

    monkeypatch.setitem(models.registry._MODELS, "no_precision", NoPrecision)
    plain = TrainConfig(model="no_precision", precision="high")
    with pytest.raises(ValueError) as err:
        loop.model_arguments(plain)
    assert str(err.value) == ("precision='high': model 'no_precision' has no precision "
                              "argument; use precision='default'")
    assert loop.model_arguments(plain.replace(precision="default")) == {}
