"""Every flag of scripts/train.py: malformed values are one-line errors naming the flag (before
any data, compile or file), non-default values reach TrainConfig, flags override the
flagfile wherever they stand, and every flagfile in experiments/ round-trips.

The flags are parsed and checked in one helper process (absl flags are global), with the
script's own functions: ``flagfile_first``, absl parsing, ``checked_config``.
"""

import glob
import json
import os
import subprocess
import sys
import textwrap

import pytest

from cnn_jax.config import TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HELPER = textwrap.dedent("""
    import json, sys
    cases = json.load(open(sys.argv[1]))
    sys.path.insert(0, {scripts!r})
    sys.argv = ["train.py"]
    import train
    from absl import flags
    FLAGS = flags.FLAGS
    out = []
    for argv in cases:
        FLAGS.unparse_flags()
        try:
            rest = FLAGS(train.flagfile_first(["train.py", *argv]))
        except flags.Error as e:
            out.append(["flag_error", str(e)])
            continue
        try:
            out.append(["ok", train.checked_config(rest)[0].to_dict()])
        except train.BadFlag as e:
            out.append(["bad", str(e)])
    print(json.dumps({{"flags": sorted(f.name for f in FLAGS.get_flags_for_module("train")),
                      "run_flags": list(train.RUN_FLAGS), "results": out}}))
""")


def check_flags(tmp_path, cases):
    """``(train.py's flag names, its RUN_FLAGS, one [kind, config-or-message] per case)``."""
    (tmp_path / "helper.py").write_text(HELPER.format(scripts=os.path.join(ROOT, "scripts")))
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT}
    proc = subprocess.run([sys.executable, str(tmp_path / "helper.py"),
                           str(tmp_path / "cases.json")], capture_output=True, text=True,
                          env=env, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return out["flags"], out["run_flags"], out["results"]


# A valid base the malformed flag is added to (the last occurrence of a flag wins).
BASE = ["--dataset=synthetic_bars", "--model=mlp", "--num_devices=1"]
# flag -> malformed values (empty, wrong type, negative, out of range, unknown name).
MALFORMED = {
    "workdir": [""],
    "model": ["", "nope", "3"],
    "model_arg": ["", "features", "=3", "widht=8", "features=abc", "features=(-4,)",
                  "features=(4.5,)", "kernel_size=99", "num_classes=3", "pool=nope"],
    "model_module": ["", "no_such_module_xyz", "3"],
    "dataset": ["", "no_such_name", "3"],
    "data_dir": ["", "/no/such/folder"],
    "validation": ["", "train", "3"],
    "validation_fraction": ["", "abc", "-0.1", "0", "1.5"],
    "batch_size": ["", "abc", "1.5", "-1", "0"],
    "epochs": ["", "abc", "1.5", "-1", "0"],
    "drop_remainder": ["abc"],
    "optimizer": ["", "nope", "3", "apply_updates"],
    "learning_rate": ["", "abc", "-1", "0", "inf", "nan"],
    "optimizer_arg": ["", "b1", "foo=1", "b1='x'"],
    "loss": ["", "nope", "3", "categorical_crossentropy"],
    "precision": ["", "nope", "HIGHEST"],
    "early_stopping": ["abc"],
    "es_monitor": ["", "val_f1", "3"],
    "es_min_delta": ["", "abc", "nan"],
    "es_patience": ["", "abc", "-1", "1.5"],
    "es_mode": ["", "up"],
    "es_baseline": ["abc", "nan"],
    "es_restore_best_weights": ["abc"],
    "es_start_from_epoch": ["", "abc", "-1"],
    "seed": ["", "abc", "-1", "1.5", str(2**32)],
    "num_seeds": ["", "abc", "0", "-1", "1.5"],
    "num_devices": ["", "abc", "-1", "99"],
    "checkpoint_every": ["", "abc", "-1"],
    "standardize": ["abc"],
    "platform": ["", "fpga"],
    "distributed": ["abc"],
    "coordinator": ["nohost", "10.0.0.1:0", ":80"],
    "num_processes": ["abc", "0", "-2"],
    "process_id": ["abc", "-1", "1.5"],
    "restart": ["abc"],
    "log_steps": ["abc"],
    "check_only": ["abc"],
    "sweep": ["", "num_layers", "widht=1,2", "num_layers=0:x", "num_layers=-2:0",
              "learning_rate=log:0:1:3"],
}
NOT_WALKED: set[str] = set()


def _context(flag):
    if flag.startswith("es_"):
        return ["--early_stopping"]
    if flag == "validation_fraction":
        return ["--validation=holdout"]
    if flag == "model_arg":
        return ["--model=cnn"]
    return []


# flag -> (its argv, config field (dotted), expected value); every value is not the default.
def round_trip_cases(data_dir):
    return {
        "model": (["--model=cnn_bn"], "model", "cnn_bn"),
        "model_arg": (["--model_arg=features=(4,)"], "model_kwargs", {"features": [4]}),
        "model_module": (["--model_module=json"], "model_module", "json"),
        "dataset": (["--dataset=mnist"], "dataset", "mnist"),
        "data_dir": ([f"--data_dir={data_dir}"], "data_dir", str(data_dir)),
        "validation": (["--validation=holdout"], "validation", "holdout"),
        "validation_fraction": (["--validation_fraction=0.25"], "validation_fraction", 0.25),
        "batch_size": (["--batch_size=17"], "batch_size", 17),
        "epochs": (["--epochs=7"], "epochs", 7),
        "drop_remainder": (["--drop_remainder"], "drop_remainder", True),
        "optimizer": (["--optimizer=sgd"], "optimizer", "sgd"),
        "learning_rate": (["--learning_rate=0.5"], "learning_rate", 0.5),
        "optimizer_arg": (["--optimizer_arg=momentum=0.9"], "optimizer_kwargs",
                          {"momentum": 0.9}),
        "loss": (["--loss=keras_categorical_crossentropy"], "loss",
                 "keras_categorical_crossentropy"),
        "precision": (["--precision=highest"], "precision", "highest"),
        "early_stopping": (["--early_stopping"], "early_stopping", "an EarlyStoppingConfig"),
        "es_monitor": (["--es_monitor=val_accuracy"], "early_stopping.monitor", "val_accuracy"),
        "es_min_delta": (["--es_min_delta=0.01"], "early_stopping.min_delta", 0.01),
        "es_patience": (["--es_patience=3"], "early_stopping.patience", 3),
        "es_mode": (["--es_mode=max"], "early_stopping.mode", "max"),
        "es_baseline": (["--es_baseline=0.5"], "early_stopping.baseline", 0.5),
        "es_restore_best_weights": (["--es_restore_best_weights"],
                                    "early_stopping.restore_best_weights", True),
        "es_start_from_epoch": (["--es_start_from_epoch=2"], "early_stopping.start_from_epoch",
                                2),
        "seed": (["--seed=5"], "seed", 5),
        "num_seeds": (["--num_seeds=3"], "num_seeds", 3),  # its own case: not with holdout
        "num_devices": (["--num_devices=1"], "num_devices", 1),
        "checkpoint_every": (["--checkpoint_every=2"], "checkpoint_every", 2),
        "standardize": (["--standardize"], "standardize", True),
    }


def _get(d, dotted):
    for part in dotted.split("."):
        d = d[part] if d is not None else None
    return d


@pytest.fixture(scope="module")
def walked(tmp_path_factory):
    return walk_train(tmp_path_factory.mktemp("flags"))


def walk_train(tmp):
    """Every case of this module through train.py's check, in ``tmp`` (also for flag_table.py).

    Returns ``{"names", "run_flags", "round_trip", "results"}``; ``results`` maps each case
    (``"FLAG=VALUE"`` for the malformed ones) to ``[kind, config-or-message]``.
    """
    workdir = tmp / "new_run"
    a_file = tmp / "a_file"
    a_file.write_text("")
    flagfile = tmp / "f.flags"
    flagfile.write_text(f"--workdir={workdir}\n--dataset=synthetic_bars\n--model=mlp\n"
                        "--model_arg=units=512\n--epochs=3\n--seed=1\n")
    cases = {f"{flag}={value}": [f"--workdir={workdir}", *BASE, *_context(flag),
                                 f"--{flag}={value}"]
             for flag, values in MALFORMED.items() for value in values}
    cases["workdir=<a file>"] = [*BASE, f"--workdir={a_file}"]
    cases["unused es flag"] = [f"--workdir={workdir}", *BASE, "--es_patience=3"]
    cases["unused fraction"] = [f"--workdir={workdir}", *BASE, "--validation_fraction=0.2"]
    round_trip = round_trip_cases(tmp)
    everything = [f"--workdir={workdir}", "--early_stopping", "--validation=holdout"]
    for flag, (argv, _, _) in round_trip.items():
        if flag != "num_seeds":
            everything += argv
    cases["round trip"] = everything
    cases["num_seeds round trip"] = [f"--workdir={workdir}", *BASE,
                                     *round_trip["num_seeds"][0]]
    cases["num_seeds with holdout"] = [f"--workdir={workdir}", *BASE, "--num_seeds=2",
                                       "--validation=holdout"]
    cases["num_seeds with a seed sweep"] = [f"--workdir={workdir}", *BASE, "--num_seeds=2",
                                            "--sweep=seed=0:2"]
    cases["num_seeds with restart"] = [f"--workdir={workdir}", *BASE, "--num_seeds=2",
                                       "--restart"]
    cases["before flagfile"] = ["--epochs=1", "--model_arg=units=8", f"--flagfile={flagfile}"]
    cases["after flagfile"] = [f"--flagfile={flagfile}", "--epochs=1", "--model_arg=units=8"]
    experiments = sorted(glob.glob(os.path.join(ROOT, "experiments", "*.flags")))
    for path in experiments:
        cases[f"experiment {os.path.basename(path)}"] = [f"--flagfile={path}"]
    names, run_flags, results = check_flags(tmp, list(cases.values()))
    assert not workdir.exists(), "checking flags wrote into the workdir"
    return {"names": names, "run_flags": run_flags, "round_trip": round_trip,
            "results": dict(zip(cases, results))}


def test_every_flag_is_walked_or_round_tripped(walked):
    names = set(walked["names"])
    assert names == set(MALFORMED) | NOT_WALKED, "add the new flag's malformed values"
    assert names == set(walked["round_trip"]) | set(walked["run_flags"]), (
        "add the new flag to round_trip_cases (or to train.RUN_FLAGS if it is no config)")


@pytest.mark.parametrize("flag, value", [(f, v) for f, vs in MALFORMED.items() for v in vs])
def test_malformed_value_is_one_line_naming_the_flag(walked, flag, value):
    kind, message = walked["results"][f"{flag}={value}"]
    assert kind in ("bad", "flag_error"), f"--{flag}={value} was accepted: {message}"
    assert "\n" not in message and f"--{flag}=" in message, message
    if kind == "bad":  # ours: FLAG=VALUE first, then what is wrong
        shown = value.partition("=")[0] if flag == "model_arg" and "=" in value else value
        assert message.startswith(f"--{flag}={shown}") and len(message) > len(flag) + 12


def test_other_refusals(walked):
    results = walked["results"]
    assert results["workdir=<a file>"][1].endswith("is a file; give a folder (new or a run's)")
    assert results["unused es flag"] == [
        "bad", "--es_patience=3: has no effect without --early_stopping"]
    assert results["unused fraction"] == [
        "bad", "--validation_fraction=0.2: has no effect without --validation=holdout"]
    assert results["model_arg=widht=8"][1].startswith(
        "--model_arg=widht=8: model 'cnn' has no argument 'widht'; its arguments: features,")
    assert results["model_arg=kernel_size=99"][1].startswith(
        "--model_arg=kernel_size=99: model 'cnn' cannot be built with it: ValueError: kernel")
    assert results["num_seeds with holdout"] == [
        "bad", "--num_seeds=2: must be 1 with validation='holdout' (its split depends on the "
        "seed; the vectorised seeds share one data set)"]
    assert results["num_seeds with a seed sweep"] == [
        "bad", "--sweep=seed=0:2: num_seeds=2 trains seeds 0..1 itself: sweep neither seed "
        "nor num_seeds with it"]
    assert results["num_seeds with restart"] == [
        "bad", "--restart=True: is for single runs; delete the sweep's (or seeds') folder "
        "instead"]


def test_every_config_flag_reaches_the_config_with_a_non_default_value(walked):
    kind, config = walked["results"]["round trip"]
    assert kind == "ok", config
    kind, seeds_config = walked["results"]["num_seeds round trip"]
    assert kind == "ok", seeds_config
    config = {**config, "num_seeds": seeds_config["num_seeds"]}
    default = TrainConfig().to_dict()
    for flag, (_, field, expected) in walked["round_trip"].items():
        if flag == "early_stopping":  # None by default
            assert default["early_stopping"] is None and config["early_stopping"] is not None
            continue
        assert _get(config, field) == expected, flag
        assert _get(default, field) != expected, f"{flag}: pick a non-default value"


def test_flags_override_the_flagfile_before_and_after_it(walked):
    for case in ("before flagfile", "after flagfile"):
        kind, config = walked["results"][case]
        assert kind == "ok", config
        assert (config["epochs"], config["seed"], config["model_kwargs"]) == (1, 1, {"units": 8})


def test_every_experiment_flagfile_round_trips_through_json(walked):
    found = {k: v for k, v in walked["results"].items() if k.startswith("experiment ")}
    checked = 0
    for case, (kind, config) in found.items():
        if kind != "ok" and "Unknown command line flag" in config:
            continue  # a flagfile of another script
        assert kind == "ok", (case, config)
        again = TrainConfig.from_dict(json.loads(json.dumps(config)))
        assert again.to_dict() == config, case
        checked += 1
    assert {"experiment quickstart.flags", "experiment depth_sweep.flags"} <= set(found)
    assert checked >= 2
    quick = found["experiment quickstart.flags"][1]
    assert quick["model_kwargs"] == {"features": [32, 64], "dense_units": [128]}
