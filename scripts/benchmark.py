"""Training speed side by side: ours vs the lecture's Keras code vs PyTorch, on one machine.

    python scripts/benchmark.py                      # everything (tens of minutes on 2 cores)
    python scripts/benchmark.py --frameworks=ours --models=mlp --depths=1,12 --epochs=3

For each model (the lecture's MLP at ``--depths``, the small CNN and, ours only, the P4 /
P4M CNNs and the scale-equivariant CNN of experiments/equivariance_practice.flags) and
framework, trains
``--epochs`` epochs with validation after each (batch 256, Adam) and reports the median
steady epoch (the first epoch is warm-up and shows compile time), the ratios, our achieved
FLOP/s against the machine's float32 matmul rate, the machine and the versions. Each
framework runs in its own subprocess (``--isolate``, default) so that the thread pools of
XLA and PyTorch do not compete and each peak memory is its own. With ``--sweep_dir`` it
also reports the time of a finished lecture sweep. Output: a Markdown table on stdout and
``--out``.md / ``--out``.json (atomic). ``--profile`` adds, per model of ours, the time of
each XLA op of one train step grouped by layer (``benchmarking.profile_train_step``). Bad
flags exit with code 2 and one line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import _cli
from _cli import as_int, bad_flag, check_choice, check_int, check_list, run, usage_error
from absl import flags

FRAMEWORKS = ("ours", "keras", "torch")
MODELS = ("mlp", "cnn", "p4cnn", "p4mcnn", "sesn")
# Ours only (Keras and PyTorch have no group or scale convolutions); the settings of
# experiments/equivariance_practice.flags, whose cost these models decide.
OURS_ONLY = {"p4cnn": {"features": (8, 16, 32)}, "p4mcnn": {"features": (8, 16, 32)},
             "sesn": {"features": (8, 16, 32), "kernel_size": 7, "num_scales": 3,
                      "pool": "max"}}
IMPLS = ("auto", "xla", "matmul")

FLAGS = flags.FLAGS
flags.DEFINE_list("frameworks", list(FRAMEWORKS), "Which of ours, keras, torch to run.")
flags.DEFINE_list("models", ["mlp", "cnn"], "Which of mlp, cnn, p4cnn, p4mcnn, sesn to "
                  "run (the last three: ours only).")
flags.DEFINE_list("depths", ["0", "1", "4", "12", "24"], "MLP hidden-layer counts.")
flags.DEFINE_list("conv_impl", ["auto"], "Our CNN's conv implementation(s): auto, xla, "
                  "matmul; several give one row each (e.g. xla,matmul for their ratio).")
flags.DEFINE_integer("epochs", 5, "Epochs per model and framework; the first is warm-up, "
                     "the medians are over the rest (>= 2).")
flags.DEFINE_integer("batch_size", 256, "Training batch size (the lecture's 256).")
flags.DEFINE_string("dataset", "fashion_mnist", "Dataset name for cnn_jax.data.load.")
flags.DEFINE_integer("limit", 0, "Use only the first N train and N test examples (0: all).")
flags.DEFINE_integer("seed", 0, "Seed for initialisation and shuffling.")
flags.DEFINE_integer("num_seeds", 0, "Also time N copies of the first --depths MLP trained "
                     "as one vectorised program (--num_seeds of train.py) against N runs one "
                     "after the other (0: not; else >= 2).")
flags.DEFINE_string("out", "runs/benchmark/benchmark", "Output path without suffix: writes "
                    "OUT.md and OUT.json.")
flags.DEFINE_string("sweep_dir", None, "A finished depth sweep (scripts/train.py "
                    "--flagfile=experiments/depth_sweep.flags) to report the time of.")
flags.DEFINE_boolean("profile", False, "Also time every XLA op of one train step of each "
                     "model of ours, grouped by layer (forward / backward / update).")
flags.DEFINE_boolean("isolate", True, "Run each framework in its own subprocess.")
flags.DEFINE_string("worker", None, "Internal: run one framework's block and write its "
                    "records as JSON to --worker_out.")
flags.DEFINE_string("worker_out", None, "Internal: where a worker writes its records.")




MAX_DEPTH, MAX_EPOCHS, MAX_BATCH = 1000, 10_000, 1 << 16


def check_flags() -> list[int]:
    """Checks every flag before any work (one line, exit 2); returns the depths as ints."""
    for name, allowed in (("frameworks", FRAMEWORKS), ("models", MODELS),
                          ("conv_impl", IMPLS)):
        check_list(name, getattr(FLAGS, name), lambda v, a=allowed: _one_of(v, a))
    depths = check_list("depths", FLAGS.depths, lambda v: as_int(v, 0, MAX_DEPTH),
                        allow_empty="mlp" not in FLAGS.models)
    check_int("epochs", FLAGS.epochs, 2, MAX_EPOCHS)  # the first epoch is the warm-up
    check_int("batch_size", FLAGS.batch_size, 1, MAX_BATCH)
    check_int("limit", FLAGS.limit, 0)
    check_int("seed", FLAGS.seed, 0, 2**32 - 1)
    if FLAGS.num_seeds != 0:
        check_int("num_seeds", FLAGS.num_seeds, 2, 1024)
        if "ours" not in FLAGS.frameworks or "mlp" not in FLAGS.models or not FLAGS.depths:
            bad_flag("num_seeds", FLAGS.num_seeds, "times our MLP: needs ours in --frameworks, "
                     "mlp in --models and a depth in --depths")
    from cnn_jax import data

    _cli.library_check("dataset", FLAGS.dataset, lambda: data.check_name(FLAGS.dataset))
    _cli.check_output("out", FLAGS.out, folder=False)
    if FLAGS.sweep_dir is not None:
        from cnn_jax import benchmarking

        _cli.check_folder("sweep_dir", FLAGS.sweep_dir)
        _cli.library_check("sweep_dir", FLAGS.sweep_dir,
                           lambda: benchmarking.sweep_report(FLAGS.sweep_dir))
    if FLAGS.worker is not None:
        check_choice("worker", FLAGS.worker, FRAMEWORKS)
        _cli.check_output("worker_out", FLAGS.worker_out, folder=False)
    elif FLAGS.worker_out is not None:
        bad_flag("worker_out", FLAGS.worker_out, "only goes with --worker (internal flags)")
    else:
        import importlib.util

        for fw in FLAGS.frameworks:
            if fw != "ours" and importlib.util.find_spec(fw) is None:
                bad_flag("frameworks", FLAGS.frameworks, f"{fw} is not installed "
                         "(pip install -e '.[bench]'), or leave it out")
    return depths


def _one_of(value: str, allowed) -> str:
    if value not in allowed:
        raise ValueError(f"unknown; expected items from {', '.join(allowed)}")
    return value


# ------------------------------------------------------------------- the workloads


def workloads(depths: list[int]) -> list[dict]:
    """One entry per model to run: ``{"model", "depth", "label"}``."""
    out = []
    if "mlp" in FLAGS.models:
        out += [{"model": "mlp", "depth": d, "label": f"mlp depth {d}"} for d in depths]
    out += [{"model": m, "depth": None, "label": m} for m in MODELS[1:] if m in FLAGS.models]
    return out


def theirs(work_list: list[dict], framework: str) -> list[dict]:
    """The workloads that ``framework`` (keras or torch) has: not the ours-only models."""
    skipped = [w["label"] for w in work_list if w["model"] in OURS_ONLY]
    if skipped:
        print(f"  {framework}: {', '.join(skipped)} skipped (no group or scale convolutions "
              f"in {framework}; ours only)", flush=True)
    return [w for w in work_list if w["model"] not in OURS_ONLY]


def load_arrays():
    """(x_train, y_train, x_test, y_test, num_classes): uint8 NHWC images, int32 labels."""
    from cnn_jax import data

    part = f"[:{FLAGS.limit}]" if FLAGS.limit else ""
    train = data.load(FLAGS.dataset, "train" + part)
    test = data.load(FLAGS.dataset, "test" + part)
    return train.images, train.labels, test.images, test.labels, train.info.num_classes


def _record(work: dict, framework: str, n_train: int, n_valid: int, train_times, val_times,
            **extra) -> dict:
    return {"framework": framework, "model": work["model"], "depth": work["depth"],
            "label": work["label"], "n_train": int(n_train), "n_valid": int(n_valid),
            "batch_size": FLAGS.batch_size, "train_times": list(train_times),
            "val_times": list(val_times), **extra}


def run_ours(work_list: list[dict]) -> list[dict]:
    """Our real train_epoch/evaluate path, jitted as in fit (cnn_jax.benchmarking)."""
    from cnn_jax import benchmarking, models
    from cnn_jax.ops.conv import resolve_impl
    from cnn_jax.training import DeviceData, make_mesh

    x_train, y_train, x_test, y_test, classes = load_arrays()
    mesh = make_mesh()
    data = DeviceData.from_arrays(x_train, y_train, x_test, y_test, classes, mesh=mesh)
    records = []
    for work in work_list:
        if work["model"] == "mlp":
            variants = [({"num_layers": work["depth"], "units": 512, "activation": "elu"},
                         work["label"], None)]
        else:
            impls = list(dict.fromkeys(FLAGS.conv_impl))
            name = work["model"]
            variants = [({**OURS_ONLY.get(name, {}), "conv_impl": impl},
                         f"{name} (conv: {impl} = {resolve_impl(impl)})", impl)
                        for impl in impls]
        for kwargs, label, impl in variants:
            model = models.get(work["model"], num_classes=classes, **kwargs)
            rec = benchmarking.bench_ours(model, data, label=label, epochs=FLAGS.epochs,
                                          batch_size=FLAGS.batch_size, seed=FLAGS.seed,
                                          mesh=mesh)
            if FLAGS.profile:
                rec["profile"] = benchmarking.profile_train_step(
                    model, data.train_images.shape[1:], batch_size=FLAGS.batch_size,
                    seed=FLAGS.seed)
            records.append({**rec, "model": work["model"], "depth": work["depth"],
                            "workload": work["label"], "conv_impl": impl})
            print(f"  ours {label}: train {rec['train_times']}", flush=True)
    return records


# ------------------------------------------------------------ Keras (the lecture's code)


class _KerasEpochTimer:
    """Keras callback factory: per-epoch training and validation seconds."""

    @staticmethod
    def make(keras):
        class EpochTimer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.train_times, self.val_times = [], []

            def on_epoch_begin(self, epoch, logs=None):
                self._t0 = self._t1 = self._t2 = time.perf_counter()

            def on_test_begin(self, logs=None):
                # Keras's JAX trainer dispatches asynchronously: wait for the epoch's last
                # update, or its compute would be booked as validation time.
                import jax

                jax.block_until_ready([v.value for v in self.model.variables])
                self._t1 = time.perf_counter()

            def on_test_end(self, logs=None):
                self._t2 = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                total = time.perf_counter() - self._t0
                self.val_times.append(self._t2 - self._t1)
                self.train_times.append(total - self.val_times[-1])

        return EpochTimer()


def keras_model(keras, model: str, depth: int | None, image_shape, classes: int):
    """The lecture's networks in Keras: the Dense(512, elu) stack, or the small CNN."""
    from keras.layers import Conv2D, Dense, Flatten, Input, MaxPooling2D

    if model == "mlp":
        layers = [Input(shape=image_shape[:2]), Flatten()]
        layers += [Dense(512, activation="elu") for _ in range(depth)]
    else:
        layers = [Input(shape=image_shape), Conv2D(32, 3, activation="relu"), MaxPooling2D(),
                  Conv2D(64, 3, activation="relu"), MaxPooling2D(), Flatten(),
                  Dense(128, activation="relu")]
    return keras.Sequential(layers + [Dense(classes, activation="softmax")])


def run_keras(work_list: list[dict]) -> list[dict]:
    """Keras 3 on its JAX backend with the lecture's compile/fit calls."""
    os.environ["KERAS_BACKEND"] = "jax"
    import keras

    if keras.backend.backend() != "jax":
        raise RuntimeError(f"keras was imported with backend {keras.backend.backend()!r} "
                           "before KERAS_BACKEND=jax was set; use --isolate")
    x_train, y_train, x_test, y_test, classes = load_arrays()
    x_train, x_test = x_train / 255.0, x_test / 255.0
    y_train_1h = keras.utils.to_categorical(y_train, classes)
    y_test_1h = keras.utils.to_categorical(y_test, classes)
    records = []
    for work in theirs(work_list, "keras"):
        keras.utils.set_random_seed(FLAGS.seed)
        shape = x_train.shape[1:]
        xs = (x_train[..., 0], x_test[..., 0]) if work["model"] == "mlp" else (x_train, x_test)
        model = keras_model(keras, work["model"], work["depth"], shape, classes)
        model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
        timer = _KerasEpochTimer.make(keras)
        hist = model.fit(xs[0], y_train_1h, batch_size=FLAGS.batch_size, epochs=FLAGS.epochs,
                         validation_data=(xs[1], y_test_1h), callbacks=[timer], verbose=0)
        records.append(_record(work, "keras", len(y_train), len(y_test), timer.train_times,
                               timer.val_times, workload=work["label"],
                               val_accuracy=float(hist.history["val_accuracy"][-1])))
        print(f"  keras {work['label']}: train {timer.train_times}", flush=True)
        keras.backend.clear_session()
    return records


# ----------------------------------------------------------------------------- PyTorch


def torch_model(torch, model: str, depth: int | None, image_shape, classes: int):
    """The same networks in PyTorch (NCHW; logits, with the softmax inside the loss)."""
    nn = torch.nn
    if model == "mlp":
        width = image_shape[0] * image_shape[1] * image_shape[2]
        layers = [nn.Flatten()]
        for _ in range(depth):
            layers += [nn.Linear(width, 512), nn.ELU()]
            width = 512
        return nn.Sequential(*layers, nn.Linear(width, classes))
    h, w, c = image_shape
    flat = 64 * ((((h - 2) // 2) - 2) // 2) * ((((w - 2) // 2) - 2) // 2)
    return nn.Sequential(
        nn.Conv2d(c, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(flat, 128), nn.ReLU(), nn.Linear(128, classes))


def run_torch(work_list: list[dict]) -> list[dict]:
    """A plain PyTorch CPU loop: shuffled batches, Adam (Keras's defaults), validation."""
    import torch

    torch.set_num_threads(os.cpu_count())
    x_train, y_train, x_test, y_test, classes = load_arrays()
    shape = x_train.shape[1:]
    to_nchw = lambda x: torch.tensor(x).permute(0, 3, 1, 2).float().div(255.0).contiguous()
    xt, xv = to_nchw(x_train), to_nchw(x_test)
    yt, yv = torch.tensor(y_train).long(), torch.tensor(y_test).long()
    bs, records = FLAGS.batch_size, []
    for work in theirs(work_list, "torch"):
        torch.manual_seed(FLAGS.seed)
        model = torch_model(torch, work["model"], work["depth"], shape, classes)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
        loss_fn = torch.nn.CrossEntropyLoss()
        train_times, val_times = [], []
        for _ in range(FLAGS.epochs):
            t0 = time.perf_counter()
            model.train()
            perm = torch.randperm(len(yt))
            correct = torch.zeros(())
            for start in range(0, len(yt), bs):
                idx = perm[start:start + bs]
                logits = model(xt[idx])
                loss = loss_fn(logits, yt[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                correct += (logits.detach().argmax(1) == yt[idx]).sum()
            t1 = time.perf_counter()
            model.eval()
            val_correct = 0
            with torch.no_grad():
                for start in range(0, len(yv), bs):
                    logits = model(xv[start:start + bs])
                    val_correct += int((logits.argmax(1) == yv[start:start + bs]).sum())
            train_times.append(t1 - t0)
            val_times.append(time.perf_counter() - t1)
        records.append(_record(work, "torch", len(yt), len(yv), train_times, val_times,
                               workload=work["label"], val_accuracy=val_correct / len(yv)))
        print(f"  torch {work['label']}: train {train_times}", flush=True)
    return records


RUNNERS = {"ours": run_ours, "keras": run_keras, "torch": run_torch}


class WorkerFailed(RuntimeError):
    """A framework's subprocess exited with an error (it printed its own message)."""


def data_errors() -> tuple[type[Exception], ...]:
    """Exceptions that mean missing or corrupt data (shown as a message, not a traceback)."""
    from cnn_jax import data

    return (data.DatasetNotFound, data.IdxError)


# ------------------------------------------------------------------------ orchestration


def _worker_argv(framework: str, out_path: str) -> list[str]:
    names = ("models", "depths", "conv_impl", "epochs", "batch_size", "dataset", "limit",
             "seed", "profile")
    argv = [sys.executable, os.path.abspath(__file__), f"--worker={framework}",
            f"--worker_out={out_path}", f"--frameworks={framework}"]
    for name in names:
        value = getattr(FLAGS, name)
        argv.append(f"--{name}={','.join(value) if isinstance(value, list) else value}")
    return argv


def run_framework(framework: str, work_list: list[dict]) -> dict:
    """Runs one framework's block, in a subprocess with ``--isolate``.

    Returns:
      ``{"records", "peak_rss_bytes", "wall_s", "loadavg_before", "loadavg_after"}``.
    """
    from cnn_jax import benchmarking

    load_before, t0 = os.getloadavg(), time.perf_counter()
    if not FLAGS.isolate:
        records = RUNNERS[framework](work_list)
        result = {"records": records, "peak_rss_bytes": benchmarking.peak_rss_bytes()}
    else:
        with tempfile.TemporaryDirectory() as tmp:
            out_path = os.path.join(tmp, "records.json")
            env = {**os.environ, "KERAS_BACKEND": "jax"}
            proc = subprocess.run(_worker_argv(framework, out_path), env=env)
            if proc.returncode != 0:
                raise WorkerFailed(f"the {framework} worker failed (exit {proc.returncode}); "
                                   "its output is above")
            with open(out_path) as f:
                result = json.load(f)
    result.update(wall_s=time.perf_counter() - t0, loadavg_before=load_before,
                  loadavg_after=os.getloadavg())
    return result


def build_rows(records: list[dict]) -> list[dict]:
    """Groups records by workload; our CNN with several conv impls gives several rows."""
    from cnn_jax import benchmarking

    rows = {}
    ours_labels = {}
    for rec in records:
        if rec["framework"] == "ours":
            ours_labels.setdefault(rec["workload"], []).append(rec["label"])
    for rec in records:
        labels = ([rec["label"]] if rec["framework"] == "ours"
                  else ours_labels.get(rec["workload"], [rec["workload"]]))
        for label in labels:
            row = rows.setdefault(label, {"label": label, "model": rec["model"],
                                          "depth": rec["depth"], "records": {},
                                          "summaries": {}})
            row["records"][rec["framework"]] = rec
            row["summaries"][rec["framework"]] = benchmarking.summarize(rec)
    return list(rows.values())


def main(argv):
    if len(argv) > 1:
        usage_error(f"unexpected arguments {argv[1:]}")
    depths = check_flags()
    work_list = workloads(depths)
    if FLAGS.worker is not None:
        from cnn_jax import benchmarking

        try:
            records = RUNNERS[FLAGS.worker](work_list)
        except (data_errors()) as e:  # missing or corrupt data: the message, no traceback
            _cli.fail(str(e))
        from cnn_jax import io

        io.write_json(FLAGS.worker_out, {"records": records,
                                         "peak_rss_bytes": benchmarking.peak_rss_bytes()})
        return 0

    from cnn_jax import benchmarking

    frameworks = [fw for fw in FRAMEWORKS if fw in FLAGS.frameworks]
    rates = {}
    if "ours" in frameworks:  # best of repeats; bench_ours probes again after every epoch
        rates = {"2048^3": benchmarking.matmul_rate(),
                 "256x512x512 (MLP layer)": benchmarking.matmul_rate(256, 512, 512,
                                                                     repeats=50)}
    sweep = benchmarking.sweep_report(FLAGS.sweep_dir) if FLAGS.sweep_dir else None
    blocks = {}
    for fw in frameworks:
        print(f"[{fw}] {len(work_list)} model(s), {FLAGS.epochs} epochs each", flush=True)
        try:
            blocks[fw] = run_framework(fw, work_list)
        except (WorkerFailed, *data_errors()) as e:
            _cli.fail(str(e))
        # Rewritten after every block, so a long run leaves the finished blocks behind.
        report = make_report(blocks, rates, sweep)
        md_path, json_path = benchmarking.write_report(FLAGS.out, report)
    if FLAGS.num_seeds:
        report = make_report(blocks, rates, sweep, run_seeds(depths[0]))
        md_path, json_path = benchmarking.write_report(FLAGS.out, report)
    print(benchmarking.format_markdown(report))
    print(f"written: {md_path}, {json_path}")
    return 0


def run_seeds(depth: int) -> dict:
    """The seeds row: ``--num_seeds`` MLPs of ``depth``, vectorised vs one after the other."""
    from cnn_jax import benchmarking, models
    from cnn_jax.training import DeviceData, make_mesh

    x_train, y_train, x_test, y_test, classes = load_arrays()
    mesh = make_mesh()
    data = DeviceData.from_arrays(x_train, y_train, x_test, y_test, classes, mesh=mesh)
    model = models.get("mlp", num_classes=classes, num_layers=depth, units=512,
                       activation="elu")
    print(f"[seeds] {FLAGS.num_seeds} x mlp depth {depth}, {FLAGS.epochs} epochs", flush=True)
    record = benchmarking.bench_seeds(model, data, num_seeds=FLAGS.num_seeds,
                                      epochs=FLAGS.epochs, batch_size=FLAGS.batch_size,
                                      seed=FLAGS.seed, mesh=mesh)
    return {**record, "label": f"mlp depth {depth}"}


def make_report(blocks: dict[str, dict], rates: dict[str, float], sweep,
                seeds: dict | None = None) -> dict:
    """The report (JSON-ready) over the framework blocks run so far (and the seeds row)."""
    from cnn_jax import benchmarking

    frameworks = list(blocks)
    records = [r for b in blocks.values() for r in b["records"]]
    rows = build_rows(records)
    mode = "each in its own subprocess" if FLAGS.isolate else "all in this process"
    eval_batches = sorted({r["eval_batch_size"] for r in records if "eval_batch_size" in r})
    notes = [
        f"Frameworks ran one after another, {mode}; peak resident memory per block: "
        + ", ".join(f"{fw} {b['peak_rss_bytes'] / 2**20:.0f} MiB" for fw, b in blocks.items())
        + f" (this process: {benchmarking.peak_rss_bytes() / 2**20:.0f} MiB).",
        "Load average (1 min) before/after each block: "
        + ", ".join(f"{fw} {b['loadavg_before'][0]:.1f}/{b['loadavg_after'][0]:.1f}"
                    for fw, b in blocks.items())
        + "; above the core count means other processes competed and the times are noisy.",
        "ours: cnn_jax.training.train_epoch / evaluate jitted as in fit (whole epoch one "
        f"program, data on device, validation batch {eval_batches} as fit picks it). "
        "keras: the lecture's Sequential + "
        "compile('adam', categorical_crossentropy, accuracy) + fit(batch_size, "
        "validation_data) on KERAS_BACKEND=jax. torch: a plain loop, "
        "torch.set_num_threads(os.cpu_count()), Adam(eps=1e-7), validation batch = "
        "batch size, PyTorch's default initialisation.",
        "Final validation accuracy per block (sanity, short runs): "
        + "; ".join(f"{r['framework']} {r['label']} {r.get('val_accuracy', float('nan')):.3f}"
                    for r in records),
    ]
    if seeds is not None:
        n = seeds["num_seeds"]
        notes.append(
            f"Seeds in one program ({seeds['label']}, training only, median of steady epochs): "
            f"{n} copies vectorised {seeds['vectorized_s']:.3f} s per epoch, {n} runs one "
            f"after the other {seeds['sequential_s']:.3f} s: {seeds['ratio']:.2f}x the "
            f"throughput (last-epoch losses differ by {seeds['max_loss_difference']:.1e}).")
    only = [w for w in FLAGS.models if w in OURS_ONLY]
    if only and set(frameworks) - {"ours"}:
        notes.append(f"{', '.join(only)}: ours only (Keras and PyTorch have no group or scale "
                     "convolutions); their other cells are empty.")
    if only:
        notes.append("Settings of the ours-only models (experiments/equivariance_practice."
                     "flags): " + "; ".join(f"{m} {OURS_ONLY[m]}" for m in only) + ".")
    missing = [fw for fw in FLAGS.frameworks if fw not in blocks]
    if missing:
        notes.insert(0, f"Partial report: {', '.join(missing)} not run yet.")
    return {
        "machine": benchmarking.machine_info(),
        "versions": benchmarking.versions(),
        "settings": (f"dataset {FLAGS.dataset}"
                     + (f" (first {FLAGS.limit} train/test examples)" if FLAGS.limit else "")
                     + f", batch {FLAGS.batch_size}, {FLAGS.epochs} epochs per model "
                     f"(first = warm-up), frameworks {','.join(frameworks)}"),
        "frameworks": frameworks,
        "matmul_rate": rates,
        "rows": rows,
        "totals": benchmarking.totals(rows, frameworks),
        "sweep": sweep,
        "seeds": seeds,
        "sweep_lines": benchmarking.sweep_lines(sweep, rows, frameworks) if sweep else [],
        "notes": notes,
        "blocks": {fw: {k: v for k, v in b.items() if k != "records"}
                   for fw, b in blocks.items()},
    }


if __name__ == "__main__":
    run(main)
