"""The training loop: compile-once, partial batches, determinism, resume, errors, sharding."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import cnn_jax
from cnn_jax import models
from cnn_jax.config import ConfigError, EarlyStoppingConfig, TrainConfig
from cnn_jax.training import DeviceData, fit, loop, make_mesh, steps
from cnn_jax.training.loop import load_data
from tests.numerics import assert_close

CFG = TrainConfig(model="mlp", model_kwargs={"num_layers": 1, "units": 16}, batch_size=64,
                  epochs=4, num_devices=1, seed=3)


def history(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    return [{k: r[k] for k in ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")}
            for r in rows]


def test_train_step_is_traced_once_for_all_epochs(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setattr(steps, "train_step", chex.assert_max_traces(steps.train_step, n=1))
    # evaluation compiles once per dataset shape: validation, then train for the final report.
    monkeypatch.setattr(steps, "eval_step", chex.assert_max_traces(steps.eval_step, n=2))
    try:
        r = fit(CFG.replace(epochs=3), str(tmp_path), data=tiny_data)
    finally:
        chex.clear_trace_counter()
    assert r["epochs_run"] == 3


def test_masked_partial_batch_equals_training_on_the_real_examples_only(key):
    model = models.get("mlp", num_layers=1, units=8, num_classes=3)
    tx = optax.sgd(0.1)
    state = steps.create_train_state(model, tx, key, (4, 4, 1))
    x = jax.random.normal(key, (5, 4, 4, 1))
    y = jnp.array([0, 1, 2, 1, 0])
    padded = {"image": jnp.concatenate([x, jnp.zeros((3, 4, 4, 1))]),
              "label": jnp.concatenate([y, jnp.zeros(3, jnp.int32)]),
              "mask": jnp.arange(8) < 5}
    masked_state, sums = steps.train_step(state, padded, key)
    exact_state, _ = steps.train_step(state, {"image": x, "label": y, "mask": jnp.ones(5, bool)},
                                      key)
    # Each gradient entry of the MLP (16 -> 8 -> 3) sums <= 8 examples of chains of <= 16 + 8 +
    # 3 products; then the SGD update. Per parameter array, relative to its largest entry
    # (a bias that started at 0 is all update): the two sides differ only in summation order.
    unmasked_state, _ = steps.train_step(state, {**padded, "mask": jnp.ones(8, bool)}, key)
    ops = 2 * (8 + 16 + 8 + 3 + 2)
    leaves = jax.tree_util.tree_leaves_with_path(masked_state.params)
    for (path, got), want, wrong in zip(leaves, jax.tree.leaves(exact_state.params),
                                        jax.tree.leaves(unmasked_state.params)):
        bound = assert_close(got, want, ops=ops, err_msg=jax.tree_util.keystr(path))
        # control: counting the 3 padding rows moves every array far outside that bound
        assert np.abs(np.asarray(wrong) - np.asarray(want)).max() > 100 * bound, path
    assert float(sums["count"]) == 5


def test_same_config_same_metrics_bit_for_bit(tiny_data, tmp_path):
    a = fit(CFG, str(tmp_path / "a"), data=tiny_data)
    b = fit(CFG, str(tmp_path / "b"), data=tiny_data)
    assert history(tmp_path / "a") == history(tmp_path / "b")
    assert a["valid_loss"] == b["valid_loss"]
    c = fit(CFG.replace(seed=4), str(tmp_path / "c"), data=tiny_data)
    assert c["valid_loss"] != a["valid_loss"]


def test_results_files_and_early_stopping_restores_best_epoch(tiny_data, tmp_path):
    es = EarlyStoppingConfig(patience=1, restore_best_weights=True, min_delta=0.05)
    cfg = CFG.replace(epochs=30, early_stopping=es, learning_rate=3e-3)
    r = fit(cfg, str(tmp_path), data=tiny_data)
    h = history(tmp_path)
    assert r["status"] == "stopped_early" and r["stopped_epoch"] == len(h) < 30
    best = min(range(len(h)), key=lambda i: h[i]["val_loss"])
    # The restored weights are those of the best epoch (the ones with lowest val_loss up to
    # min_delta): evaluating them again reproduces that epoch's logged validation loss.
    # the same compiled evaluation of the same weights on one machine: bit for bit
    assert h[r["best_epoch"] - 1]["val_loss"] == r["valid_loss"]
    assert h[r["best_epoch"] - 1]["val_loss"] <= h[best]["val_loss"] + 0.05
    for name in ("config.json", "results.json", "figures/history.png", "final"):
        assert os.path.exists(tmp_path / name), name
    assert json.load(open(tmp_path / "config.json")) == cfg.to_dict()
    assert r["param_count"] == 64 * 16 + 16 + 16 * 2 + 2


def test_finished_run_is_returned_not_retrained(tiny_data, tmp_path, caplog):
    first = fit(CFG, str(tmp_path), data=tiny_data)
    mtime = os.path.getmtime(tmp_path / "metrics.jsonl")
    with caplog.at_level("INFO", logger="cnn_jax.training.loop"):
        assert fit(CFG, str(tmp_path), data=tiny_data) == first
    assert caplog.messages == [f"{tmp_path}: finished already (completed)"]
    assert os.path.getmtime(tmp_path / "metrics.jsonl") == mtime
    with pytest.raises(ValueError, match=r"another configuration \(saved -> new: "
                                         r"model_kwargs.units: 16 -> 8; seed: 3 -> 9\); use a "
                                         r"new workdir, or restart=True \(--restart\) to "
                                         r"discard the old run$"):
        fit(CFG.replace(seed=9, units=8), str(tmp_path), data=tiny_data)
    # restart: the old run's files go, the new configuration trains from scratch.
    again = fit(CFG.replace(seed=9), str(tmp_path), data=tiny_data, restart=True)
    assert json.load(open(tmp_path / "config.json"))["seed"] == 9
    assert again["valid_loss"] != first["valid_loss"] and len(history(tmp_path)) == 4


def test_non_finite_loss_stops_with_a_message_naming_the_epoch(tiny_data, tmp_path, caplog):
    jax.config.update("jax_debug_nans", False)  # this run produces NaN on purpose
    cfg = CFG.replace(optimizer="sgd", learning_rate=1e30, epochs=5)
    with caplog.at_level("ERROR", logger="cnn_jax.training.loop"):
        r = fit(cfg, str(tmp_path), data=tiny_data)
    assert r["status"] == "non_finite_loss"
    assert f"at epoch {r['epochs_run']}" in r["message"]
    assert r["epochs_run"] < 5
    assert caplog.messages == [r["message"]]
    # the epoch that went non-finite is logged too
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert len(rows) == r["epochs_run"] and not np.isfinite(rows[-1]["loss"])


def test_fit_refuses_several_seeds_and_names_fit_seeds(tiny_data, tmp_path):
    with pytest.raises(ValueError) as err:
        fit(CFG.replace(num_seeds=2), str(tmp_path), data=tiny_data)
    assert str(err.value) == ("num_seeds=2: fit trains one seed; training.fit_seeds trains "
                              "several in one program")
    assert not os.listdir(tmp_path)


def test_fit_imports_model_module_and_loads_the_configured_data(tmp_path, monkeypatch, caplog):
    """Without ``data``, fit loads ``config.dataset`` itself (synthetic_bars: 4096 bars of 4
    classes, validated on its test split); ``model_module`` is imported before the model is
    looked up."""
    (tmp_path / "fit_custom_models.py").write_text(textwrap.dedent("""
        from cnn_jax.models import register
        from cnn_jax.models.mlp import MLP

        @register("fit_custom_mlp")
        class CustomMLP(MLP):
            pass
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = TrainConfig(model="fit_custom_mlp", model_module="fit_custom_models",
                      model_kwargs={"num_layers": 1, "units": 32}, dataset="synthetic_bars",
                      batch_size=128, epochs=2, num_devices=1, seed=0)
    loads = []  # fit places the data on its own mesh (not load_data's default: every device)
    monkeypatch.setattr(loop, "load_data", lambda *a: loads.append(a) or load_data(*a))
    mesh = make_mesh(1)
    t0 = time.perf_counter()
    with caplog.at_level("INFO", logger="cnn_jax.training.loop"):
        r = fit(cfg, str(tmp_path / "run"), mesh=mesh)
    elapsed = time.perf_counter() - t0
    assert loads == [(cfg, mesh)]
    assert r["status"] == "completed" and r["message"] == ""
    assert r["backend"] == jax.default_backend() == "cpu"
    rows = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    assert [row["epoch"] for row in rows] == [1, 2]
    for row in rows:
        assert set(row) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy",
                            "epoch_time", "train_time", "samples_per_s"}
        assert 0 < row["train_time"] < row["epoch_time"]  # the epoch adds its validation
        assert row["samples_per_s"] == 4096 / row["train_time"]
    assert sum(row["epoch_time"] for row in rows) < r["wall_time"] < elapsed
    # one progress line per epoch, from that epoch's row
    progress = [m for m in caplog.messages if m.startswith("epoch ")]
    assert progress == [loop._progress(rows[:i], 2) for i in (1, 2)]
    model = json.load(open(tmp_path / "run" / "model.json"))
    assert model["num_classes"] == 4 and model["input_shape"] == [28, 28, 1]
    assert r["devices"] == 1 and r["valid_accuracy"] > 0.5  # 4 classes: chance is 0.25


def test_checkpoint_every_sets_where_an_interrupted_run_resumes(tiny_data, tmp_path, caplog):
    r = fit(CFG.replace(checkpoint_every=0), str(tmp_path / "never"), data=tiny_data)
    assert r["status"] == "completed" and not (tmp_path / "never" / "checkpoints").exists()
    cfg = CFG.replace(epochs=5, checkpoint_every=3)
    whole = fit(cfg, str(tmp_path / "whole"), data=tiny_data)
    # epoch 3 and the last (5) were saved, as 0-based steps
    kept = [int(d) for d in os.listdir(tmp_path / "whole" / "checkpoints") if d.isdigit()]
    assert sorted(kept) == [2, 4]
    asked = []
    with pytest.raises(KeyboardInterrupt, match="interrupted after epoch 4"):
        fit(cfg, str(tmp_path / "cut"), data=tiny_data,
            should_stop=lambda: asked.append(True) or len(asked) == 4)
    with caplog.at_level("INFO", logger="cnn_jax.training.loop"):
        resumed = fit(cfg, str(tmp_path / "cut"), data=tiny_data)
    # the last checkpoint is epoch 3's: epoch 4 runs again, to the same metrics
    assert f"{tmp_path / 'cut'}: resuming after epoch 3" in caplog.messages
    assert history(tmp_path / "cut") == history(tmp_path / "whole")
    assert resumed["valid_loss"] == whole["valid_loss"]


def test_fit_hands_its_configuration_to_the_epoch_and_evaluation_programs(
        tiny_arrays, tmp_path, monkeypatch):
    """The arguments fit traces ``train_epoch`` and ``evaluate`` with (their effects are
    tested where they are implemented: tests/training/test_steps.py, test_epochs.py)."""
    calls = {"train_epoch": [], "evaluate": []}
    for name in calls:
        real = getattr(loop, name)
        monkeypatch.setattr(loop, name, lambda *a, _real=real, _name=name, **kw:
                            calls[_name].append(kw) or _real(*a, **kw))
    mesh = make_mesh(4)
    data = DeviceData.from_arrays(*tiny_arrays, num_classes=2, mesh=mesh, standardize=True)
    cfg = CFG.replace(batch_size=48, drop_remainder=True, loss="keras_categorical_crossentropy",
                      standardize=True, num_devices=4, epochs=2)
    fit(cfg, str(tmp_path), data=data, mesh=mesh, log_steps=True)
    (epoch,) = calls["train_epoch"]  # traced once for both epochs
    assert epoch == dict(batch_size=48, drop_remainder=True, per_step=True, mesh=mesh,
                         loss="keras_categorical_crossentropy", mean=data.mean, std=data.std)
    # validation, then the train set for the final report (eval_batch_size: 48 on 4 devices)
    assert len(calls["evaluate"]) == 2
    for kw in calls["evaluate"]:
        assert kw.pop("apply_fn").__self__.__class__.__name__ == "MLP"
        assert kw == dict(batch_size=48, loss="keras_categorical_crossentropy", mesh=mesh,
                          mean=data.mean, std=data.std)


def test_a_run_that_stopped_before_its_results_were_written_resumes_to_no_more_epochs(
        tiny_data, tmp_path, caplog):
    cfg = CFG.replace(epochs=6, early_stopping=EarlyStoppingConfig(min_delta=10.0, patience=1))
    first = fit(cfg, str(tmp_path), data=tiny_data)
    assert first["status"] == "stopped_early" and first["epochs_run"] == 2
    os.remove(tmp_path / "results.json")  # killed after the last checkpoint, before the end
    with caplog.at_level("INFO", logger="cnn_jax.training.loop"):
        again = fit(cfg, str(tmp_path), data=tiny_data)
    assert f"{tmp_path}: resuming after epoch 2" in caplog.messages
    assert len(history(tmp_path)) == 2
    assert {k: again[k] for k in ("status", "epochs_run", "stopped_epoch", "valid_loss")} == \
        {k: first[k] for k in ("status", "epochs_run", "stopped_epoch", "valid_loss")}


def test_should_stop_interrupts_after_an_epoch_but_never_a_finished_run(tiny_data, tmp_path):
    with pytest.raises(KeyboardInterrupt, match="interrupted after epoch 1$"):
        fit(CFG.replace(epochs=2), str(tmp_path / "asked"), data=tiny_data,
            should_stop=lambda: True)
    asked = []  # True only after the last epoch: the run is complete, so it ends normally
    r = fit(CFG.replace(epochs=2), str(tmp_path / "last"), data=tiny_data,
            should_stop=lambda: asked.append(True) or len(asked) == 2)
    assert r["status"] == "completed" and (tmp_path / "last" / "results.json").exists()


def test_fit_checks_the_model_on_the_data_before_writing_anything(tiny_data, tmp_path):
    """Four 2x2 pools do not fit 8x8 images: a ConfigError naming the argument, found by
    tracing the model on the data's input shape, and an untouched workdir."""
    cfg = CFG.replace(model="cnn", model_kwargs={"features": (4, 4, 4, 4)})
    with pytest.raises(ConfigError, match=r"^model_kwargs.features=\(4, 4, 4, 4\): model 'cnn' "
                                          r"cannot be built with it: ValueError: window"):
        fit(cfg, str(tmp_path / "run"), data=tiny_data)
    assert not (tmp_path / "run").exists()


def test_optimizer_kwargs_reach_the_optimizer(tiny_data, tmp_path):
    plain = fit(CFG, str(tmp_path / "plain"), data=tiny_data)
    no_momentum = fit(CFG.replace(optimizer_kwargs={"b1": 0.0}), str(tmp_path / "b1"),
                      data=tiny_data)
    assert history(tmp_path / "b1")[0]["loss"] != history(tmp_path / "plain")[0]["loss"]
    assert no_momentum["valid_loss"] != plain["valid_loss"]


# min_delta=10: only the first epoch improves val_loss "enough", so the best weights (epoch 1)
# are older than the interruption and must come back from the checkpoint.
@pytest.mark.parametrize("early_stopping", [
    None, EarlyStoppingConfig(min_delta=10.0, patience=20, restore_best_weights=True)],
    ids=["plain", "best_weights"])
def test_interrupted_run_resumes_to_the_results_of_an_uninterrupted_one(
        tiny_data, tmp_path, caplog, early_stopping):
    """In process (the mutation runs see it): ``should_stop`` ends the run after epoch 2,
    with its checkpoint saved; running again resumes at epoch 3 and ends exactly like a run
    that was never interrupted (every epoch's metrics, the final evaluation, the wall time
    counting the epochs before the interruption)."""
    cfg = CFG.replace(epochs=5, early_stopping=early_stopping)
    whole = fit(cfg, str(tmp_path / "whole"), data=tiny_data)
    asked = []

    def stop_after_epoch_2():
        asked.append(True)
        return len(asked) == 2

    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt, match="interrupted after epoch 2"):
        fit(cfg, str(cut), data=tiny_data, should_stop=stop_after_epoch_2)
    assert len(history(cut)) == 2 and not (cut / "results.json").exists()
    first_two = [r["epoch_time"] for r in map(json.loads, open(cut / "metrics.jsonl"))]
    asked.clear()
    with caplog.at_level("INFO", logger="cnn_jax.training.loop"):
        resumed = fit(cfg, str(cut), data=tiny_data,
                      should_stop=lambda: asked.append(True))  # counts epochs, never stops
    assert history(cut) == history(tmp_path / "whole")
    # It resumed (training is deterministic, so a rerun from scratch would log the same
    # metrics): epochs 3-5 ran, and epochs 1-2 kept their rows, timings included.
    assert f"{cut}: resuming after epoch 2" in caplog.messages and len(asked) == 3
    times = [r["epoch_time"] for r in map(json.loads, open(cut / "metrics.jsonl"))]
    assert times[:2] == first_two
    for k in ("status", "train_loss", "valid_loss", "train_accuracy", "valid_accuracy",
              "epochs_run", "best_epoch", "stopped_epoch", "final_weights_epoch", "param_count"):
        assert resumed[k] == whole[k], k
    if early_stopping is not None:  # the final evaluation is of epoch 1's weights
        assert resumed["final_weights_epoch"] == 1
        assert resumed["valid_loss"] == history(cut)[0]["val_loss"] != history(cut)[-1]["val_loss"]
    assert resumed["wall_time"] > sum(first_two)


# The script imports the cnn_jax this test imported (the mutation runs' copy, not the
# installed one), and the tests' data helpers.
RESUME_SCRIPT = textwrap.dedent("""
    import sys
    sys.path[:0] = [{root!r}, {tests!r}]
    from training.conftest import blobs
    from cnn_jax.config import TrainConfig, EarlyStoppingConfig
    from cnn_jax.training import DeviceData, fit, make_mesh
    cfg = TrainConfig(model={model!r}, model_kwargs={kwargs!r}, standardize={std!r},
                      batch_size=32, epochs=12, num_devices=1, seed=5,
                      early_stopping=EarlyStoppingConfig(patience=20, restore_best_weights=True))
    data = DeviceData.from_arrays(*blobs(3000, 0, 12), *blobs(500, 1, 12), num_classes=2,
                                  mesh=make_mesh(1), standardize=cfg.standardize)
    print(fit(cfg, sys.argv[1], data=data)["valid_loss"])
""")


@pytest.mark.parametrize("model, kwargs, std", [
    ("mlp", {"num_layers": 3, "units": 256}, False),
    # BatchNorm statistics, tuples in the arguments, standardisation; ~2 min under load.
    pytest.param("cnn_bn", {"features": (8,), "dense_units": (32,)}, True,
                 marks=pytest.mark.slow),
])
def test_resume_after_kill_ends_with_the_same_metrics(tmp_path, model, kwargs, std):
    script = tmp_path / "run.py"
    script.write_text(RESUME_SCRIPT.format(root=os.path.dirname(os.path.dirname(cnn_jax.__file__)),
                                           tests=os.path.dirname(os.path.dirname(__file__)),
                                           model=model, kwargs=kwargs, std=std))
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
    run = lambda wd: subprocess.run([sys.executable, str(script), str(wd)], env=env,
                                    capture_output=True, text=True, check=True)
    run(tmp_path / "whole")
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "cut")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = tmp_path / "cut" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(metrics.read_text().splitlines())
    assert 3 <= done < 12, f"the kill came too late ({done} epochs written)"
    assert not (tmp_path / "cut" / "results.json").exists()
    run(tmp_path / "cut")
    assert history(tmp_path / "cut") == history(tmp_path / "whole")
    whole = json.load(open(tmp_path / "whole" / "results.json"))
    cut = json.load(open(tmp_path / "cut" / "results.json"))
    for k in ("train_loss", "valid_loss", "train_accuracy", "valid_accuracy", "best_epoch"):
        assert cut[k] == whole[k], k


def test_four_devices_match_one_device(tiny_arrays, tmp_path):
    assert len(jax.devices()) >= 4, "tests/conftest.py sets 4 host devices"
    results = {}
    for n in (1, 4):
        mesh = make_mesh(n)
        data = DeviceData.from_arrays(*tiny_arrays, num_classes=2, mesh=mesh)
        results[n] = fit(CFG.replace(num_devices=n), str(tmp_path / str(n)), data=data,
                         mesh=mesh)
        assert results[n]["devices"] == n
    h1, h4 = history(tmp_path / "1"), history(tmp_path / "4")
    # Not bit-exact: 4 devices sum each batch's gradient in another order. Every step can move
    # the parameters by ~batch_size roundings, and those add up over the steps so far.
    steps_per_epoch = -(-len(tiny_arrays[1]) // CFG.batch_size)
    for a, b in zip(h1, h4):
        ops = a["epoch"] * steps_per_epoch * CFG.batch_size
        assert_close([b["loss"], b["val_loss"]], [a["loss"], a["val_loss"]], ops=ops,
                     dtype=np.float32, err_msg=f"epoch {a['epoch']}")
    assert_close(results[4]["valid_loss"], results[1]["valid_loss"],
                 ops=CFG.epochs * steps_per_epoch * CFG.batch_size, dtype=np.float32)


@pytest.mark.parametrize(
    "change, match",
    [({"batch_size": 0}, "batch_size=0: must be > 0"),
     ({"batch_size": 2.0}, "batch_size=2.0: must be an int"),
     ({"validation": "train"}, "validation='train': must be one of"),
     ({"validation_fraction": 1.5}, r"validation_fraction=1.5: must be in \(0, 1\)"),
     ({"learning_rate": -1.0}, "learning_rate=-1.0: must be > 0"),
     ({"early_stopping": EarlyStoppingConfig(monitor="val_f1")},
      "early_stopping.monitor='val_f1': must be one of the logged metrics"),
     ({"model_kwargs": {"f": object()}}, "model_kwargs.f=<object.*must be None, a bool")],
)
def test_bad_config_values_name_the_field(change, match):
    with pytest.raises(ValueError, match=match):
        CFG.replace(**change)


def test_unknown_model_and_optimizer_are_clear_errors(tiny_data, tmp_path):
    with pytest.raises(ValueError, match="model='resnet': unknown model; registered: cnn"):
        fit(CFG.replace(model="resnet"), str(tmp_path / "a"), data=tiny_data)
    with pytest.raises(ValueError, match="optimizer must be .*'adamw2'"):
        fit(CFG.replace(optimizer="adamw2"), str(tmp_path / "b"), data=tiny_data)
    with pytest.raises(ValueError, match="model_kwargs.widht=8: model 'mlp' has no argument"):
        fit(CFG.replace(widht=8), str(tmp_path / "c"), data=tiny_data)
    assert not os.listdir(tmp_path)  # nothing written before the configuration is whole
