"""The benchmark's own code paths on a tiny setting: FLOP counting, summaries, the script.

Nothing here is timed; the checks are that the report is written, complete and consistent.
"""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax import benchmarking, data, io, models
from cnn_jax.training import (
    DeviceData,
    create_train_state,
    make_mesh,
    make_optimizer,
    train_step,
)
from tests.numerics import tolerance


def load_synthetic(n):
    ds = data.load("synthetic_bars", f"train[:{n}]")
    return ds.images, ds.labels

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "benchmark.py")


def _run_script(*args, timeout=120):
    return subprocess.run([sys.executable, SCRIPT, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def _batch(n):
    return {"image": jnp.zeros((n, 28, 28, 1)), "label": jnp.zeros(n, jnp.int32),
            "mask": jnp.ones(n, bool)}


@pytest.mark.parametrize("depth", [0, 2])
def test_mlp_flops_match_the_analytic_count_and_xla(depth, key):
    b, units = 256, 512
    state = create_train_state(models.get("mlp", num_layers=depth), make_optimizer("adam", 1e-3),
                               key, (28, 28, 1))
    widths = [784] + [units] * depth + [10]
    forward = sum(a * c for a, c in zip(widths[:-1], widths[1:]))
    # forward + weight gradient for every layer, input gradient for all but the first.
    expected = 2 * b * (3 * forward - widths[0] * widths[1])
    counted = benchmarking.count_matmul_flops(train_step, state, _batch(b), key)
    assert counted == expected
    if depth == 0:
        return  # one XLA cross-check (a compilation) is enough
    cost = jax.jit(train_step).lower(state, _batch(b), key).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    # XLA also counts the element-wise work, a few percent on top.
    assert expected <= cost["flops"] <= 1.15 * expected


def test_cnn_flops_count_the_im2col_matmuls(key):
    # Shapes are all the count needs: no initialisation, no compilation.
    state = jax.eval_shape(lambda k: create_train_state(
        models.get("cnn", conv_impl="matmul"), make_optimizer("adam", 1e-3), k, (28, 28, 1)),
        key)
    macs = [26 * 26 * 9 * 32, 11 * 11 * 288 * 64, 1600 * 128, 128 * 10]
    expected = 2 * 4 * (3 * sum(macs) - macs[0])
    assert benchmarking.count_matmul_flops(train_step, state, _batch(4), key) == expected


def test_count_matmul_flops_multiplies_scan_bodies():
    def f(w, xs):
        return jax.lax.scan(lambda c, x: (c + x @ w, None), jnp.zeros(3), xs)[0]

    assert benchmarking.count_matmul_flops(f, jnp.ones((4, 3)), jnp.ones((5, 4))) == 5 * 2 * 12


def test_summarize_takes_medians_of_the_steady_epochs():
    rec = {"label": "x", "n_train": 1000, "train_times": [5.0, 1.0, 3.0, 2.0],
           "val_times": [1.0, 0.5, 0.5, 1.0], "flops_per_step": 10, "steps_per_epoch": 4,
           "compile_times": [2.0], "matmul_rates": [50.0, 80.0, 60.0]}
    s = benchmarking.summarize(rec)
    assert s["train_s"] == 2.0 and s["val_s"] == 0.5 and s["epoch_s"] == 2.5
    assert s["samples_per_s"] == 500.0 and s["spread"] == 1.0 and s["val_spread"] == 1.0
    assert s["first_epoch_excess_s"] == pytest.approx(3.5) and s["noise_s"] == 2.5
    assert s["compile_s"] == 2.0
    assert s["flops_per_s"] == 20.0 and s["best_flops_per_s"] == 40.0
    # fastest epoch (40 FLOP/s) over the best probe (80): like with like
    assert s["matmul_rate"] == 80.0 and s["fraction_of_matmul"] == 0.5
    assert s["matmul_spread"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="need >= 2 epochs"):
        benchmarking.summarize({**rec, "train_times": [1.0], "val_times": [1.0]})


def test_a_first_epoch_faster_than_the_steady_ones_is_no_negative_compile_time():
    # what printed "compile -2.02 s": noise made the warm-up epoch the fastest
    rec = {"label": "keras cnn", "n_train": 100, "train_times": [10.0, 12.0, 13.0],
           "val_times": [1.0, 1.0, 1.0]}
    s = benchmarking.summarize(rec)
    assert s["first_epoch_excess_s"] == 0.0 and s["noise_s"] == 1.0
    assert "compile_s" not in s  # only a direct measurement is called compile time


def _fake_sweep(folder):
    for depth, epochs in ((0, 3), (1, 2)):
        member = folder / f"num_layers_{depth}"
        io.write_json(str(member / "config.json"), {})
        io.write_jsonl(str(member / "metrics.jsonl"),
                       [{"epoch": e + 1, "epoch_time": 2.0} for e in range(epochs)])
        io.write_json(str(member / "results.json"), {"status": "completed", "wall_time": 11.0})


def test_sweep_report_reads_members(tmp_path):
    _fake_sweep(tmp_path)
    report = benchmarking.sweep_report(str(tmp_path))
    assert [m["depth"] for m in report["members"]] == [0, 1]
    assert report["finished"] == 2 and report["epoch_time_s"] == 10.0
    assert report["wall_time_s"] == 22.0 and report["span_s"] >= 0
    assert report["seed_spans_s"] == {"-": report["span_s"]}
    lines = benchmarking.sweep_lines(report, [], [])
    assert lines[1].endswith("min; finished.")
    assert report["seed_walls_s"] == {"-": 22.0}
    assert lines[2].startswith("One pass over the depths: 0.0 min wall clock (0.4 min in its")
    assert lines[2].endswith("meets the < 17 min target.")
    assert "misses the < 0 min target" in benchmarking.sweep_lines(report, [], [], 0.0)[2]
    io.write_jsonl(str(tmp_path / "num_layers_2" / "metrics.jsonl"), [{"epoch_time": 1.0}])
    report = benchmarking.sweep_report(str(tmp_path))
    assert report["members"][-1] == {"depth": 2, "seed": None, "member": "num_layers_2",
                                     "epochs": 1, "epoch_time_s": 1.0, "wall_time_s": None,
                                     "status": "unfinished"}
    assert report["finished"] == 2 and report["wall_time_s"] == 22.0
    assert report["seed_spans_s"] == {}  # a member of the pass is unfinished
    assert "unfinished" in benchmarking.sweep_lines(report, [], [])[1]
    with pytest.raises(FileNotFoundError, match="num_layers_K"):
        benchmarking.sweep_report(str(tmp_path / "num_layers_0"))
    # grid members (--sweep=seed=0:2 --sweep=num_layers=...) count by their num_layers part
    io.write_jsonl(str(tmp_path / "seed_1-num_layers_0" / "metrics.jsonl"), [{"epoch_time": 4.0}])
    report = benchmarking.sweep_report(str(tmp_path))
    assert [(m["depth"], m["seed"], m["member"]) for m in report["members"]] == [
        (0, None, "num_layers_0"), (0, 1, "seed_1-num_layers_0"), (1, None, "num_layers_1"),
        (2, None, "num_layers_2")]


def _mlp_row(depth, **epoch_s):
    return {"model": "mlp", "depth": depth,
            "summaries": {fw: {"epoch_s": s} for fw, s in epoch_s.items()}}


def test_sweep_table_per_depth_with_seeds_and_projections(tmp_path):
    # Two seeds, depths 0 and 2; seed 1's depth 2 still running. Start/end times are set
    # so that seed 0's pass spans 100 s and seed 1's is unfinished.
    for seed, depth, epochs, wall in ((0, 0, 3, 7.0), (0, 2, 5, 30.0), (1, 0, 4, 9.0),
                                      (1, 2, 2, None)):
        member = tmp_path / f"seed_{seed}-num_layers_{depth}"
        io.write_json(str(member / "config.json"), {})
        io.write_jsonl(str(member / "metrics.jsonl"),
                       [{"epoch": e + 1, "epoch_time": 1.5} for e in range(epochs)])
        os.utime(member / "config.json", (1000 + 200 * seed + depth, 1000 + 200 * seed + depth))
        if wall is not None:
            io.write_json(str(member / "results.json"),
                          {"status": "stopped_early", "wall_time": wall})
            t = 1100 if seed == 0 else 1250
            os.utime(member / "results.json", (t, t))
    sweep = benchmarking.sweep_report(str(tmp_path))
    assert sweep["seed_spans_s"] == {"0": 100.0}
    assert sweep["seed_walls_s"] == {"0": 37.0}  # 7 + 30: a stop shows as span - walls
    assert sweep["span_s"] == 1250 - 1000
    lines = benchmarking.sweep_lines(sweep, [], [])
    assert ("Seed 0's pass over the depths: 1.7 min wall clock (0.6 min in its members' runs; "
            "the rest between them: start-up, or the sweep stopped); meets the < 17 min "
            "target.") in lines
    # keras: 1 s + 0.5 s per layer; torch has one depth only (no line): not projected
    rows = [_mlp_row(0, ours=0.4, keras=1.0, torch=2.0), _mlp_row(4, ours=0.8, keras=3.0)]
    table = benchmarking.sweep_table(sweep, rows, ["ours", "keras", "torch"])
    assert table == [
        "| depth | epochs (per seed) | ours: epoch s | ours: wall s | keras: projected s |",
        "|---|---|---|---|---|",
        "| 0 | 3, 4 | 10.5 | 16.0 | 7.0 |",   # 7 epochs x 1.5 s; 7 x 1.0 s
        "| 2 | 5, 2 | 10.5 | – | 14.0 |",      # a member unfinished: no wall sum; 7 x 2.0 s
        "| all | 14 | 21.0 | 46.0 | 21.0 |"]
    md = benchmarking.format_markdown({
        "rows": [], "frameworks": ["ours"], "machine": benchmarking.machine_info(),
        "versions": {}, "settings": "s", "matmul_rate": {}, "totals": [], "notes": [],
        "sweep": sweep, "sweep_lines": lines})
    assert "| 2 | 5, 2 | 10.5 | – |\n| all | 14 | 21.0 | 46.0 |" in md


def _check_report(out, frameworks):
    with open(out + ".json") as f:
        report = json.load(f)
    with open(out + ".md") as f:
        md = f.read()
    assert report["frameworks"] == frameworks
    assert report["machine"]["cpu_count"] >= 1 and report["versions"]["jax"] != "not installed"
    probe = report["matmul_rate"]["2048^3"]
    assert 0 < probe["worst"] <= probe["median"] <= probe["best"] and probe["n"] == 10
    for row in report["rows"]:
        assert set(row["summaries"]) == set(frameworks)
        for fw, s in row["summaries"].items():
            rec = row["records"][fw]
            assert len(rec["train_times"]) == 2 and min(rec["train_times"]) > 0
            assert s["train_s"] > 0 and s["val_s"] > 0
            assert s["samples_per_s"] == pytest.approx(rec["n_train"] / s["train_s"])
            assert f"| {row['label']} |" in md
        ours, rec = row["summaries"]["ours"], row["records"]["ours"]
        assert ours["flops_per_s"] > 0 and len(rec["matmul_rates"]) == len(rec["train_times"])
        assert len(rec["compile_times"]) == 1 and ours["compile_s"] == rec["compile_times"][0]
        assert ours["compile_s"] > 0.01  # a real compile, not a cache hit
        assert 0 < ours["fraction_of_matmul"] and ours["first_epoch_excess_s"] >= 0
        for fw in frameworks[1:]:
            ratio = ours["epoch_s"] / row["summaries"][fw]["epoch_s"]
            assert f"{ratio:.2f}x" in md
    return report, md


def test_script_ours_only_writes_a_consistent_report(tmp_path):
    out, sweep = str(tmp_path / "out" / "bench"), tmp_path / "sweep"
    _fake_sweep(sweep)
    proc = _run_script("--frameworks=ours", "--models=mlp", "--depths=0,1", "--epochs=2",
                       "--dataset=synthetic_bars", "--limit=512", f"--out={out}",
                       f"--sweep_dir={sweep}", "--num_seeds=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report, md = _check_report(out, ["ours"])
    assert report["seeds"]["num_seeds"] == 2 and report["seeds"]["label"] == "mlp depth 0"
    assert "Seeds in one program (mlp depth 0, training only" in md
    assert [r["label"] for r in report["rows"]] == ["mlp depth 0", "mlp depth 1"]
    assert "## Ours: compilation and achieved FLOP/s" in md and "| mlp depth 1 |" in proc.stdout
    assert report["sweep"]["epoch_time_s"] == 10.0 and "## Lecture sweep" in md
    assert "at ours's steady epoch time" in md  # two depths: a projection exists
    assert sorted(os.listdir(tmp_path / "out")) == ["bench.json", "bench.md"]  # no temp files
    # no library INFO noise (JAX's backend probing, orbax) in the script's output
    assert "Unable to initialize backend" not in proc.stdout + proc.stderr
    assert not [x for x in proc.stderr.splitlines() if x.startswith("I0")]


def test_bench_seeds_times_vectorised_members_against_sequential_runs():
    """The seeds row: N members in one program and N runs one after the other train the
    same models (their last-epoch losses agree to float tolerance) and both are timed."""
    images, labels = load_synthetic(256)
    data = DeviceData.from_arrays(images, labels, images[:64], labels[:64], 10,
                                  mesh=make_mesh(1))
    model = models.get("mlp", num_classes=10, num_layers=1, units=16)
    rec = benchmarking.bench_seeds(model, data, num_seeds=2, epochs=2, batch_size=64,
                                   mesh=make_mesh(1))
    assert rec["num_seeds"] == 2 and rec["n_train"] == 256
    assert len(rec["vectorized_times"]) == len(rec["sequential_times"]) == 2
    assert rec["ratio"] == pytest.approx(rec["sequential_s"] / rec["vectorized_s"])
    # mean losses over 4 batches of 64, 2 epochs of updates: 300 roundings is ample
    assert rec["max_loss_difference"] <= tolerance(np.float32, 300, scale=3.0)
    with pytest.raises(ValueError, match="epochs=1"):
        benchmarking.bench_seeds(model, data, num_seeds=2, epochs=1, batch_size=64)


@pytest.mark.slow  # three subprocesses, each importing its framework: ~30 s on 2 cores
def test_script_with_keras_and_torch(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "jax")  # else keras wants TensorFlow on import
    why = "the benchmark's references come with the `bench` extra: pip install -e '.[bench]'"
    pytest.importorskip("keras", reason=f"keras is not installed; {why}")
    pytest.importorskip("torch", reason=f"torch is not installed; {why}")
    out = str(tmp_path / "bench")
    proc = _run_script("--frameworks=ours,keras,torch", "--models=mlp", "--depths=0",
                       "--epochs=2", "--dataset=synthetic_bars", "--limit=512", f"--out={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check_report(out, ["ours", "keras", "torch"])


def test_op_place_names_the_layer_past_the_models_own_method_scopes():
    place = benchmarking._op_place
    assert place("jit(train_step)/transpose(jvp(SESN))/sconv_2/transpose/dot_general") == (
        "backward", "sconv_2", "dot_general")
    assert place("jit(train_step)/jvp(SESN)/SESN._body/lift/sfia,abnc->sfibnc/"
                 "dot_general") == ("forward", "lift", "dot_general")
    assert place("jit(train_step)/jvp(SESN)/SESN._body/reduce_max") == (
        "forward", "-", "reduce_max")  # between the layers
    assert place("jit(train_step)/jvp(CNN)/relu") == ("forward", "-", "relu")
    assert place("jit(train_step)/add") == ("update", "-", "add")


def test_script_scale_model_with_profile(tmp_path):
    """An ours-only row (sesn; p4cnn and p4mcnn take the same path) and --profile: the row
    has its FLOPs and compile time, and a per-layer profile whose layers are the model's
    own, forward and backward, and whose times add up."""
    out = str(tmp_path / "bench")
    proc = _run_script("--frameworks=ours", "--models=sesn", "--epochs=2", "--batch_size=32",
                       "--dataset=synthetic_bars", "--limit=64", f"--out={out}", "--profile")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report, md = _check_report(out, ["ours"])
    (row,) = report["rows"]
    rec = row["records"]["ours"]
    assert row["model"] == "sesn" and rec["flops_per_step"] > 0
    prof = rec["profile"]
    assert prof["step_s"] > 0 and prof["compile_s"] > 0.01 and prof["batch_size"] == 32
    seen = {(e["layer"], e["phase"]) for e in prof["layers"]}
    assert {(name, phase) for name in ("lift", "sconv_2", "sconv_3", "head")
            for phase in ("forward", "backward")} <= seen
    assert sum(e["seconds"] for e in prof["layers"]) == pytest.approx(prof["op_s"])
    assert all(sum(e["ops"].values()) == pytest.approx(e["seconds"]) for e in prof["layers"])
    assert prof["ops"] and all(o["op_name"].startswith("jit(train_step)") for o in prof["ops"])
    assert f"### {row['label']}" in md and "## Ours: per-op profile of one train step" in md
    assert "'kernel_size': 7" in md  # the experiment's settings are stated
