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


# Every check, with the exact message: (constructor, arguments, message).
_ES, _TC = EarlyStoppingConfig, TrainConfig
_BAD = [
    (_ES, {"monitor": 1}, "early_stopping.monitor=1: must be a str"),
    (_ES, {"min_delta": "0"}, "early_stopping.min_delta='0': must be a float"),
    (_ES, {"patience": 1.0}, "early_stopping.patience=1.0: must be an int"),
    (_ES, {"mode": "best"}, "early_stopping.mode='best': must be one of ('auto', 'min', 'max')"),
    (_ES, {"patience": -1}, "early_stopping.patience=-1: must be >= 0"),
    (_ES, {"min_delta": float("inf")}, "early_stopping.min_delta=inf: must be a finite number"),
    (_ES, {"baseline": float("-inf")},
     "early_stopping.baseline=-inf: must be a finite number or None"),
    (_ES, {"baseline": "1"}, "early_stopping.baseline='1': must be a float or None"),
    (_ES, {"restore_best_weights": 1}, "early_stopping.restore_best_weights=1: must be a bool"),
    (_ES, {"start_from_epoch": -1}, "early_stopping.start_from_epoch=-1: must be >= 0"),
    (_TC, {"model": None}, "model=None: must be a str"),
    (_TC, {"model_module": 3}, "model_module=3: must be a str or None"),
    (_TC, {"seed": True}, "seed=True: must be an int"),
    (_TC, {"learning_rate": True}, "learning_rate=True: must be a float"),
    (_TC, {"batch_size": 0}, "batch_size=0: must be > 0"),
    (_TC, {"epochs": 0}, "epochs=0: must be > 0"),
    (_TC, {"learning_rate": 0.0}, "learning_rate=0.0: must be > 0 and finite"),
    (_TC, {"learning_rate": -1e-3}, "learning_rate=-0.001: must be > 0 and finite"),
    (_TC, {"seed": 2**32}, "seed=4294967296: must be in [0, 2**32)"),
    (_TC, {"validation": "valid"}, "validation='valid': must be one of ('test', 'holdout')"),
    (_TC, {"validation_fraction": 0.0}, "validation_fraction=0.0: must be in (0, 1)"),
    (_TC, {"validation_fraction": 1.0}, "validation_fraction=1.0: must be in (0, 1)"),
    (_TC, {"loss": "mse"},
     "loss='mse': must be one of ('cross_entropy', 'keras_categorical_crossentropy')"),
    (_TC, {"num_devices": -1}, "num_devices=-1: must be >= 0"),
    (_TC, {"checkpoint_every": -1}, "checkpoint_every=-1: must be >= 0"),
    (_TC, {"early_stopping": _ES(monitor="val_f1")},
     "early_stopping.monitor='val_f1': must be one of the logged metrics "
     "('loss', 'accuracy', 'val_loss', 'val_accuracy')"),
    (_TC, {"precision": "fast"}, "precision='fast': must be one of ('default', 'high', 'highest')"),
    (_TC, {"num_seeds": 0}, "num_seeds=0: must be >= 1"),
    (_TC, {"seed": 2**32 - 2, "num_seeds": 3},
     "num_seeds=3: must be such that seed + num_seeds - 1 < 2**32 (seed=4294967294)"),
    (_TC, {"num_seeds": 2, "validation": "holdout"},
     "num_seeds=2: must be 1 with validation='holdout' (its split depends on the seed; the "
     "vectorised seeds share one data set)"),
    (_TC, {"model_kwargs": {"init": {1: 2}}},
     "model_kwargs.init={1: 2}: must be None, a bool, number or string, or a list/tuple/dict "
     "(string keys) of these"),
    (_TC, {"optimizer_kwargs": {"b": [1, {"c": object}]}},
     f"optimizer_kwargs.b.c={object!r}: must be None, a bool, number or string, or a "
     "list/tuple/dict (string keys) of these"),
]


@pytest.mark.parametrize("cls, kwargs, message", _BAD, ids=[m.split(":")[0] for *_, m in _BAD])
def test_each_bad_value_gets_its_exact_message(cls, kwargs, message):
    with pytest.raises(ConfigError) as e:
        cls(**kwargs)
    assert str(e.value) == message
    assert e.value.field == message.partition("=")[0]
    assert e.value.problem == "must " + message.split(": must ", 1)[1]


def test_boundary_values_are_accepted():
    """The last good value next to each bad one above (kills off-by-one comparisons)."""
    es = EarlyStoppingConfig(patience=0, start_from_epoch=0, min_delta=-1.0, baseline=2.5,
                             mode="max", monitor="accuracy", restore_best_weights=True)
    assert (es.patience, es.start_from_epoch, es.min_delta, es.baseline) == (0, 0, -1.0, 2.5)
    c = TrainConfig(batch_size=1, epochs=1, learning_rate=1e-30, seed=2**32 - 3, num_seeds=3,
                    validation_fraction=1e-9, num_devices=0, checkpoint_every=0,
                    precision="highest", loss="keras_categorical_crossentropy",
                    early_stopping=es, model_module=None, data_dir=None)
    assert (c.batch_size, c.epochs, c.seed, c.num_seeds) == (1, 1, 2**32 - 3, 3)
    assert TrainConfig(validation="holdout", validation_fraction=1 - 1e-9, num_seeds=1,
                       seed=0).validation_fraction == 1 - 1e-9
    for precision in ("default", "high"):
        assert TrainConfig(precision=precision).precision == precision


def test_numpy_scalars_become_python_scalars_in_both_dataclasses():
    es = EarlyStoppingConfig(patience=np.int64(2), min_delta=np.float32(0.5), baseline=np.int8(1))
    assert (type(es.patience), type(es.min_delta), type(es.baseline)) == (int, float, float)
    assert es == EarlyStoppingConfig(patience=2, min_delta=0.5, baseline=1.0)
    c = TrainConfig(optimizer_kwargs={"b1": np.float64(0.5), "eps": [np.float32(0.25)]})
    assert c.optimizer_kwargs == {"b1": 0.5, "eps": (0.25,)}
    assert type(c.optimizer_kwargs["b1"]) is float


def test_replace_sends_unknown_names_to_model_kwargs():
    c = TrainConfig(model="cnn", model_kwargs={"features": (8,)})
    d = c.replace(seed=3, features=(4, 4), dropout=0.5)
    assert (d.seed, d.model) == (3, "cnn")
    assert d.model_kwargs == {"features": (4, 4), "dropout": 0.5}
    assert c.model_kwargs == {"features": (8,)} and c.replace() == c
    assert c.replace(epochs=2).model_kwargs == {"features": (8,)}


def test_diff_shows_fields_missing_on_either_side_and_reprs_the_rest():
    assert config_diff({"a": 1, "s": "x", "n": {"k": None}}, {"b": "y", "s": "x", "n": {}}) == [
        "a: 1 -> (missing)", "b: (missing) -> 'y'", "n.k: None -> (missing)"]
    assert config_diff({"s": "x"}, {"s": "y"}) == ["s: 'x' -> 'y'"]
    assert config_diff({"m": "(missing)"}, {"m": "(missing)"}) == []
    assert config_diff({}, {}) == [] and config_diff({"x": [1]}, {"x": [1]}) == []
