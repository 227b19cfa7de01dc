"""Experiment 7 (rotation generalisation): model sizes, the data protocol, the quick run."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from cnn_jax import data, transforms
from cnn_jax.experiments import rotation, subruns

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def closed_form_cnn(features, k=3, c=1, classes=10):
    """Plain conv stages (k*k*c_in*c_out weights + c_out biases), GAP, dense head."""
    total, c_in = 0, c
    for f in features:
        total, c_in = total + k * k * c_in * f + f, f
    return total + c_in * classes + classes


def closed_form_p4cnn(features, k=3, c=1, classes=10):
    """Lifting conv (k*k*c*F), p4 convs (k*k*F_in*4*F_out), one bias per filter, dense head."""
    total = k * k * c * features[0] + features[0]
    for f_in, f in zip(features, features[1:]):
        total += k * k * f_in * 4 * f + f
    return total + features[-1] * classes + classes


def test_the_two_models_have_the_same_size_within_5_percent():
    cnn = subruns.param_count("cnn", rotation.CNN_KWARGS, (28, 28, 1), 10)
    p4 = subruns.param_count("p4cnn", rotation.P4CNN_KWARGS, (28, 28, 1), 10)
    assert cnn == closed_form_cnn(rotation.CNN_KWARGS["features"])
    assert p4 == closed_form_p4cnn(rotation.P4CNN_KWARGS["features"])
    assert abs(p4 / cnn - 1) < 0.05, (cnn, p4)
    # negative control: the P4 CNN with the CNN's widths is about 4x larger
    wide = subruns.param_count("p4cnn", {"features": rotation.CNN_KWARGS["features"]},
                               (28, 28, 1), 10)
    assert wide > 3 * cnn


def test_splits_follow_the_protocol():
    config = rotation.RotationConfig(workdir="unused", dataset="synthetic_bars", n_train=100,
                                     n_valid=20, n_test=1100)  # test split: 1024 images
    sets = rotation.rotation_splits(config)
    sizes = {k: len(v) for k, v in sets.items()}
    assert sizes == {"train_upright": 100, "valid_upright": 20, "test_upright": 1024,
                     "train_rotated": 100, "valid_rotated": 20, "test_rotated": 1100,
                     "test_rotated_source": 1100}
    # the test set is the test split, then 76 training images outside train and valid
    source = sets["test_rotated_source"].images
    np.testing.assert_array_equal(source[:1024], data.load("synthetic_bars", "test").images)
    train = {im.tobytes() for im in data.load("synthetic_bars", "train").images}
    seen = {im.tobytes() for k in ("train_upright", "valid_upright") for im in sets[k].images}
    extra = {im.tobytes() for im in source[1024:]}
    assert len(extra) == 76 and extra <= train and not extra & seen and len(seen) == 120
    # every rotated image is its upright image turned by the recorded angle
    for part in ("train", "test"):
        up, rot = sets[f"{part}_upright"], sets[f"{part}_rotated"]
        for i in (0, 7, 99):
            want = np.clip(np.round(transforms.rotate(up.images[i].astype(np.float32),
                                                      rot.params["angle"][i])), 0, 255)
            np.testing.assert_allclose(rot.images[i], want, atol=1)
    angles = sets["test_rotated"].params["angle"]
    assert 0 <= angles.min() and angles.max() < 360 and angles.std() > 80  # uniform: ~104
    again = rotation.rotation_splits(config)
    np.testing.assert_array_equal(again["test_rotated"].images, sets["test_rotated"].images)


def test_too_many_test_images_is_an_error_before_loading():
    # synthetic_bars: 4096 train and 1024 test images, known without generating them
    with pytest.raises(ValueError, match="n_test=1025: asks for more test images .* than the "
                                         "1024 there are"):
        rotation.RotationConfig(workdir="unused", dataset="synthetic_bars", n_train=4000,
                                n_valid=96, n_test=1025)


@pytest.mark.parametrize("change, needle", [({"conditions": ("sideways",)}, "conditions"),
                                            ({"n_test": 0}, "n_test"), ({"seeds": ()}, "seeds")])
def test_bad_config_is_named(change, needle):
    with pytest.raises(ValueError, match=needle):
        rotation.RotationConfig(workdir="unused", **change)


def script(*args):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "rotation.py"), *args],
                          capture_output=True, text=True, env=env, cwd=ROOT)


def test_quick_run_writes_the_contract_and_resumes(tmp_path):
    flags = ["--flagfile=experiments/rotation_quick.flags", f"--workdir={tmp_path}"]
    proc = script(*flags)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.load(open(tmp_path / "experiment.json"))
    assert record["name"] == "rotation" and record["quick"] is True
    assert record["status"] == "complete" and record["numbers"]["finished_subruns"] == 4
    for item in record["tables"]:
        assert (tmp_path / item["csv"]).stat().st_size > 0
    for item in record["figures"]:
        assert (tmp_path / item["png"]).stat().st_size > 0
    rows = list(csv.DictReader(open(tmp_path / "errors.csv")))
    assert {(r["model"], r["train"]) for r in rows} == {
        (m, c) for m in ("cnn", "p4cnn") for c in ("rotated", "upright")}
    for r in rows:
        assert 0 <= float(r["rotated_test_error_mean"]) <= 100 and r["n"] == "1"
    assert "P4 CNN" in record["finding"] and "%" in record["finding"]
    member = tmp_path / "model_p4cnn-train_upright-seed_0" / "results.json"
    mtime = member.stat().st_mtime
    proc = script(*flags)
    assert proc.returncode == 0 and member.stat().st_mtime == mtime  # finished: not retrained
    assert "training" not in proc.stderr


def test_bad_flag_is_one_line_and_exit_2(tmp_path):
    proc = script(f"--workdir={tmp_path}", "--seeds=a,b")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("rotation.py: error: --seeds=a,b")
    assert not any(tmp_path.iterdir())


def test_a_sub_run_with_tuple_hyper_parameters_resumes(tmp_path):
    # fit compares the workdir's config.json with the config: tuples must not spoil it
    config = rotation.train_config(rotation.RotationConfig(workdir="unused"), "p4cnn", 0)
    assert isinstance(config.model_kwargs["features"], tuple)
    from cnn_jax import io
    io.write_json(str(tmp_path / "config.json"), config.to_dict())
    assert io.read_json(str(tmp_path / "config.json")) == config.to_dict()
