"""Experiment 2: the lecture's own Keras code beside ours, per depth and seed.

Keras side, exactly the lecture's program (Keras 3 on the JAX backend): ``Sequential``,
``Flatten``, ``Dense(512, elu)`` x depth, ``Dense(10, softmax)``, ``categorical_crossentropy``,
``adam``, batch 256, up to 100 epochs, ``EarlyStopping(monitor="val_loss", min_delta=0,
patience=5, restore_best_weights=True)``, the test set as validation data, seeded with
``keras.utils.set_random_seed``. Our side is the depth sweep's protocol
(``experiments/depth_sweep.flags``: Keras's loss and Adam, Keras early stopping): a finished
member of that sweep (``ours_dir/seed_S-num_layers_D``) is read, a missing one is trained
here. Both are evaluated with the restored best weights on train and test.

Per depth the table gives both sides' mean +- sample sd over seeds, the difference,
Welch's t and its two-sided p-value. With identical semantics
(``tests/training/test_keras_parity.py``: bit-identical from the same weights and batches)
the two differ only in their random streams (initialisation and shuffling), so differences
should be within seed noise.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, NamedTuple

import jax
import numpy as np

from cnn_jax import io
from cnn_jax.config import EarlyStoppingConfig, TrainConfig
from cnn_jax.experiments import checks, results
from cnn_jax.plotting import plt

__all__ = ["Settings", "Welch", "run", "welch_test"]

NAME = "keras_agreement"
CLAIM = ("The lecture's Keras experiment (0..24 hidden Dense(512, elu) layers, Adam, early "
         "stopping) is what this codebase reproduces: the same protocol gives the same "
         "accuracies within seed noise.")
METRICS = ("valid_accuracy", "valid_loss", "train_accuracy", "train_loss", "epochs_run")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Knobs (one flag each in ``scripts/keras_agreement.py``)."""

    dataset: str = "fashion_mnist"
    train_examples: int = 0  # 0: the whole split
    test_examples: int = 0
    depths: tuple[int, ...] = (0, 1, 2, 4, 8, 16, 24)
    seeds: tuple[int, ...] = (0, 1, 2)
    units: int = 512
    epochs: int = 100
    patience: int = 5
    batch_size: int = 256
    ours_dir: str = "runs/depth_sweep"  # a finished member here is reused, not retrained
    quick: bool = False

    def __post_init__(self):
        checks.subsets(self.dataset, self.train_examples, self.test_examples)
        checks.items("depths", self.depths, lambda v: checks.as_int(v, 0))
        checks.items("seeds", self.seeds, lambda v: checks.as_int(v, 0, checks.MAX_SEED))
        checks.positive(self, "units", "epochs", "batch_size")
        checks.integer("patience", self.patience, 0)
        checks.new_or_folder("ours_dir", self.ours_dir)


class Welch(NamedTuple):
    """Welch's unequal-variance t test of two means: statistic, degrees of freedom
    (Welch-Satterthwaite) and two-sided p-value; all nan unless both samples have n >= 2."""

    t: float
    df: float
    p: float


def welch_test(a, b) -> Welch:
    """Welch's t test of the means of samples ``a`` [n_a] and ``b`` [n_b]."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or len(b) < 2:
        return Welch(math.nan, math.nan, math.nan)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    diff = float(a.mean() - b.mean())
    if va + vb == 0:  # no spread on either side: equal means agree, others differ surely
        return Welch(0.0, math.nan, 1.0) if diff == 0 else Welch(
            math.copysign(math.inf, diff), math.nan, 0.0)
    t = diff / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    # P(|T_df| >= |t|) = I_{df / (df + t^2)}(df / 2, 1 / 2), the regularised incomplete beta
    p = float(jax.scipy.special.betainc(df / 2, 0.5, df / (df + t * t)))
    return Welch(t, df, p)


def _ours_config(s: Settings, depth: int, seed: int) -> TrainConfig:
    """The depth sweep's member config (experiments/depth_sweep.flags)."""
    return TrainConfig(
        model="mlp", model_kwargs={"units": s.units, "activation": "elu", "num_layers": depth},
        dataset=s.dataset, batch_size=s.batch_size, epochs=s.epochs, optimizer="keras_adam",
        loss="keras_categorical_crossentropy", learning_rate=1e-3, seed=seed,
        early_stopping=EarlyStoppingConfig(monitor="val_loss", min_delta=0.0,
                                           patience=s.patience, restore_best_weights=True))


def _ours(s: Settings, workdir: str, depth: int, seed: int, data) -> dict[str, Any]:
    member = f"seed_{seed}-num_layers_{depth}"
    for folder in (os.path.join(s.ours_dir, member), os.path.join(workdir, "ours", member)):
        path = os.path.join(folder, "results.json")
        if os.path.exists(path) and io.read_json(path).get("status") in (
                "completed", "stopped_early"):
            return io.read_json(path)
    from cnn_jax.training import fit

    return fit(_ours_config(s, depth, seed), os.path.join(workdir, "ours", member), data=data())


def _keras(s: Settings, workdir: str, depth: int, seed: int, arrays) -> dict[str, Any]:
    """The lecture's Keras program; its results are kept in ``workdir/keras/MEMBER``."""
    path = os.path.join(workdir, "keras", f"seed_{seed}-num_layers_{depth}", "results.json")
    if os.path.exists(path):
        return io.read_json(path)
    os.environ["KERAS_BACKEND"] = "jax"
    import keras

    if keras.backend.backend() != "jax":
        raise RuntimeError("keras was imported with another backend; set KERAS_BACKEND=jax")
    x_train, y_train, x_test, y_test = arrays
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input(x_train.shape[1:]), keras.layers.Flatten()]
        + [keras.layers.Dense(s.units, activation="elu") for _ in range(depth)]
        + [keras.layers.Dense(10, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", min_delta=0, patience=s.patience,
                                         restore_best_weights=True)
    history = model.fit(x_train, y_train, batch_size=s.batch_size, epochs=s.epochs,
                        validation_data=(x_test, y_test), callbacks=[stop], verbose=0)
    train_loss, train_acc = model.evaluate(x_train, y_train, batch_size=s.batch_size, verbose=0)
    valid_loss, valid_acc = model.evaluate(x_test, y_test, batch_size=s.batch_size, verbose=0)
    out = {"train_loss": train_loss, "train_accuracy": train_acc, "valid_loss": valid_loss,
           "valid_accuracy": valid_acc, "epochs_run": len(history.history["loss"]),
           "best_epoch": int(stop.best_epoch) + 1, "keras_version": keras.__version__}
    io.write_json(path, out)
    return out


def _summary(rows: list[dict[str, Any]], depths) -> list[dict[str, Any]]:
    table = []
    for d in depths:
        out: dict[str, Any] = {"depth": d}
        for m in METRICS:
            sides = {side: [r[m] for r in rows if r["depth"] == d and r["side"] == side]
                     for side in ("ours", "keras")}
            for side, v in sides.items():
                out[f"{side}_{m}_mean"] = float(np.mean(v)) if v else math.nan
                out[f"{side}_{m}_sd"] = float(np.std(v, ddof=1)) if len(v) > 1 else math.nan
            out[f"diff_{m}"] = out[f"ours_{m}_mean"] - out[f"keras_{m}_mean"]
            test = welch_test(sides["ours"], sides["keras"])
            out[f"welch_t_{m}"], out[f"welch_p_{m}"] = test.t, test.p
        out["n_ours"] = sum(r["depth"] == d and r["side"] == "ours" for r in rows)
        out["n_keras"] = sum(r["depth"] == d and r["side"] == "keras" for r in rows)
        table.append(out)
    return table


def _figure(table, workdir: str, n: int) -> str:
    fig, axes = plt.subplots(1, 2, figsize=results.FIGSIZE)
    for ax, (metric, label) in zip(axes, (("valid_loss", "test loss"),
                                          ("valid_accuracy", "test accuracy"))):
        for side, style in (("ours", dict(color="tab:blue", marker="o", linestyle="-")),
                            ("keras", dict(color="tab:orange", marker="s", linestyle="--"))):
            sd = [0.0 if math.isnan(r[f"{side}_{metric}_sd"]) else r[f"{side}_{metric}_sd"]
                  for r in table]
            ax.errorbar([r["depth"] for r in table], [r[f"{side}_{metric}_mean"] for r in table],
                        yerr=sd, capsize=2, markersize=4, label=side, **style)
        ax.set_xlabel("hidden Dense(512, elu) layers")
        ax.set_ylabel(label)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"Ours and the lecture's Keras code against depth (mean +- sd, n <= {n} "
                 "seeds)", fontsize=10)
    return results.save_png(fig, workdir, "figures/agreement.png")


def run(workdir: str, settings: Settings = Settings(), *, command_line: str | None = None
        ) -> dict:
    """Trains the missing members of both sides (resumable per member) and writes
    ``members.csv``, ``agreement.csv``, ``figures/agreement.png`` and ``experiment.json``."""
    from cnn_jax.experiments.training import load_subsets
    from cnn_jax.training import DeviceData, make_mesh

    s = settings
    train_set, test_set = load_subsets(s.dataset, s.train_examples, s.test_examples)
    onehot = np.eye(train_set.info.num_classes, dtype=np.float32)
    arrays = (train_set.images.astype(np.float32) / 255.0, onehot[train_set.labels],
              test_set.images.astype(np.float32) / 255.0, onehot[test_set.labels])
    cache: list = []

    def data():  # placed on the device once, the first time ours needs training
        if not cache:
            cache.append(DeviceData.from_arrays(
                train_set.images, train_set.labels, test_set.images, test_set.labels,
                train_set.info.num_classes, mesh=make_mesh(0)))
        return cache[0]

    rows = []
    for seed in s.seeds:
        for depth in s.depths:
            for side, r in (("ours", _ours(s, workdir, depth, seed, data)),
                            ("keras", _keras(s, workdir, depth, seed, arrays))):
                rows.append({"side": side, "depth": depth, "seed": seed,
                             **{m: float(r[m]) for m in METRICS}})
    members = results.write_csv(workdir, "members.csv", rows)
    table = _summary(rows, s.depths)
    agreement = results.write_csv(workdir, "agreement.csv", [
        {k: v for k, v in r.items() if k.startswith(("depth", "n_")) or "valid" in k
         or "epochs" in k} for r in table])
    figure = _figure(table, workdir, len(s.seeds))
    tested = [r for r in table if not math.isnan(r["welch_p_valid_accuracy"])]
    widest = max(table, key=lambda r: abs(r["diff_valid_accuracy"]))
    numbers = {"max_abs_diff_valid_accuracy": abs(widest["diff_valid_accuracy"]),
               "seeds": len(s.seeds), "depths": list(s.depths),
               "max_abs_welch_t_valid_accuracy":
               max(abs(r["welch_t_valid_accuracy"]) for r in tested) if tested else None,
               "min_welch_p_valid_accuracy":
               min(r["welch_p_valid_accuracy"] for r in tested) if tested else None,
               "train_examples": len(train_set)}
    finding = (f"Over depths {', '.join(map(str, s.depths))} and {len(s.seeds)} seed(s), our "
               f"test accuracy differs from the lecture's Keras code by at most "
               f"{numbers['max_abs_diff_valid_accuracy']:.4f} (depth {widest['depth']})")
    if tested:
        low = min(tested, key=lambda r: r["welch_p_valid_accuracy"])
        significant = [r["depth"] for r in tested if r["welch_p_valid_accuracy"] < 0.05]
        which = ("no depth differs" if not significant else
                 f"depth {significant[0]} differs" if len(significant) == 1 else
                 f"depths {', '.join(map(str, significant))} differ")
        finding += (f"; {which} at the 5% level (smallest two-sided Welch p "
                    f"{low['welch_p_valid_accuracy']:.2f}, at depth {low['depth']}).")
    else:
        finding += " (one seed per side: no t test)."
    return results.write_experiment(
        workdir, name=NAME, title="2. Agreement with the lecture's Keras code",
        claim=CLAIM, quick=s.quick, finding=finding,
        tables=[("Per depth: ours vs Keras, mean and sample sd over seeds, difference, "
                 "Welch's t and two-sided p", agreement), ("Every member", members)],
        figures=[("Test loss and accuracy against depth, ours and Keras", figure)],
        numbers=numbers, command_line=command_line)
