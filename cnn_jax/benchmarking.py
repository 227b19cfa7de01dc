"""Our side of the speed benchmark: timing our epochs, counting FLOPs, probing the machine.

``scripts/benchmark.py`` runs the same workloads with Keras and PyTorch and puts the
records that these helpers produce side by side. A record is a plain dict (JSON-ready):

* ``framework``, ``model`` (``"mlp"`` or ``"cnn"``), ``label`` (the table's row name),
  ``depth`` (MLP hidden layers, else ``None``), ``conv_impl`` (ours, CNN only);
* ``n_train``, ``n_valid``, ``batch_size``;
* ``train_times`` and ``val_times``: seconds per epoch, the first epoch (warm-up, which
  includes compilation) first.

``summarize`` turns a record into medians over the steady epochs (all but the first).
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import math
import os
import platform
import re
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jax_core
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from cnn_jax import io

__all__ = [
    "bench_ours",
    "bench_seeds",
    "count_matmul_flops",
    "fitted_epoch_time",
    "format_markdown",
    "format_profile",
    "machine_info",
    "matmul_probe",
    "matmul_rate",
    "peak_rss_bytes",
    "profile_train_step",
    "spread",
    "summarize",
    "sweep_lines",
    "sweep_report",
    "sweep_table",
    "totals",
    "versions",
    "write_report",
]

VERSION_PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "keras", "torch")


# ------------------------------------------------------------------------ the machine


def machine_info() -> dict[str, Any]:
    """CPU model, core counts, OS, Python and JAX's devices (for the report's header)."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu": model,
        "cpu_count": os.cpu_count(),
        "usable_cores": usable,
        "os": platform.platform(),
        "python": platform.python_version(),
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
    }


def versions(packages: Sequence[str] = VERSION_PACKAGES) -> dict[str, str]:
    """Installed versions of ``packages`` (``"not installed"`` for missing ones), no imports."""
    out = {}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (``ru_maxrss``; KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _times(fn: Callable[[], Any], repeats: int) -> list[float]:
    """Seconds of ``repeats`` calls of ``fn`` (after one untimed call that compiles)."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return times


def matmul_probe(m: int = 2048, k: int = 2048, n: int = 2048) -> Callable[[int], list[float]]:
    """A probe of the float32 rate of one jitted ``[m, k] @ [k, n]`` (``2 m k n`` FLOPs).

    Returns:
      ``probe(repeats)`` -> FLOP/s of each of ``repeats`` timed products (compiled once, on
      the first call). Call it between other work to see the machine's rate as it drifts.
    """
    ka, kb = jax.random.split(jax.random.key(0))
    a = jax.random.normal(ka, (m, k), jnp.float32)
    b = jax.random.normal(kb, (k, n), jnp.float32)
    dot = jax.jit(jnp.dot)
    return lambda repeats: [2.0 * m * k * n / t for t in _times(lambda: dot(a, b), repeats)]


def matmul_rate(m: int = 2048, k: int = 2048, n: int = 2048, *,
                repeats: int = 10) -> dict[str, float]:
    """float32 FLOP/s of a jitted ``[m, k] @ [k, n]``: best, median and worst of ``repeats``.

    The best is the machine's rate (other processes only slow a product down); the worst
    shows how much the load moved it.
    """
    rates = matmul_probe(m, k, n)(repeats)
    return {"best": max(rates), "median": statistics.median(rates), "worst": min(rates),
            "n": len(rates)}


def spread(values: Sequence[float]) -> float:
    """(max - min) / median of ``values`` (0 for fewer than two)."""
    return (max(values) - min(values)) / statistics.median(values) if len(values) > 1 else 0.0


# ------------------------------------------------------------------------------ FLOPs


def _eqn_flops(eqn) -> int:
    if eqn.primitive.name == "dot_general":
        (contract, _), _ = eqn.params["dimension_numbers"]
        lhs = eqn.invars[0].aval.shape
        depth = math.prod(lhs[d] for d in contract)
        return 2 * math.prod(eqn.outvars[0].aval.shape) * depth
    if eqn.primitive.name == "conv_general_dilated":
        rhs = eqn.invars[1].aval.shape
        out_feature_dim = eqn.params["dimension_numbers"].rhs_spec[0]
        per_output = math.prod(rhs) // rhs[out_feature_dim]  # window taps x input channels
        return 2 * math.prod(eqn.outvars[0].aval.shape) * per_output
    return 0


def _jaxpr_flops(jaxpr) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        total += _eqn_flops(eqn)
        for sub in jax_core.jaxprs_in_params(eqn.params):
            inner = _jaxpr_flops(sub)
            if eqn.primitive.name == "scan":
                inner *= eqn.params["length"]
            total += inner
    return total


def count_matmul_flops(fn: Callable, *args, **kwargs) -> int:
    """FLOPs of the matrix products and convolutions that ``fn(*args)`` traces to.

    Counted from the jaxpr, before XLA: ``2 * prod(out) * K`` per ``dot_general`` (``K`` the
    contracted size) and ``2 * prod(out) * taps * in_channels`` per convolution, inside
    nested calls too (a ``scan`` body counts ``length`` times). Element-wise work
    (activations, the optimizer update) is left out; for the models here it is a few
    percent of the total. Gradients that autodiff does not need (e.g. with respect to the
    input images) are not traced, hence not counted.

    >>> count_matmul_flops(jnp.dot, jnp.ones((4, 3)), jnp.ones((3, 5)))
    120
    """
    return _jaxpr_flops(jax.make_jaxpr(fn)(*args, **kwargs).jaxpr)


# ------------------------------------------------------------------------ our epochs


def bench_ours(model, data, *, label: str, epochs: int, batch_size: int, seed: int = 0,
               mesh: Mesh | None = None, probe_repeats: int = 3) -> dict[str, Any]:
    """Times ``epochs`` epochs of training + validation of ``model`` the way ``fit`` runs them.

    The real ``train_epoch`` and ``evaluate`` are jitted as in ``training.fit`` (the epoch
    is one program; the state is donated; the metrics are fetched after each epoch, which
    waits for it). Their compilation is timed directly (``jit(f).lower(...).compile()``,
    once: a repeat would hit JAX's in-memory cache), so the epochs run compiled programs.
    After each epoch the 2048^3 matmul rate is probed (best of ``probe_repeats``), so the
    fraction of it that the model reaches compares numbers taken under the same load. No
    checkpoints or metric files are written.

    Args:
      model: a Flax module from ``models.get``.
      data: a ``training.DeviceData`` (placed on the devices once, shared by all models).
      label: the record's row name.
      epochs: epochs to run; the first is the warm-up (it compiles).
      batch_size: training batch size.
      seed: initialisation and shuffling seed.
      mesh: the device mesh ``data`` lives on (default: all local devices).
      probe_repeats: matmul products per probe (the probe keeps the fastest).

    Returns:
      A record (module docstring) plus ``compile_times`` (``[seconds]`` of lowering +
      compiling both programs), ``flops_per_step`` (``count_matmul_flops`` of one ``train_step``),
      ``steps_per_epoch``, ``matmul_rates`` (FLOP/s, one probe per epoch), ``matmul_rate``
      (their best) and the final ``accuracy``/``val_accuracy``.
    """
    from cnn_jax.training import loop, steps

    mesh = mesh or loop.make_mesh()
    tx = steps.make_optimizer("adam", 1e-3)
    init_key, root = jax.random.split(jax.random.key(seed))
    state = steps.create_train_state(model, tx, init_key, data.train_images.shape[1:])
    state = jax.device_put(state, NamedSharding(mesh, PartitionSpec()))
    n_train, n_valid = data.train_images.shape[0], data.valid_images.shape[0]
    norm = dict(mean=data.mean, std=data.std, mesh=mesh)
    epoch_fn = jax.jit(functools.partial(steps.train_epoch, batch_size=batch_size, **norm),
                       donate_argnums=0)
    eval_batch = loop.eval_batch_size(batch_size, mesh)  # as fit chooses it
    eval_fn = jax.jit(functools.partial(steps.evaluate, apply_fn=state.apply_fn,
                                        batch_size=eval_batch, **norm))
    epoch_args = (state, data.train_images, data.train_labels, root)
    eval_args = (state.variables, data.valid_images, data.valid_labels)
    # Lowering + XLA compilation of both programs, timed directly. Once: JAX keeps the
    # executable in memory, so a second compile of the same program takes microseconds.
    t0 = time.perf_counter()
    run_epoch = epoch_fn.lower(*epoch_args).compile()
    run_eval = eval_fn.lower(*eval_args).compile()
    compile_times = [time.perf_counter() - t0]

    batch = {"image": jnp.zeros((batch_size, *data.train_images.shape[1:]), jnp.float32),
             "label": jnp.zeros((batch_size,), jnp.int32),
             "mask": jnp.ones((batch_size,), bool)}
    flops = count_matmul_flops(steps.train_step, state, batch, init_key)
    # The machine's rate, probed after every epoch (best of a few products each time): on a
    # shared machine the load drifts, and one probe minutes earlier misstates the fraction.
    probe = matmul_probe()
    rates = []

    train_times, val_times = [], []
    for epoch in range(epochs):
        t0 = time.perf_counter()
        state, train_m = run_epoch(state, data.train_images, data.train_labels,
                                   jax.random.fold_in(root, epoch))
        train_m = jax.device_get(train_m)
        t1 = time.perf_counter()
        val_m = jax.device_get(run_eval(state.variables, data.valid_images, data.valid_labels))
        train_times.append(t1 - t0)
        val_times.append(time.perf_counter() - t1)
        rates.append(max(probe(probe_repeats)))
    return {
        "framework": "ours", "label": label, "n_train": int(n_train), "n_valid": int(n_valid),
        "batch_size": batch_size, "eval_batch_size": eval_batch,
        "train_times": train_times, "val_times": val_times, "compile_times": compile_times,
        "flops_per_step": flops, "steps_per_epoch": math.ceil(n_train / batch_size),
        "matmul_rates": rates, "matmul_rate": max(rates),
        "accuracy": float(train_m["accuracy"]), "val_accuracy": float(val_m["accuracy"]),
    }


def _hlo_op_names(hlo_text: str) -> dict[str, tuple[str, str]]:
    """{HLO instruction name: (opcode, jaxpr op_name)} from a compiled module's text."""
    out = {}
    pattern = re.compile(r"\s*(?:ROOT )?%?([\w.\-]+) = [^=]*? ([\w\-]+)\(.*?"
                         r"metadata=\{op_name=\"([^\"]*)\"")
    for line in hlo_text.splitlines():
        match = pattern.match(line)
        if match:
            out[match.group(1)] = (match.group(2), match.group(3))
    return out


def _op_place(op_name: str) -> tuple[str, str, str]:
    """(phase, layer, primitive) of a jaxpr op_name such as
    ``jit(train_step)/transpose(jvp(SESN))/sconv_2/transpose(jvp())/dot_general``:
    phase "backward" under ``transpose(...)``, "forward" under ``jvp(...)``, else "update"
    (loss, optimizer); the layer is the model's child module (or "-"), past the scopes of
    the model's own methods (``Net._body`` when ``Net.__call__`` calls ``self._body``)."""
    parts = op_name.split("/")[1:]  # drop jit(train_step)
    if not parts:
        return "update", "-", op_name
    head, rest = parts[0], parts[1:]
    phase = ("backward" if head.startswith("transpose(") else
             "forward" if head.startswith("jvp(") else "update")
    while len(rest) > 1 and _METHOD_SCOPE.fullmatch(rest[0]):
        rest = rest[1:]
    layer = rest[0] if phase != "update" and len(rest) > 1 else "-"
    return phase, layer, parts[-1]


_METHOD_SCOPE = re.compile(r"[A-Za-z_]\w*\.[A-Za-z_]\w*")  # Module.method


def profile_train_step(model, input_shape: Sequence[int], *, batch_size: int, seed: int = 0,
                       repeats: int = 5, top: int = 12) -> dict[str, Any]:
    """Per-op time of one compiled ``train_step`` of ``model``, from XLA's own profiler.

    The step is jitted alone (random images, Adam), compiled (timed: lowering + XLA
    compilation), run once, then ``repeats`` times under ``jax.profiler``'s session; each
    XLA:CPU thunk (a fusion, a dot, a copy, ...) is one profiler event named after its HLO
    instruction, whose metadata names the jaxpr op and the module it came from. Times are
    per step, summed over the threads that ran them (so with several cores the sum can
    exceed the wall time).

    Args:
      model: a Flax module from ``models.get``.
      input_shape: one image, [H, W, C].
      batch_size: images per step.
      seed: initialisation seed.
      repeats: profiled steps (the times are their mean).
      top: how many of the slowest HLO ops to list.

    Returns:
      ``{"step_s"`` (wall, mean of ``repeats`` unprofiled steps), ``"compile_s"``,
      ``"op_s"`` (sum of the ops' times per step), ``"layers"``: [{"layer", "phase",
      "seconds", "ops"}] slowest first (layer: the model's child module, phase forward /
      backward / update), ``"ops"``: [{"hlo", "op_name", "seconds"}] the ``top`` slowest``}``.
    """
    from jax._src.lib import _profiler

    from cnn_jax.training import steps

    key = jax.random.key(seed)
    state = steps.create_train_state(model, steps.make_optimizer("adam", 1e-3), key,
                                     tuple(input_shape))
    batch = {"image": jax.random.normal(key, (batch_size, *input_shape)),
             "label": jnp.zeros((batch_size,), jnp.int32),
             "mask": jnp.ones((batch_size,), bool)}
    t0 = time.perf_counter()
    compiled = jax.jit(steps.train_step).lower(state, batch, key).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(state, batch, key))
    t0 = time.perf_counter()
    for _ in range(repeats):
        jax.block_until_ready(compiled(state, batch, key))
    step_s = (time.perf_counter() - t0) / repeats
    names = _hlo_op_names(compiled.as_text())
    session = _profiler.ProfilerSession()
    for _ in range(repeats):
        jax.block_until_ready(compiled(state, batch, key))
    profile = jax.profiler.ProfileData.from_serialized_xspace(session.stop())
    per_op: dict[str, float] = {}
    for plane in profile.planes:
        for line in plane.lines:
            for event in line.events:
                opcode, _ = names.get(event.name, ("", ""))
                # control flow thunks hold their body's thunks: count those, not the wrapper
                if opcode and opcode not in ("while", "conditional", "call"):
                    per_op[event.name] = (per_op.get(event.name, 0.0)
                                          + event.duration_ns * 1e-9 / repeats)
    layers: dict[tuple[str, str], dict[str, Any]] = {}
    for hlo, seconds in per_op.items():
        phase, layer, primitive = _op_place(names[hlo][1])
        entry = layers.setdefault((layer, phase), {"layer": layer, "phase": phase,
                                                   "seconds": 0.0, "ops": {}})
        entry["seconds"] += seconds
        entry["ops"][primitive] = entry["ops"].get(primitive, 0.0) + seconds
    ops = sorted(per_op.items(), key=lambda kv: -kv[1])[:top]
    return {"step_s": step_s, "compile_s": compile_s, "batch_size": batch_size,
            "op_s": sum(per_op.values()),
            "layers": sorted(layers.values(), key=lambda e: -e["seconds"]),
            "ops": [{"hlo": h, "op_name": names[h][1], "seconds": s} for h, s in ops]}


def format_profile(label: str, prof: dict[str, Any]) -> list[str]:
    """Markdown lines: the per-layer table and the slowest HLO ops of one profile."""
    total = prof["op_s"] or 1.0
    lines = [f"### {label}", "",
             f"train_step (batch {prof['batch_size']}) {1e3 * prof['step_s']:.1f} ms wall, "
             f"{1e3 * prof['op_s']:.1f} ms summed over XLA ops; compile "
             f"{prof['compile_s']:.2f} s.", "",
             "| layer | phase | ms / step | % of ops | by primitive (ms) |",
             "|---|---|---|---|---|"]
    for e in prof["layers"]:
        by = sorted(e["ops"].items(), key=lambda kv: -kv[1])[:4]
        lines.append(f"| {e['layer']} | {e['phase']} | {1e3 * e['seconds']:.2f} | "
                     f"{100 * e['seconds'] / total:.0f} | "
                     + ", ".join(f"{k} {1e3 * v:.1f}" for k, v in by) + " |")
    lines += ["", "| slowest HLO ops | ms / step | jaxpr op |", "|---|---|---|"]
    lines += [f"| {o['hlo']} | {1e3 * o['seconds']:.2f} | {o['op_name']} |" for o in prof["ops"]]
    return lines + [""]


def bench_seeds(model, data, *, num_seeds: int, epochs: int, batch_size: int, seed: int = 0,
                mesh: Mesh | None = None) -> dict[str, Any]:
    """Training time of ``num_seeds`` copies of ``model``: one vectorised program (the epoch
    of ``training.fit_seeds``) against one run after the other (``fit``'s epoch), on the
    same data, seeds ``seed + i``. Validation is left out; the first epoch (compiling) is
    the warm-up, the medians are over the rest.

    Returns:
      ``{"num_seeds", "n_train", "vectorized_times", "sequential_times"`` (seconds per
      epoch for all members), ``"vectorized_s", "sequential_s"`` (steady medians),
      ``"ratio"`` (sequential / vectorised: the throughput gain), ``"max_loss_difference"``
      (last epoch, vectorised against sequential: a sanity check)``}``.

    Raises:
      ValueError: ``num_seeds`` < 1 or ``epochs`` < 2.
    """
    from cnn_jax.training import loop, seeds, steps

    if num_seeds < 1 or epochs < 2:
        raise ValueError(f"num_seeds={num_seeds}, epochs={epochs}: need >= 1 and >= 2")
    mesh = mesh or loop.make_mesh()
    tx = steps.make_optimizer("adam", 1e-3)
    shape = data.train_images.shape[1:]
    keys = jnp.stack([jax.random.split(jax.random.key(seed + i)) for i in range(num_seeds)])
    replicated = NamedSharding(mesh, PartitionSpec())
    members = jax.device_put(
        jax.vmap(lambda k: steps.create_train_state(model, tx, k, shape))(keys[:, 0]),
        replicated)
    singles = [jax.tree.map(lambda a, i=i: a[i], members) for i in range(num_seeds)]
    norm = dict(batch_size=batch_size, mean=data.mean, std=data.std, mesh=mesh)
    vectorized = jax.jit(functools.partial(seeds.members_epoch, **norm), donate_argnums=0)
    one = jax.jit(functools.partial(steps.train_epoch, **norm), donate_argnums=0)
    active = np.ones(num_seeds, bool)
    vec_times, seq_times = [], []
    for epoch in range(epochs):
        t0 = time.perf_counter()
        members, vec_m = vectorized(members, active, data.train_images, data.train_labels,
                                    keys[:, 1], epoch)
        vec_loss = np.asarray(jax.device_get(vec_m["loss"]))
        vec_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        seq_loss = []
        for i in range(num_seeds):
            singles[i], m = one(singles[i], data.train_images, data.train_labels,
                                jax.random.fold_in(keys[i, 1], epoch))
            seq_loss.append(float(jax.device_get(m["loss"])))
        seq_times.append(time.perf_counter() - t0)
    vec_s, seq_s = statistics.median(vec_times[1:]), statistics.median(seq_times[1:])
    return {"num_seeds": num_seeds, "n_train": int(data.train_images.shape[0]),
            "vectorized_times": vec_times, "sequential_times": seq_times,
            "vectorized_s": vec_s, "sequential_s": seq_s, "ratio": seq_s / vec_s,
            "max_loss_difference": float(np.max(np.abs(vec_loss - np.array(seq_loss))))}


# --------------------------------------------------------------------------- summaries


def summarize(record: dict[str, Any]) -> dict[str, Any]:
    """Medians over the steady epochs (all but the first) of a record.

    Returns:
      ``train_s``, ``val_s``, ``epoch_s`` (train + validation), ``samples_per_s``,
      ``spread`` and ``val_spread`` ((max - min) / median of the steady training and
      validation times), ``first_epoch_excess_s`` (first epoch minus a steady one, floored
      at 0) and ``noise_s`` (the steady epochs' max - min, the scale below which that
      excess means nothing); with ``compile_times``: ``compile_s`` (the fastest); with
      ``flops_per_step``: ``flops_per_s`` (median epoch) and
      ``best_flops_per_s`` (fastest epoch); with ``matmul_rates``: ``matmul_rate`` (best
      probe), ``matmul_spread`` and ``fraction_of_matmul`` (fastest epoch / best probe).

    Raises:
      ValueError: fewer than two epochs in the record.
    """
    train, val = record["train_times"], record["val_times"]
    if len(train) < 2 or len(val) != len(train):
        raise ValueError(f"{record.get('label')}: need >= 2 epochs of train and validation "
                         f"times (the first is warm-up), got {len(train)} and {len(val)}")
    train_s, val_s = statistics.median(train[1:]), statistics.median(val[1:])
    out = {
        "train_s": train_s,
        "val_s": val_s,
        "epoch_s": train_s + val_s,
        "samples_per_s": record["n_train"] / train_s,
        "spread": spread(train[1:]),
        "val_spread": spread(val[1:]),
        # what the first epoch took beyond a steady one; within the steady epochs' spread
        # it is noise, so it is floored at 0 (never a negative "compile time")
        "first_epoch_excess_s": max(0.0, train[0] + val[0] - train_s - val_s),
        "noise_s": (max(train[1:]) - min(train[1:])) + (max(val[1:]) - min(val[1:])),
    }
    if record.get("compile_times"):
        out["compile_s"] = min(record["compile_times"])
    if record.get("flops_per_step"):
        per_epoch = record["flops_per_step"] * record["steps_per_epoch"]
        out["flops_per_s"] = per_epoch / train_s
        out["best_flops_per_s"] = per_epoch / min(train[1:])
    if record.get("matmul_rates"):
        rates = record["matmul_rates"]
        out["matmul_rate"] = max(rates)
        out["matmul_spread"] = spread(rates)
        if "best_flops_per_s" in out:  # best epoch against best probe: like with like
            out["fraction_of_matmul"] = out["best_flops_per_s"] / max(rates)
    return out


def _linear_fit_sum(depths: Sequence[int], values: Sequence[float], upto: int) -> float | None:
    """Sum over depths 0..upto-1 of a least-squares line through (depth, value)."""
    if len(set(depths)) < 2:
        return None
    slope, intercept = np.polyfit(np.asarray(depths, float), np.asarray(values, float), 1)
    return float(sum(intercept + slope * d for d in range(upto)))


def _name_part(name: str, prefix: str) -> int | None:
    """The integer K of the ``PREFIXK`` part of a member folder name, or None."""
    parts = [p[len(prefix):] for p in name.split("-") if p.startswith(prefix)]
    return int(parts[0]) if len(parts) == 1 and parts[0].isdigit() else None


def sweep_report(sweep_dir: str, prefix: str = "num_layers_") -> dict[str, Any]:
    """Measured time of a depth sweep written by ``scripts/train.py --sweep=num_layers=...``.

    Reads ``SWEEP_DIR/MEMBER/metrics.jsonl`` (one line per epoch with ``epoch_time``,
    training + validation) and ``results.json`` (``status``, ``wall_time``) of each member
    folder named ``num_layers_K`` or, in a grid, with a ``num_layers_K`` part
    (``seed_0-num_layers_K``; its ``seed_S`` part, if any, is the member's seed).

    Returns:
      ``members`` (per member: depth, seed, epochs, summed epoch time, wall time, status),
      ``epoch_time_s`` (sum of all epoch times), ``wall_time_s`` (sum of the finished
      members' wall times), ``span_s`` (first ``config.json`` written to last
      ``results.json`` written: the sweep's wall clock including data loading and
      compilation), ``seed_spans_s`` (the same per seed, for seeds whose members all
      finished; key ``"-"`` without seeds), ``seed_walls_s`` (those seeds' summed member
      wall times: a span well above it means the sweep was stopped between members),
      ``finished`` (members finished).

    Raises:
      FileNotFoundError: no member folders in ``sweep_dir``.
    """
    members, times = [], {}
    names = sorted((n for n in os.listdir(sweep_dir) if _name_part(n, prefix) is not None),
                   key=lambda n: (_name_part(n, prefix), n))
    for name in names:
        folder = os.path.join(sweep_dir, name)
        metrics_path = os.path.join(folder, "metrics.jsonl")
        if not os.path.exists(metrics_path):
            continue
        with open(metrics_path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        results_path = os.path.join(folder, "results.json")
        results = io.read_json(results_path) if os.path.exists(results_path) else {}
        config_path = os.path.join(folder, "config.json")
        seed = _name_part(name, "seed_")
        times[name] = (
            seed, os.path.getmtime(config_path) if os.path.exists(config_path) else None,
            os.path.getmtime(results_path) if results else None)
        members.append({
            "depth": _name_part(name, prefix), "seed": seed, "member": name,
            "epochs": len(rows),
            "epoch_time_s": float(sum(r.get("epoch_time", 0.0) for r in rows)),
            "wall_time_s": float(results["wall_time"]) if "wall_time" in results else None,
            "status": results.get("status", "unfinished"),
        })
    if not members:
        raise FileNotFoundError(f"no {prefix}K/metrics.jsonl files under {sweep_dir!r}")

    def span(group: list[tuple]) -> float | None:
        starts = [t[1] for t in group if t[1] is not None]
        ends = [t[2] for t in group if t[2] is not None]
        return (max(ends) - min(starts)) if starts and ends else None

    seed_spans, seed_walls = {}, {}
    for seed in sorted({t[0] for t in times.values()}, key=lambda x: (x is not None, x)):
        group = [t for t in times.values() if t[0] == seed]
        if all(t[2] is not None for t in group):
            key = "-" if seed is None else str(seed)
            seed_spans[key] = span(group)
            seed_walls[key] = sum(m["wall_time_s"] or 0.0 for m in members
                                  if m["seed"] == seed)
    finished = [m for m in members if m["status"] != "unfinished"]
    return {
        "sweep_dir": sweep_dir,
        "members": members,
        "finished": len(finished),
        "epoch_time_s": sum(m["epoch_time_s"] for m in members),
        "wall_time_s": sum(m["wall_time_s"] or 0.0 for m in finished),
        "span_s": span(list(times.values())),
        "seed_spans_s": seed_spans,
        "seed_walls_s": seed_walls,
    }


# ----------------------------------------------------------------------------- output


def _cell(summary: dict | None) -> str:
    if summary is None:
        return "–"
    return (f"{summary['train_s']:.3f} (±{100 * summary['spread']:.0f}%) / "
            f"{summary['val_s']:.3f} (±{100 * summary['val_spread']:.0f}%) / "
            f"{summary['samples_per_s'] / 1000:.1f}k")


def _excess_cell(summary: dict | None) -> str:
    if summary is None:
        return "–"
    return f"{summary['first_epoch_excess_s']:.2f} (noise {summary['noise_s']:.2f})"


def _ours_cells(summary: dict, record: dict) -> list[str]:
    """Compile, GFLOP/step, GFLOP/s, matmul GFLOP/s and % cells of our row."""
    compile_cell = ("–" if "compile_s" not in summary else
                    f"{summary['compile_s']:.2f} (n={len(record['compile_times'])})")
    fps, best = summary.get("flops_per_s", 0.0), summary.get("best_flops_per_s", 0.0)
    if "matmul_rate" in summary:
        rate = (f"{summary['matmul_rate'] / 1e9:.0f} "
                f"(±{100 * summary['matmul_spread']:.0f}%, n={len(record['matmul_rates'])})")
        frac = f"{100 * summary['fraction_of_matmul']:.0f}"
    else:
        rate = frac = "–"
    return [compile_cell, f"{record['flops_per_step'] / 1e9:.3f}",
            f"{fps / 1e9:.0f} ({best / 1e9:.0f})", rate, frac]


def _ratio(a: float | None, b: float | None) -> str:
    return "–" if a is None or b is None or b <= 0 else f"{a / b:.2f}x"


def format_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: header (machine, versions, matmul rates), tables, notes."""
    rows, fws = report["rows"], report["frameworks"]
    m, lines = report["machine"], []
    lines += [
        "# Training speed: ours vs Keras 3 (JAX backend) vs PyTorch (CPU)",
        "",
        f"Machine: {m['cpu']}, {m['cpu_count']} logical cores ({m['usable_cores']} usable), "
        f"{m['os']}, Python {m['python']}; JAX backend {m['jax_backend']} "
        f"({len(m['jax_devices'])} device(s)).",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()) + ".",
        f"Run: {report['settings']}.",
        "float32 matmul rate (jitted jnp.dot; best of repeats, and the worst): "
        + ", ".join(f"{k}: {v['best'] / 1e9:.0f} GFLOP/s (worst {v['worst'] / 1e9:.0f}, "
                    f"n={v['n']})" for k, v in report["matmul_rate"].items())
        + ".",
        "",
        "## Steady epoch: train s (± spread) / validation s (± spread) / training samples per s",
        "",
        "Medians over the epochs after the first (warm-up); spread = (max - min) / median.",
        "",
        "| model | " + " | ".join(fws) + " |",
        "|---|" + "---|" * len(fws),
    ]
    for row in rows:
        lines.append(f"| {row['label']} | "
                     + " | ".join(_cell(row["summaries"].get(fw)) for fw in fws) + " |")
    others = [fw for fw in fws if fw != "ours"]
    if "ours" in fws and others:
        lines += ["", "## Time ratios (ours / theirs; below 1 means ours is faster)", "",
                  "| model | " + " | ".join(f"train vs {fw} | train+val vs {fw}"
                                           for fw in others) + " |",
                  "|---|" + "---|---|" * len(others)]
        for row in rows:
            s, cells = row["summaries"], []
            ours = s.get("ours")
            for fw in others:
                theirs = s.get(fw)
                cells += [_ratio(ours and ours["train_s"], theirs and theirs["train_s"]),
                          _ratio(ours and ours["epoch_s"], theirs and theirs["epoch_s"])]
            lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    if "ours" in fws:
        lines += ["", "## Ours: compilation and achieved FLOP/s", "",
                  "Compile: lowering + XLA compilation of the epoch and validation programs, "
                  "timed directly (once: JAX caches the executable). First-epoch excess: "
                  "the first epoch minus a steady one, floored at 0, with the steady "
                  "epochs' max - min (the noise below which it means nothing); for ours it "
                  "excludes compilation, for Keras (which cannot be timed apart) it "
                  "includes it. FLOPs: matrix products and "
                  "convolutions of one train step, counted from its jaxpr (element-wise work "
                  "excluded), times steps per epoch, over the training time (median epoch; "
                  "fastest epoch in brackets). The 2048^3 matmul rate is probed after every "
                  "epoch (best of 3 each); % = fastest epoch / best probe.", "",
                  "| model | compile s (ours) | first-epoch excess s (ours) | first-epoch "
                  "excess s (keras) | GFLOP / step | GFLOP/s | 2048^3 matmul GFLOP/s "
                  "| % of it |",
                  "|---|---|---|---|---|---|---|---|"]
        for row in rows:
            ours, keras = row["summaries"].get("ours"), row["summaries"].get("keras")
            if ours is None:
                continue
            rec = row["records"]["ours"]
            cells = _ours_cells(ours, rec)
            lines.append(f"| {row['label']} | {cells[0]} | {_excess_cell(ours)} | "
                         f"{_excess_cell(keras)} | " + " | ".join(cells[1:]) + " |")
    profiled = [(row["label"], row["records"]["ours"]["profile"]) for row in rows
                if "profile" in row["records"].get("ours", {})]
    if profiled:
        lines += ["", "## Ours: per-op profile of one train step", "",
                  "XLA's profiler over a few steps of the train step jitted alone; every "
                  "HLO op's time (summed over threads) grouped by the model's layer and "
                  "phase (update: loss and optimizer). Layer '-': ops between the layers "
                  "(pooling, activations, casts).", ""]
        for label, prof in profiled:
            lines += format_profile(label, prof)
    lines += ["", "## Totals", ""] + [f"- {t}" for t in report["totals"]]
    if report.get("sweep"):
        lines += ["", "## Lecture sweep", ""] + [f"- {t}" for t in report["sweep_lines"]]
        lines += ["", "Per depth: epochs run, our seconds (epoch times: training + "
                  "validation; wall: each member's whole run, compilation and checkpoints "
                  "included), and the same epochs at each other framework's steady epoch time "
                  "(compilation excluded).", ""]
        lines += sweep_table(report["sweep"], rows, fws)
    lines += ["", "## Notes", ""] + [f"- {t}" for t in report["notes"]]
    return "\n".join(lines) + "\n"


def totals(rows: list[dict], frameworks: Sequence[str], sweep_depths: int = 25) -> list[str]:
    """Sums of steady epoch times over the MLP depths run, and a 25-depth projection."""
    out = []
    mlp = [r for r in rows if r["model"] == "mlp"]
    sums = {}
    for fw in frameworks:
        have = [r for r in mlp if fw in r["summaries"]]
        if not have:
            continue
        total = sum(r["summaries"][fw]["epoch_s"] for r in have)
        proj = _linear_fit_sum([r["depth"] for r in have],
                               [r["summaries"][fw]["epoch_s"] for r in have], sweep_depths)
        sums[fw] = (total, proj)
        out.append(f"{fw}: MLP steady epoch (train + validation) summed over depths "
                   f"{[r['depth'] for r in have]}: {total:.2f} s"
                   + ("" if proj is None else
                      f"; projected sum over depths 0..{sweep_depths - 1} "
                      f"(least-squares line in depth): {proj:.1f} s"))
    if "ours" in sums:
        for fw, (total, proj) in sums.items():
            if fw == "ours":
                continue
            text = f"ours / {fw}, summed MLP epoch: {sums['ours'][0] / total:.2f}x"
            if proj and sums["ours"][1]:
                text += f" (projected 25 depths: {sums['ours'][1] / proj:.2f}x)"
            out.append(text + (" (target vs keras: <= 0.6x)" if fw == "keras" else ""))
    return out


def fitted_epoch_time(rows: list[dict], framework: str):
    """A function depth -> steady epoch seconds (least-squares line), or None."""
    have = [r for r in rows if r["model"] == "mlp" and framework in r["summaries"]]
    if len({r["depth"] for r in have}) < 2:
        return None
    slope, intercept = np.polyfit([r["depth"] for r in have],
                                  [r["summaries"][framework]["epoch_s"] for r in have], 1)
    return lambda d: float(intercept + slope * d)


def sweep_lines(sweep: dict[str, Any], rows: list[dict], frameworks: Sequence[str],
                target_s: float = 17 * 60) -> list[str]:
    """Sentences about a sweep: its wall clock (per seed against ``target_s``, the time
    allowed for one pass over the depths), summed times, and projections."""
    lines = [f"{sweep['sweep_dir']}: {sweep['finished']} of {len(sweep['members'])} members "
             f"finished, {sum(m['epochs'] for m in sweep['members'])} epochs in all."]
    if sweep["span_s"] is not None:
        verdict = ("so far: the sweep is unfinished"
                   if sweep["finished"] < len(sweep["members"]) else "finished")
        lines.append(f"Wall clock (first config.json to last results.json): "
                     f"{sweep['span_s'] / 60:.1f} min; {verdict}.")
    for seed, span in sweep.get("seed_spans_s", {}).items():
        if span is None:
            continue
        who = "One pass over the depths" if seed == "-" else f"Seed {seed}'s pass over the depths"
        verdict = "meets" if span < target_s else "misses"
        walls = sweep.get("seed_walls_s", {}).get(seed)
        inside = ("" if walls is None else
                  f" ({walls / 60:.1f} min in its members' runs; the rest between them: "
                  f"start-up, or the sweep stopped)")
        lines.append(f"{who}: {span / 60:.1f} min wall clock{inside}; {verdict} the "
                     f"< {target_s / 60:.0f} min target.")
    lines.append(f"Sum of the members' wall times: {sweep['wall_time_s'] / 60:.1f} min; "
                 f"of their epoch times (train + validation): "
                 f"{sweep['epoch_time_s'] / 60:.1f} min.")
    for fw in frameworks:
        fit = fitted_epoch_time(rows, fw)
        if fit is None:
            continue
        total = sum(m["epochs"] * fit(m["depth"]) for m in sweep["members"]
                    if isinstance(m["depth"], int))
        lines.append(f"The same epochs at {fw}'s steady epoch time measured here (line "
                     f"in depth): {total / 60:.1f} min (compilation excluded).")
    return lines


def sweep_table(sweep: dict[str, Any], rows: list[dict], frameworks: Sequence[str]
                ) -> list[str]:
    """Markdown table of a sweep per depth: epochs run (per seed), our measured seconds
    (epoch times summed, members' wall times summed) and, for each other framework with a
    fitted steady epoch time, the seconds the same epochs would take there; a total row."""
    fits = {fw: fitted_epoch_time(rows, fw) for fw in frameworks if fw != "ours"}
    fits = {fw: f for fw, f in fits.items() if f is not None}
    def row(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    lines = [row(["depth", "epochs (per seed)", "ours: epoch s", "ours: wall s",
                  *(f"{fw}: projected s" for fw in fits)]),
             "|---|---|---|---|" + "---|" * len(fits)]
    members = sweep["members"]
    for depth in sorted({m["depth"] for m in members}):
        ms = sorted((m for m in members if m["depth"] == depth),
                    key=lambda m: (m["seed"] is not None, m["seed"]))
        epochs = sum(m["epochs"] for m in ms)
        walls = [m["wall_time_s"] for m in ms]
        lines.append(row([str(depth), ", ".join(str(m["epochs"]) for m in ms),
                          f"{sum(m['epoch_time_s'] for m in ms):.1f}",
                          "–" if None in walls else f"{sum(walls):.1f}",
                          *(f"{epochs * f(depth):.1f}" for f in fits.values())]))
    lines.append(row(["all", str(sum(m["epochs"] for m in members)),
                      f"{sweep['epoch_time_s']:.1f}", f"{sweep['wall_time_s']:.1f}",
                      *(f"{sum(m['epochs'] * f(m['depth']) for m in members):.1f}"
                        for f in fits.values())]))
    return lines


def write_report(out: str, report: dict[str, Any]) -> tuple[str, str]:
    """Writes ``OUT.md`` and ``OUT.json`` atomically; returns their paths."""
    base = out[:-3] if out.endswith(".md") else out[:-5] if out.endswith(".json") else out
    md_path, json_path = base + ".md", base + ".json"
    io.atomic_write_text(md_path, format_markdown(report))
    io.write_json(json_path, report)
    return md_path, json_path
