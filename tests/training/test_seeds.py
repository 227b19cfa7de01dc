"""Vectorised seeds (``fit_seeds``): every member equals its separate ``fit`` run, early
stopping acts per member, the member folders hold a separate run's files, the sweep
summary reads them."""

import json
import os
import re

import jax
import numpy as np
import pytest

from cnn_jax import io
from cnn_jax.config import ConfigError, EarlyStoppingConfig, TrainConfig
from cnn_jax.training import fit, fit_seeds, seeds, sweep
from cnn_jax.training.checkpoint import CheckpointError, load_final_params
from cnn_jax.training.seeds import member_configs
from cnn_jax.training.sweep import write_summary
from tests.numerics import assert_close
from tests.test_train_script import train

# The tiny_data blobs: 300 train images of 8x8 (5 batches of 64), 100 validation images.
CFG = TrainConfig(model="mlp", model_kwargs={"num_layers": 1, "units": 16}, batch_size=64,
                  epochs=4, num_devices=1, seed=3, checkpoint_every=0, learning_rate=3e-3)
STEPS_PER_EPOCH = 5
LOGGED = ("loss", "accuracy", "val_loss", "val_accuracy")

# The vectorised program computes each member's batched matmuls in another order than the
# separate run (they differed by a few ulps here, not bit for bit). Roundings per logged
# loss: a sum of 64 per-example losses per step (each a log-sum-exp of 2 logits from 64
# + 16 inputs) and the mean of 5 steps; 300 for margin.
LOSS_OPS = 300


def param_bound(cfg: TrainConfig, epochs: int) -> float:
    """``scale`` for comparing parameters: each Adam step moves a parameter by at most
    about ``learning_rate``, so a rounding difference of relative size ``ops * eps`` in
    the step direction moves it by ``learning_rate * ops * eps`` per step, summed over the
    steps taken."""
    return cfg.learning_rate * STEPS_PER_EPOCH * epochs


def history(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def compare_member(vec_dir, sep_dir, vec, sep, cfg):
    """A vectorised member against its separate run: per-epoch logs, results, parameters."""
    hv, hs = history(vec_dir), history(sep_dir)
    assert [r["epoch"] for r in hv] == [r["epoch"] for r in hs]
    assert_close([[r[k] for k in LOGGED] for r in hv], [[r[k] for k in LOGGED] for r in hs],
                 ops=LOSS_OPS, dtype=np.float32, err_msg=vec_dir)
    for key in ("status", "epochs_run", "best_epoch", "stopped_epoch", "final_weights_epoch",
                "param_count"):
        assert vec[key] == sep[key], (vec_dir, key, vec[key], sep[key])
    assert_close([vec[k] for k in ("train_loss", "valid_loss")],
                 [sep[k] for k in ("train_loss", "valid_loss")], ops=LOSS_OPS, dtype=np.float32)
    pv, ps = load_final_params(vec_dir), load_final_params(sep_dir)
    assert jax.tree.structure(pv) == jax.tree.structure(ps)
    # ~2 x (64 + 64 + 16) roundings per gradient element (forward and backward sums)
    for a, b in zip(jax.tree.leaves(pv), jax.tree.leaves(ps)):
        assert_close(np.asarray(a), np.asarray(b), ops=300,
                     scale=param_bound(cfg, vec["epochs_run"]), err_msg=vec_dir)


def test_members_equal_separate_runs_and_their_folders_are_separate_runs(tiny_data, tmp_path):
    """Three members with early stopping (patience 0, min_delta 0.03 on val_loss) that stop
    at different epochs: each member's logs, results and final weights (those of its
    stopping epoch: it was frozen while the others went on) equal its separate run's."""
    es = EarlyStoppingConfig(patience=0, min_delta=0.03)
    cfg = CFG.replace(num_seeds=3, epochs=15, early_stopping=es)
    members = member_configs(cfg)
    assert [c.seed for c in members] == [3, 4, 5] and all(c.num_seeds == 1 for c in members)
    dirs = [str(tmp_path / f"seed_{c.seed}") for c in members]
    vec = fit_seeds(cfg, dirs, data=tiny_data)
    seps = [fit(c, str(tmp_path / f"separate_{c.seed}"), data=tiny_data) for c in members]
    check_case(tmp_path, members, seps, es.min_delta)
    assert len({r["valid_loss"] for r in vec}) == 3  # own initialisation and shuffle
    for c, d, r, sep in zip(members, dirs, vec, seps):
        compare_member(d, str(tmp_path / f"separate_{c.seed}"), r, sep, cfg)
        assert r["final_weights_epoch"] == r["epochs_run"]
        assert io.read_json(os.path.join(d, "config.json")) == c.to_dict()
        for name in ("model.json", "figures/history.png", "final"):
            assert os.path.exists(os.path.join(d, name)), name
        # fit on a member's folder finds that separate run finished
        mtime = os.path.getmtime(os.path.join(d, "metrics.jsonl"))
        assert fit(c, d, data=tiny_data) == r
        assert os.path.getmtime(os.path.join(d, "metrics.jsonl")) == mtime
    # the sweep summary of the members: one row per seed, mean and sd over them
    rows = [{"seed": c.seed, **r} for c, r in zip(members, vec)]
    write_summary(rows, ["seed"], str(tmp_path))
    lines = (tmp_path / "summary.csv").read_text().splitlines()
    assert lines[0].startswith("seed,train_loss") and len(lines) == 4
    agg = (tmp_path / "aggregate.csv").read_text().splitlines()
    header, values = agg[0].split(","), agg[1].split(",")
    assert values[header.index("n")] == "3"
    mean = float(values[header.index("valid_loss_mean")])
    assert mean == pytest.approx(np.mean([r["valid_loss"] for r in vec]), rel=1e-6)


def test_finished_members_are_skipped_and_the_others_trained(tiny_data, tmp_path):
    cfg = CFG.replace(num_seeds=2, epochs=1)
    dirs = [str(tmp_path / "a"), str(tmp_path / "b")]
    first = fit(member_configs(cfg)[0], dirs[0], data=tiny_data)
    # member b: an unfinished run of its config (as an interrupted run leaves it)
    fit(member_configs(cfg)[1].replace(checkpoint_every=1), dirs[1], data=tiny_data)
    os.remove(os.path.join(dirs[1], "results.json"))
    (tmp_path / "b" / "config.json").write_text(json.dumps(member_configs(cfg)[1].to_dict()))
    mtime = os.path.getmtime(os.path.join(dirs[0], "metrics.jsonl"))
    both = fit_seeds(cfg, dirs, data=tiny_data)
    assert both[0] == first and os.path.getmtime(os.path.join(dirs[0], "metrics.jsonl")) == mtime
    assert both[1]["epochs_run"] == 1 and os.path.exists(os.path.join(dirs[1], "results.json"))
    assert not os.path.exists(os.path.join(dirs[1], "checkpoints"))  # the old run's are gone
    assert fit_seeds(cfg, dirs, data=tiny_data) == both
    with pytest.raises(ValueError, match=r"another configuration \(saved -> new: "
                                         r"learning_rate: 0.003 -> 0.01"):
        fit_seeds(cfg.replace(learning_rate=1e-2), dirs, data=tiny_data)
    with pytest.raises(ValueError, match="workdirs: 1 folders for num_seeds=2"):
        fit_seeds(cfg, dirs[:1], data=tiny_data)


def val_loss_margins(rows, min_delta):
    """How far each epoch's improvement of val_loss is from early stopping's threshold
    ``min_delta`` (Keras: improved iff best - current > min_delta)."""
    best, out = None, []
    for r in rows:
        if best is not None:
            out.append(abs(best - r["val_loss"] - min_delta))
        if best is None or best - r["val_loss"] > min_delta:
            best = r["val_loss"]
    return out


def check_case(tmp_path, members, seps, min_delta):
    """The early-stopping case is what the test needs: members stop early at different
    epochs, and no stopping decision lies within float noise of its threshold."""
    stopped = [s["epochs_run"] for s in seps]
    assert len(set(stopped)) >= 2 and all(s["status"] == "stopped_early" for s in seps), seps
    for c in members:
        assert min(val_loss_margins(history(tmp_path / f"separate_{c.seed}"), min_delta)) > 1e-4


def test_restore_best_weights_keeps_each_members_own_best(tiny_data, tmp_path):
    """As above with restore_best_weights: each member ends with the weights of its own
    best epoch, as its separate run does (members stop, and are best, at different epochs)."""
    es = EarlyStoppingConfig(patience=1, min_delta=0.03, restore_best_weights=True)
    cfg = CFG.replace(num_seeds=3, seed=5, epochs=15, early_stopping=es)
    members = member_configs(cfg)
    dirs = [str(tmp_path / f"seed_{c.seed}") for c in members]
    vec = fit_seeds(cfg, dirs, data=tiny_data)
    seps = [fit(c, str(tmp_path / f"separate_{c.seed}"), data=tiny_data) for c in members]
    check_case(tmp_path, members, seps, es.min_delta)
    assert len({s["best_epoch"] for s in seps}) >= 2
    for c, d, v, s in zip(members, dirs, vec, seps):
        compare_member(d, str(tmp_path / f"separate_{c.seed}"), v, s, cfg)
        assert v["final_weights_epoch"] == v["best_epoch"] < v["epochs_run"]


class Killed(Exception):
    """Stands for a crash: not the graceful KeyboardInterrupt of should_stop."""


def test_an_interrupted_run_resumes_and_ends_as_an_uninterrupted_one(tiny_data, tmp_path):
    """Members 0, 1, 2 (seeds 0-2) stop early after epochs 7, 5 and 8 (best epochs 6, 4, 7;
    restore_best_weights). Checkpoints every 2 epochs; a crash after epoch 7 loses it (the
    last checkpoint is after epoch 6, with member 1 frozen and holding its best weights).
    The resumed run trains from epoch 7 on and ends bit for bit as the uninterrupted one:
    every member's logs, results and final weights."""
    es = EarlyStoppingConfig(patience=1, min_delta=0.01, restore_best_weights=True)
    cfg = CFG.replace(num_seeds=3, seed=0, epochs=12, early_stopping=es, checkpoint_every=2)
    whole = [str(tmp_path / "whole" / f"seed_{i}") for i in range(3)]
    cut = [str(tmp_path / "cut" / f"seed_{i}") for i in range(3)]
    expected = fit_seeds(cfg, whole, data=tiny_data)
    assert [(r["epochs_run"], r["best_epoch"]) for r in expected] == [(7, 6), (5, 4), (8, 7)]
    asked = []

    def crash_after_7():
        asked.append(1)
        if len(asked) == 7:
            raise Killed

    with pytest.raises(Killed):
        fit_seeds(cfg, cut, data=tiny_data, should_stop=crash_after_7)
    assert [len(history(d)) for d in cut] == [7, 5, 7]  # epoch 7 was logged, not checkpointed
    assert not any(os.path.exists(os.path.join(d, "results.json")) for d in cut)
    assert sorted(os.listdir(os.path.join(cut[0], "seeds_checkpoints"))) == ["3", "5"]
    # other members than the checkpoint's: an error naming its folder, nothing written
    with pytest.raises(CheckpointError, match=re.escape(
            os.path.join(cut[0], "seeds_checkpoints") + ": a checkpoint of other members "
            "(saved -> new: seeds: [0, 1, 2] -> [0, 1, 2, 3])")):
        fit_seeds(cfg.replace(num_seeds=4), [*cut, str(tmp_path / "cut" / "seed_3")],
                  data=tiny_data)
    assert not os.path.exists(tmp_path / "cut" / "seed_3")

    asked.clear()
    resumed = fit_seeds(cfg, cut, data=tiny_data, should_stop=crash_after_7)
    assert len(asked) == 1  # epochs 7 and 8 ran (not 1 to 8): after 8 every member stopped
    timing = ("epoch_time", "train_time", "samples_per_s", "wall_time")
    for w, c, a, b in zip(whole, cut, expected, resumed):
        assert {k: v for k, v in b.items() if k not in timing} == {
            k: v for k, v in a.items() if k not in timing}, c
        assert ([{k: v for k, v in r.items() if k not in timing} for r in history(c)]
                == [{k: v for k, v in r.items() if k not in timing} for r in history(w)]), c
        assert io.read_json(os.path.join(c, "results.json")) == b
        pw, pc = load_final_params(w), load_final_params(c)
        assert jax.tree.structure(pc) == jax.tree.structure(pw)
        for x, y in zip(jax.tree.leaves(pc), jax.tree.leaves(pw)):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=c)
    # finished: a rerun returns the results without training
    assert fit_seeds(cfg, cut, data=tiny_data, should_stop=crash_after_7) == resumed
    assert len(asked) == 1


def test_a_run_stopped_between_members_results_resumes_the_unfinished_ones(
        tiny_data, tmp_path, monkeypatch):
    """A crash after member 1's results and before member 2's: the rerun restores the last
    checkpoint (in member 0's folder, whose results are written last), takes members 0 and 2
    out of it and ends as the uninterrupted run; member 1 is left as it was."""
    es = EarlyStoppingConfig(patience=1, min_delta=0.01, restore_best_weights=True)
    cfg = CFG.replace(num_seeds=3, seed=0, epochs=12, early_stopping=es, checkpoint_every=2)
    whole = [str(tmp_path / "whole" / f"seed_{i}") for i in range(3)]
    cut = [str(tmp_path / "cut" / f"seed_{i}") for i in range(3)]
    expected = fit_seeds(cfg, whole, data=tiny_data)
    written = []
    real_write_end = seeds.write_end

    def crash_at_the_second(d, *args):
        written.append(os.path.basename(d))
        if len(written) == 2:
            raise Killed
        real_write_end(d, *args)

    monkeypatch.setattr(seeds, "write_end", crash_at_the_second)
    with pytest.raises(Killed):
        fit_seeds(cfg, cut, data=tiny_data)
    assert written == ["seed_1", "seed_2"]  # seed_0, the checkpoint's folder, comes last
    assert [os.path.exists(os.path.join(d, "results.json")) for d in cut] == [False, True, False]
    monkeypatch.setattr(seeds, "write_end", real_write_end)
    mtime = os.path.getmtime(os.path.join(cut[1], "results.json"))
    resumed = fit_seeds(cfg, cut, data=tiny_data, should_stop=lambda: pytest.fail("trained"))
    assert os.path.getmtime(os.path.join(cut[1], "results.json")) == mtime
    timing = ("epoch_time", "train_time", "samples_per_s", "wall_time")
    losses = ("train_loss", "train_accuracy", "valid_loss", "valid_accuracy")
    for w, c, a, b in zip(whole, cut, expected, resumed):
        assert {k: v for k, v in b.items() if k not in timing + losses} == {
            k: v for k, v in a.items() if k not in timing + losses}, c
        # evaluated as 2 members, not 3: the same weights, maybe other roundings
        assert_close([b[k] for k in losses], [a[k] for k in losses], ops=LOSS_OPS,
                     dtype=np.float32, err_msg=c)
        assert ([{k: v for k, v in r.items() if k not in timing} for r in history(c)]
                == [{k: v for k, v in r.items() if k not in timing} for r in history(w)]), c
        for x, y in zip(jax.tree.leaves(load_final_params(c)),
                        jax.tree.leaves(load_final_params(w))):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=c)


def test_members_in_finds_the_members_asked_among_a_checkpoints():
    """``_members_in``: the positions of the members asked, or an error naming what differs."""
    saved = [c.to_dict() for c in member_configs(CFG.replace(num_seeds=3, seed=4))]
    assert seeds._members_in(saved, member_configs(CFG.replace(num_seeds=3, seed=4)), "f") == [
        0, 1, 2]
    assert seeds._members_in(saved, [member_configs(CFG.replace(num_seeds=3, seed=4))[i]
                                     for i in (0, 2)], "f") == [0, 2]
    assert seeds._members_in(saved, member_configs(CFG.replace(num_seeds=2, seed=5)), "f") == [
        1, 2]
    with pytest.raises(CheckpointError, match=re.escape(
            "f: a checkpoint of other members (saved -> new: seeds: [4, 5, 6] -> [6, 7])")):
        seeds._members_in(saved, member_configs(CFG.replace(num_seeds=2, seed=6)), "f")
    with pytest.raises(CheckpointError, match=re.escape(
            "(saved -> new: learning_rate: 0.003 -> 0.01); delete the folder")):
        seeds._members_in(
            saved, member_configs(CFG.replace(num_seeds=2, seed=4, learning_rate=1e-2)), "f")


def test_num_seeds_is_checked():
    with pytest.raises(ConfigError, match=r"num_seeds=0: must be >= 1"):
        CFG.replace(num_seeds=0)
    with pytest.raises(ConfigError, match=r"num_seeds=1.5: must be an int"):
        CFG.replace(num_seeds=1.5)
    with pytest.raises(ConfigError, match=r"num_seeds=2: must be 1 with validation='holdout'"):
        CFG.replace(num_seeds=2, validation="holdout")
    with pytest.raises(ConfigError, match=r"num_seeds=2: must be such that seed \+ num_seeds"):
        CFG.replace(num_seeds=2, seed=2**32 - 1)
    with pytest.raises(ValueError, match="num_seeds=2: fit trains one seed"):
        fit(CFG.replace(num_seeds=2), "unused")


def test_run_sweep_without_axes_trains_the_seeds_into_seed_folders(tiny_data, tmp_path,
                                                                    monkeypatch):
    monkeypatch.setattr(sweep, "load_data", lambda config, mesh: tiny_data)
    rows = sweep.run_sweep(CFG.replace(num_seeds=2, epochs=1), [], str(tmp_path))
    assert [r["seed"] for r in rows] == [3, 4]
    assert sorted(p.name for p in tmp_path.glob("seed_*")) == ["seed_3", "seed_4"]
    assert io.read_json(tmp_path / "seed_4" / "config.json")["seed"] == 4
    assert (tmp_path / "summary.csv").read_text().startswith("seed,train_loss")
    assert (tmp_path / "aggregate.csv").read_text().splitlines()[1].endswith(",2")


def test_train_script_num_seeds_with_a_sweep(tmp_path):
    """scripts/train.py --num_seeds with --sweep: folders <point>-seed_K, and the sweep's
    summary and aggregate over the seeds (one subprocess: ~10 s unloaded)."""
    train("--dataset=synthetic_bars", "--model=mlp", "--model_arg=units=8", "--epochs=1",
          "--num_devices=1", "--checkpoint_every=0", "--seed=7", "--num_seeds=2",
          f"--workdir={tmp_path}", "--sweep=num_layers=1")
    summary = (tmp_path / "summary.csv").read_text().splitlines()
    assert summary[0].startswith("num_layers,seed,train_loss")
    assert [line.split(",")[:2] for line in summary[1:]] == [["1", "7"], ["1", "8"]]
    assert io.read_json(tmp_path / "num_layers_1-seed_8" / "config.json")["seed"] == 8
    agg = (tmp_path / "aggregate.csv").read_text().splitlines()
    assert agg[0].startswith("num_layers,") and agg[1].endswith(",2") and len(agg) == 2


def test_train_script_resumes_seeds_from_their_last_checkpoint_and_refuses_others(tmp_path):
    """A run killed while writing its results resumes from the checkpoint of its last epoch
    (no epoch trains again); another --num_seeds on its folder is a one-line error naming
    the checkpoint folder, with nothing written (3 subprocesses: ~15 s unloaded)."""
    args = ["--dataset=synthetic_bars", "--model=mlp", "--model_arg=units=8", "--epochs=2",
            "--num_devices=1", "--checkpoint_every=1", "--seed=7", f"--workdir={tmp_path}"]
    train(*args, "--num_seeds=2")
    before = [io.read_json(tmp_path / f"seed_{s}" / "results.json") for s in (7, 8)]
    for s in (7, 8):
        os.remove(tmp_path / f"seed_{s}" / "results.json")
    proc = train(*args, "--num_seeds=3", check=False)
    folder = tmp_path / "seed_7" / "seeds_checkpoints"
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.splitlines()[-1] == (
        f"train.py: error: {folder}: a checkpoint of other members (saved -> new: seeds: "
        "[7, 8] -> [7, 8, 9]); delete the folder to train these members from the start, or "
        "rerun the command that wrote it")
    assert not (tmp_path / "seed_9").exists()
    proc = train(*args, "--num_seeds=2")
    assert "resuming 2 seeds after epoch 2" in proc.stderr and "epoch 1/2" not in proc.stderr
    for s, old in zip((7, 8), before):
        new = io.read_json(tmp_path / f"seed_{s}" / "results.json")
        assert {**new, "wall_time": 0} == {**old, "wall_time": 0}
        assert [r["epoch"] for r in history(tmp_path / f"seed_{s}")] == [1, 2]
