"""Train a model: ``python scripts/train.py --flagfile=experiments/NAME.flags``.

Flags -> a typed ``TrainConfig`` -> ``cnn_jax.training.fit`` (or ``run_sweep`` with
``--sweep``). A bad flag value is a one-line usage error with exit code 2.
"""

from __future__ import annotations

import ast
import logging
import signal
import sys
import threading

from _cli import run, usage_error
from absl import flags
from absl import logging as absl_logging

FLAGS = flags.FLAGS


def sweep_syntax() -> str:
    from cnn_jax.training.sweep import SYNTAX

    return SYNTAX

flags.DEFINE_string("workdir", None, "Folder for config.json, metrics, results, checkpoints.")
flags.DEFINE_string("model", "cnn", "Model name (see cnn_jax.models.names()).")
flags.DEFINE_multi_string("model_arg", [], "Model hyper-parameter as name=python_literal; "
                          "repeat the flag for several, e.g. --model_arg=features=(32,64).")
flags.DEFINE_string("dataset", "fashion_mnist", "Dataset name for cnn_jax.data.load.")
flags.DEFINE_string("data_dir", None, "Local data folder (TFDS-prepared or IDX files).")
flags.DEFINE_string("validation", "test", "'test' (validate on test, as the lecture) or "
                    "'holdout' (a seeded carve-out of train).")
flags.DEFINE_float("validation_fraction", 0.1, "Holdout fraction of train.")
flags.DEFINE_integer("batch_size", 256, "Batch size.")
flags.DEFINE_integer("epochs", 100, "Maximum number of epochs.")
flags.DEFINE_boolean("drop_remainder", False, "Drop the last partial batch (Keras keeps it).")
flags.DEFINE_string("optimizer", "adam", "optax optimizer name, or keras_adam (Keras's exact "
                    "Adam: epsilon before bias correction).")
flags.DEFINE_string("loss", "cross_entropy", "cross_entropy (log-softmax) or "
                    "keras_categorical_crossentropy (Keras's: clips probabilities to "
                    "[1e-7, 1-1e-7]).")
flags.DEFINE_float("learning_rate", 1e-3, "Learning rate.")
flags.DEFINE_multi_string("optimizer_arg", [], "Optimizer argument as name=python_literal.")
flags.DEFINE_boolean("early_stopping", False, "Use Keras-style early stopping.")
flags.DEFINE_string("es_monitor", "val_loss", "EarlyStopping monitor.")
flags.DEFINE_float("es_min_delta", 0.0, "EarlyStopping min_delta.")
flags.DEFINE_integer("es_patience", 0, "EarlyStopping patience.")
flags.DEFINE_string("es_mode", "auto", "EarlyStopping mode: auto, min or max.")
flags.DEFINE_float("es_baseline", None, "EarlyStopping baseline.")
flags.DEFINE_boolean("es_restore_best_weights", False, "EarlyStopping restore_best_weights.")
flags.DEFINE_integer("es_start_from_epoch", 0, "EarlyStopping start_from_epoch.")
flags.DEFINE_integer("seed", 0, "Seed of initialisation, shuffling and holdout split.")
flags.DEFINE_integer("num_devices", 0, "Devices to shard the batch over (0: all local).")
flags.DEFINE_integer("checkpoint_every", 1, "Checkpoint every N epochs (0: never).")
flags.DEFINE_boolean("standardize", False, "Standardise inputs per channel.")
flags.DEFINE_enum("precision", "default", ["default", "high", "highest"],
                  "Matmul/conv precision: default (JAX's: TF32 on Ampere+ GPUs, bf16 on TPUs, "
                  "float32 on CPU), high, or highest (full float32); see README 'Precision'.")
flags.DEFINE_string("platform", None, "cpu, gpu or tpu (default: what JAX finds).")
flags.DEFINE_boolean("distributed", False, "Join several processes with "
                     "jax.distributed.initialize(); on SLURM, Open MPI and TPU pods the three "
                     "flags below are detected (README 'Several processes and machines').")
flags.DEFINE_string("coordinator", None, "HOST:PORT of process 0 (implies --distributed; "
                    "default: detected, or $JAX_COORDINATOR_ADDRESS).")
flags.DEFINE_integer("num_processes", None, "Number of processes (implies --distributed; "
                     "default: detected).")
flags.DEFINE_integer("process_id", None, "This process's index in [0, num_processes) "
                     "(implies --distributed; default: detected).")
flags.DEFINE_multi_string("sweep", [], "Sweep a config field or model argument; repeat for a "
                          "grid. Forms:\n" + sweep_syntax())


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare word such as elu


def _pairs(items: list[str], flag: str) -> dict:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--{flag} must be name=value, got {item!r}")
        out[name.strip()] = _literal(value.strip())
    return out


def config_from_flags():
    """Builds the TrainConfig (raises ValueError naming the flag on bad values)."""
    from cnn_jax.config import EarlyStoppingConfig, TrainConfig

    es = None
    if FLAGS.early_stopping:
        es = EarlyStoppingConfig(
            monitor=FLAGS.es_monitor, min_delta=FLAGS.es_min_delta, patience=FLAGS.es_patience,
            mode=FLAGS.es_mode, baseline=FLAGS.es_baseline,
            restore_best_weights=FLAGS.es_restore_best_weights,
            start_from_epoch=FLAGS.es_start_from_epoch)
    return TrainConfig(
        model=FLAGS.model, model_kwargs=_pairs(FLAGS.model_arg, "model_arg"),
        dataset=FLAGS.dataset, data_dir=FLAGS.data_dir, validation=FLAGS.validation,
        validation_fraction=FLAGS.validation_fraction, batch_size=FLAGS.batch_size,
        epochs=FLAGS.epochs, drop_remainder=FLAGS.drop_remainder, optimizer=FLAGS.optimizer,
        learning_rate=FLAGS.learning_rate,
        optimizer_kwargs=_pairs(FLAGS.optimizer_arg, "optimizer_arg"), loss=FLAGS.loss,
        early_stopping=es,
        seed=FLAGS.seed, num_devices=FLAGS.num_devices, checkpoint_every=FLAGS.checkpoint_every,
        standardize=FLAGS.standardize, precision=FLAGS.precision)



def graceful_interrupt() -> threading.Event:
    """First Ctrl-C: finish the epoch, checkpoint, stop. A second one stops at once."""
    stop = threading.Event()

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("interrupt: stopping after this epoch's checkpoint (Ctrl-C again: now)",
              file=sys.stderr, flush=True)

    signal.signal(signal.SIGINT, handler)
    return stop


def interrupted(error: BaseException) -> int:
    print(f"{error or 'interrupted'}; rerun the same command to resume", file=sys.stderr)
    return 130



def main(argv):
    # Our progress lines on stderr, plain; libraries (jax, orbax) only from warnings up.
    absl_logging.set_verbosity(absl_logging.WARNING)
    if len(argv) > 1:
        usage_error(f"unexpected arguments {argv[1:]}")
    if FLAGS.workdir is None:
        usage_error("--workdir is required (set it in the flagfile)")
    if FLAGS.platform is not None:
        if FLAGS.platform not in ("cpu", "gpu", "tpu"):
            usage_error(f"--platform must be cpu, gpu or tpu, got {FLAGS.platform!r}")
        import jax

        jax.config.update("jax_platforms", FLAGS.platform)
    import jax

    from cnn_jax import models, training
    from cnn_jax.training import distributed, sweep

    join = (FLAGS.coordinator, FLAGS.num_processes, FLAGS.process_id)
    if FLAGS.distributed or any(v is not None for v in join):
        try:
            distributed.check_arguments(*join)
        except ValueError as e:
            usage_error(f"--{e}")
        distributed.initialize(*join)
    try:
        config = config_from_flags()
        if config.model not in models.names():
            raise ValueError(f"--model must be one of {models.names()}, got {config.model!r}")
        training.loop.model_arguments(config)  # e.g. --precision for a model without it
    except ValueError as e:
        usage_error(str(e))
    axes = []
    for spec in FLAGS.sweep:
        try:
            axes.append(sweep.parse_sweep(spec))
            sweep.check_axes(config, axes)
        except ValueError as e:
            usage_error(f"--sweep={spec}: {e}")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger("cnn_jax")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    root.propagate = False
    root.info("devices: %s", jax.devices())
    stop = graceful_interrupt()
    if not axes:
        try:
            results = training.fit(config, FLAGS.workdir, should_stop=stop.is_set)
        except KeyboardInterrupt as e:
            return interrupted(e)
        print(f"{FLAGS.workdir}: {results['status']}  train_loss {results['train_loss']:.4f}  "
              f"train_acc {results['train_accuracy']:.4f}  valid_loss {results['valid_loss']:.4f}"
              f"  valid_acc {results['valid_accuracy']:.4f}  ({results['wall_time']:.1f} s)")
        return 1 if results["status"] == "non_finite_loss" else 0
    try:
        sweep.run_sweep(config, axes, FLAGS.workdir, should_stop=stop.is_set)
    except KeyboardInterrupt as e:
        return interrupted(e)
    with open(f"{FLAGS.workdir}/summary.md") as f:
        print(f.read())
    return 0


if __name__ == "__main__":
    run(main)
