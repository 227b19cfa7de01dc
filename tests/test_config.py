"""TrainConfig's canonical form: to_dict is JSON, from_dict its inverse, diffs name fields."""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnn_jax.config import MONITORS, ConfigError, EarlyStoppingConfig, TrainConfig, config_diff

names = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
scalars = (st.none() | st.booleans() | st.integers(-10**6, 10**6)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5))
# Model/optimizer arguments: JSON-like values with tuples at any depth (as flags give them).
literals = st.recursive(scalars, lambda inner: st.tuples(inner) | st.tuples(inner, inner)
                        | st.lists(inner, max_size=3).map(tuple)
                        | st.dictionaries(names, inner, max_size=2), max_leaves=6)
early_stopping = st.none() | st.builds(
    EarlyStoppingConfig, monitor=st.sampled_from(MONITORS),
    min_delta=st.floats(-1, 1), patience=st.integers(0, 9),
    mode=st.sampled_from(("auto", "min", "max")), baseline=st.none() | st.floats(-5, 5),
    restore_best_weights=st.booleans(), start_from_epoch=st.integers(0, 9))
configs = st.builds(
    TrainConfig, model=names, model_kwargs=st.dictionaries(names, literals, max_size=3),
    model_module=st.none() | names, dataset=names, data_dir=st.none() | st.text(max_size=8),
    validation=st.sampled_from(("test", "holdout")),
    validation_fraction=st.floats(0.01, 0.99), batch_size=st.integers(1, 4096),
    epochs=st.integers(1, 500), drop_remainder=st.booleans(), optimizer=names,
    learning_rate=st.floats(1e-8, 10.0) | st.integers(1, 3),
    optimizer_kwargs=st.dictionaries(names, literals, max_size=2),
    early_stopping=early_stopping, seed=st.integers(0, 2**32 - 1), num_devices=st.integers(0, 8),
    checkpoint_every=st.integers(0, 5), standardize=st.booleans())


def _has_tuple(x):
    if isinstance(x, tuple):
        return True
    if isinstance(x, dict):
        return any(map(_has_tuple, x.values()))
    return isinstance(x, list) and any(map(_has_tuple, x))


@given(configs)
def test_random_configs_round_trip_through_json(config):
    d = config.to_dict()
    assert not _has_tuple(d)  # JSON-ready: json.loads gives back exactly d
    text = json.dumps(d)
    assert json.loads(text) == d
    again = TrainConfig.from_dict(json.loads(text))
    assert again == config
    assert again.to_dict() == d
    assert config_diff(json.loads(text), d) == []


def test_tuples_become_lists_and_come_back_as_tuples():
    c = TrainConfig(model="cnn", model_kwargs={"features": [32, 64], "k": ((3, 3), [5, 5])})
    assert c.model_kwargs == {"features": (32, 64), "k": ((3, 3), (5, 5))}
    assert c.to_dict()["model_kwargs"] == {"features": [32, 64], "k": [[3, 3], [5, 5]]}
    assert TrainConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c


def test_numpy_scalars_and_ints_in_float_fields_are_canonical():
    c = TrainConfig(learning_rate=1, seed=np.int64(3), model_kwargs={"units": np.int32(8)})
    assert type(c.learning_rate) is float and type(c.seed) is int
    assert type(c.model_kwargs["units"]) is int
    assert c == TrainConfig(learning_rate=1.0, seed=3, model_kwargs={"units": 8})


def test_diff_lists_each_differing_field_old_and_new():
    old = TrainConfig(model="cnn", model_kwargs={"features": (32, 64)}).to_dict()
    new = TrainConfig(model="cnn", model_kwargs={"features": (8,)}, seed=2,
                      early_stopping=EarlyStoppingConfig(patience=3)).to_dict()
    assert config_diff(old, new) == [
        "early_stopping: None -> {'monitor': 'val_loss', 'min_delta': 0.0, 'patience': 3, "
        "'mode': 'auto', 'baseline': None, 'restore_best_weights': False, "
        "'start_from_epoch': 0}",
        "model_kwargs.features: [32, 64] -> [8]", "seed: 0 -> 2"]
    assert config_diff({"x": True}, {"x": 1}) == ["x: True -> 1"]


def test_from_dict_fills_new_fields_and_refuses_unknown_ones():
    d = TrainConfig(seed=4).to_dict()
    del d["model_module"]  # a config.json written before the field existed
    assert TrainConfig.from_dict(d) == TrainConfig(seed=4)
    with pytest.raises(ConfigError, match="colour='red': no such TrainConfig field"):
        TrainConfig.from_dict({**d, "colour": "red"})
    with pytest.raises(ConfigError, match="early_stopping.wait=1: no such field"):
        TrainConfig.from_dict({**d, "early_stopping": {"wait": 1}})


@pytest.mark.parametrize("change, field", [
    ({"model_kwargs": {"init": print}}, "model_kwargs.init"),
    ({"optimizer_kwargs": {"b": {1: 2}}}, "optimizer_kwargs.b"),
    ({"epochs": "3"}, "epochs"), ({"standardize": 1}, "standardize"),
    ({"data_dir": 3}, "data_dir"), ({"seed": -1}, "seed"), ({"learning_rate": float("inf")},
                                                             "learning_rate"),
    ({"early_stopping": EarlyStoppingConfig(monitor="val_f1")}, "early_stopping.monitor"),
])
def test_bad_values_are_config_errors_naming_the_field(change, field):
    with pytest.raises(ConfigError) as e:
        TrainConfig(**change)
    assert e.value.field == field and str(e.value).startswith(f"{field}=")


def test_early_stopping_fields_are_checked_with_their_prefix():
    with pytest.raises(ConfigError, match=r"early_stopping.min_delta=nan: must be a finite"):
        EarlyStoppingConfig(min_delta=float("nan"))
    with pytest.raises(ConfigError, match=r"early_stopping.patience='2': must be an int"):
        EarlyStoppingConfig(patience="2")
