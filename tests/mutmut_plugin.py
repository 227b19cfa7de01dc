"""Mutation testing of the core (``make mutants``, mutmut 3): which tests judge which file.

mutmut copies the package and tests into ``mutants/``, rewrites every function of the
mutated files into a trampoline that runs the original or one mutant (chosen by the
``MUTANT_UNDER_TEST`` environment variable), runs the selected tests once to learn which
tests call which function, then runs each mutant against those tests only (``-x``: the
first failure kills it). This module is loaded into those pytest runs (``-p`` in
``[tool.mutmut]``) and decides which tests run:

* collection: only the test files in ``FILE_TESTS`` are collected at all;
* each mutant: every test of its own source file's test files runs, not only mutmut's list
  of the tests that reached the mutated function (``pytest_load_initial_conftests``); the
  listed tests run first, then the others, each group fastest first, under a CPU limit
  sized for all of them; the slow tests in ``SKIPPED`` are left out.

``python -m tests.mutmut_plugin`` (run in the repository root after ``mutmut run``) prints
the score per file, with the mutants listed in ``EQUIVALENT`` left out of it.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

from hypothesis import settings

# Each mutated source file (as a module) -> the test files that judge its mutants.
FILE_TESTS = {
    "cnn_jax.ops.conv": ("tests/ops/test_conv.py",),
    "cnn_jax.ops.pooling": ("tests/ops/test_pooling.py",),
    "cnn_jax.data.pipeline": ("tests/data/test_pipeline.py", "tests/training/test_epochs.py"),
    "cnn_jax.training.steps": ("tests/training/test_steps.py", "tests/training/test_epochs.py"),
    "cnn_jax.training.early_stopping": ("tests/training/test_early_stopping.py",
                                        "tests/training/test_loop.py"),
    "cnn_jax.training.loop": ("tests/training/test_loop.py", "tests/training/test_epochs.py",
                              "tests/training/test_mutable_state.py",
                              "tests/training/test_loop_parts.py"),
    "cnn_jax.config": ("tests/test_config.py",),
}

# Tests left out of the mutation runs: slow, and what they check is checked in process too.
SKIPPED = (
    # SIGKILLs a training subprocess (~25 s); test_interrupted_run_resumes_to_the_results_of_
    # an_uninterrupted_one resumes an interrupted run in process, against the same code paths
    "tests/training/test_loop.py::test_resume_after_kill_ends_with_the_same_metrics",
)

# Mutants that cannot change behaviour (or are not worth a test), by mutmut name -> reason.
# Names number the mutants of one function in order, so they hold for the current source;
# tests/MUTANTS.md explains each.
_X64 = "the default float dtype: float64 only with jax_enable_x64, which this project never sets"
_CHECKED = ("the field name _plain reports: to_dict's values were all checked when the config "
            "was made, so it never reports one")
_WIDEST = ("result_type(..., float32) without x or kernel, or None (the default float): "
           "float32 for every real input without jax_enable_x64")
EQUIVALENT: dict[str, str] = {
    "cnn_jax.ops.pooling.x__pool__mutmut_89": "lax.reduce_window upper-cases the padding name",
    "cnn_jax.ops.pooling.x__pool__mutmut_94": "lax.reduce_window upper-cases the padding name",
    "cnn_jax.ops.pooling.x__pool__mutmut_112": "the init lambdas ignore their dtype argument",
    "cnn_jax.ops.pooling.x__pool__mutmut_142": "a stride along the size-1 batch axis of ones",
    "cnn_jax.ops.pooling.x__pool__mutmut_143": "a stride along the size-1 channel axis of ones",
    "cnn_jax.ops.pooling.x__tiled_max_fwd__mutmut_12":
        "the first-maximum tap index held as float32 instead of int8: small integers, exact",
    "cnn_jax.ops.pooling.x__tiled_max_fwd__mutmut_14":
        "the first-maximum tap index held as float32 instead of int8: small integers, exact",
    "cnn_jax.ops.pooling.x__tiled_max_fwd__mutmut_21":
        "tap 0 again: it is already taken wherever it is a maximum, so it changes nothing",
    "cnn_jax.data.pipeline.x_epoch_batches__mutmut_21": "used == N: the else branch pads 0 rows",
    "cnn_jax.data.pipeline.x_normalize__mutmut_3": "uint8 / 255.0 is float32 already",
    "cnn_jax.data.pipeline.x_normalize__mutmut_9": _X64,
    "cnn_jax.data.pipeline.x_normalize__mutmut_11": _X64,
    "cnn_jax.data.pipeline.x_normalize__mutmut_16": _X64,
    "cnn_jax.data.pipeline.x_normalize__mutmut_18": _X64,
    **{f"cnn_jax.config.xǁTrainConfigǁto_dict__mutmut_{i}": _CHECKED for i in (2, 8, 9)},
    "cnn_jax.training.steps.x_create_train_state__mutmut_9": _X64,
    "cnn_jax.training.steps.x_create_train_state__mutmut_11": _X64,
    "cnn_jax.training.steps.x_create_train_state__mutmut_12":
        "initialising on 2 examples instead of 1: no parameter's shape depends on the batch",
    "cnn_jax.training.steps.x_cross_entropy__mutmut_9": "axis +1 is axis -1 of [B, K] logits",
    "cnn_jax.training.steps.x_masked_loss__mutmut_26": "axis +1 is axis -1 of [B, K] logits",
    "cnn_jax.training.steps.x_masked_loss__mutmut_10": _X64,
    "cnn_jax.training.steps.x_eval_step__mutmut_6":
        "train=None is falsy like False; models read train by its truth value",
    "cnn_jax.training.steps.x_evaluate__mutmut_1":
        "the default evaluation batch only groups the examples; every one counts once",
    **{f"cnn_jax.ops.conv.x__prepare__mutmut_{i}": _WIDEST for i in (61, 62, 63, 64, 65)},
    "cnn_jax.ops.conv.x__reference__mutmut_42": _X64,
    "cnn_jax.ops.conv.x__reference__mutmut_44": _X64,
    **{f"cnn_jax.ops.conv.x_{f}__mutmut_8": "flip=None is falsy like False"
       for f in ("correlate1d_reference", "correlate2d_reference", "correlate1d", "correlate2d")},
    **{f"cnn_jax.ops.conv.x__fast__mutmut_{i}":
       "lax reads every letter but N, C, I, O as a spatial dimension" for i in (35, 37, 42)},
    **{f"cnn_jax.ops.conv.x__fast__mutmut_{i}":
       "index 1 of a size-1 axis: JAX clamps static indices, so it reads index 0"
       for i in (58, 59)},
    "cnn_jax.ops.conv.x__patches__mutmut_54": "concatenating one view gives that view",
    **{f"cnn_jax.ops.conv.x__conv2d_mixed_bwd__mutmut_{i}":
       "zip's strict: the zipped sequences all have 2 entries" for i in (34, 41, 44)},
    **{f"cnn_jax.ops.conv.x_padding_amounts__mutmut_{i}":
       "zip's strict: sizes, kernel sizes and dilations all have ndim entries"
       for i in (6, 10, 11)},
    "cnn_jax.training.loop.x_fit__mutmut_90":
        "ckpt.restore(None): orbax restores its latest step, the epoch latest_epoch() returned",
    **{f"cnn_jax.training.loop.x_fit__mutmut_{i}":
       "donating the state to the epoch program only saves memory; on CPU an argument that no "
       "output can reuse (the images, 156) is not donated at all" for i in (142, 144, 156)},
    **{f"cnn_jax.training.loop.x_fit__mutmut_{i}":
       "log.x(message) for log.x('%s', message): the message never holds a '%'"
       for i in (271, 355)},
    "cnn_jax.training.loop.x_fit__mutmut_377":
        "best is set only when the stopper keeps weights, so best is not None implies "
        "restores_weights",
    "cnn_jax.training.loop.xǁDeviceDataǁfrom_arrays__mutmut_18":
        "reshape(-2, C): numpy reads any negative size as the one it infers",
    **{f"cnn_jax.training.loop.x_write_start__mutmut_{i}":
       "np.asarray(None).tolist() is None, as the branch it skips gives" for i in (30, 36)},
    "cnn_jax.training.loop.x_fit__mutmut_183":
        "TensorBoard files on every process: with one process (all that loop.py's tests run) "
        "primary is always True; a faked process index makes orbax wait for the others",
    "cnn_jax.training.loop.x_fit__mutmut_196":
        "range(start, 1) for range(start, 0) when resuming a stopped run: start >= 1, so "
        "both are empty",
    "cnn_jax.training.loop.x_fit__mutmut_117":
        "a resumed run's best weights taken although has_best_weights is False: never used "
        "(restoring needs has_best_weights, and the epoch that sets it replaces them)",
    **{f"cnn_jax.training.loop.x_fit__mutmut_{i}":
       "the barrier's name: every process runs the same code, so the names always match, and "
       "with one process barrier returns before using it (a multi-process run could tell "
       "None apart; tests/test_distributed.py is not among loop.py's test files)"
       for i in (71, 72, 73, 439, 440, 441)},
    "cnn_jax.training.early_stopping.xǁEarlyStoppingǁupdate__mutmut_18":
        "the first kept epoch is always an improvement, which sets has_best_weights again",
    "cnn_jax.training.early_stopping.xǁEarlyStoppingǁupdate__mutmut_19":
        "the first kept epoch is always an improvement, which sets keep again",
    "cnn_jax.training.early_stopping.xǁEarlyStoppingǁupdate__mutmut_32":
        "has_best_weights is already True whenever keep is (restore_best_weights)",
    "cnn_jax.training.early_stopping.xǁEarlyStoppingǁupdate__mutmut_43":
        "epoch 0 (the first counted epoch) is always an improvement and returns before",
}

# A mutant's CPU-time limit (``_limit_cpu``): this many CPU seconds per second its tests took
# in the stats run (JAX runs 2 threads here), plus this many.
CPU_PER_SECOND = 4
CPU_SLACK = 180

_TEST_FILES = {f for files in FILE_TESTS.values() for f in files}

# Property tests draw 10 examples (the default profile: 30) in these runs: every surviving
# mutant runs all of its tests, so their time decides the whole run's.
settings.register_profile("mutants", deadline=None, max_examples=10, derandomize=True)
os.environ.setdefault("HYPOTHESIS_PROFILE", "mutants")  # tests/conftest.py loads it


def _module_of(mutant: str) -> str | None:
    return next((m for m in FILE_TESTS if mutant.startswith(m + ".")), None)


def pytest_ignore_collect(collection_path, config):
    """Skips every module under tests/ but the test files in ``FILE_TESTS`` (and conftests):
    ``--doctest-modules`` would otherwise collect (import) all of them."""
    rel = Path(os.path.relpath(collection_path, config.rootpath)).as_posix()
    if collection_path.suffix == ".py" and rel.startswith("tests/"):
        if collection_path.name not in ("conftest.py", "__init__.py") and rel not in _TEST_FILES:
            return True
    return None


def pytest_load_initial_conftests(early_config, parser, args):
    """Under a mutant, runs every test of its source file's test files instead of mutmut's
    list: mutmut credits a function to the tests during which it ran, so a test that only
    reads what a module-scoped fixture computed (e.g. TensorBoard files written while an
    earlier test set the fixture up) is missing from that list."""
    module = _module_of(os.environ.get("MUTANT_UNDER_TEST", ""))
    if module is not None and any("::" in a for a in args):
        _credited.update(a for a in args if "::" in a)
        args[:] = [a for a in args if "::" not in a] + list(FILE_TESTS[module])
        _limit_cpu(early_config.rootpath, module)


def _limit_cpu(root: Path, module: str) -> None:
    """Sets this mutant's CPU-time limit from the tests that will run (all of its file's).

    mutmut sizes the limit (and its wall-clock timeout, half the CPU limit) from the tests it
    credited to the mutated function, often one short test; running every test of the file
    would exceed it, and a surviving mutant would count as a timeout (killed). pyproject's
    ``timeout_constant`` makes mutmut's limits generous (the wall timeout then also outlasts
    a paused run); this lowers the CPU limit to ``CPU_PER_SECOND`` times the tests' time in
    the stats run plus ``CPU_SLACK`` seconds (imports and compiling, which a mutant that
    changes a program cannot take from the cache)."""
    seconds = _durations(root)
    tests = sum(t for test, t in seconds.items() if test.split("::")[0] in FILE_TESTS[module])
    limit = int(time.process_time()) + int(CPU_PER_SECOND * tests + CPU_SLACK)
    soft, _ = resource.getrlimit(resource.RLIMIT_CPU)
    if soft == resource.RLIM_INFINITY or limit < soft:
        resource.setrlimit(resource.RLIMIT_CPU, (limit, limit + 1))  # SIGXCPU, then SIGKILL


def pytest_collection_modifyitems(config, items):
    """Under a mutant, deselects the tests that are not its source file's and runs the
    others so that ``-x`` stops early: the tests mutmut credited to the mutated function
    first, then the rest, each group fastest first (times of mutmut's stats run)."""
    module = _module_of(os.environ.get("MUTANT_UNDER_TEST", ""))
    if module is None:  # mutmut's stats, clean and forced-fail runs: every collected test
        return
    def judges(item):
        return (item.nodeid.split("::")[0] in FILE_TESTS[module]
                and item.nodeid.split("[")[0] not in SKIPPED)

    keep = [item for item in items if judges(item)]
    drop = [item for item in items if not judges(item)]
    if drop:
        config.hook.pytest_deselected(items=drop)
    seconds = _durations(config.rootpath)
    items[:] = sorted(keep, key=lambda item: (item.nodeid not in _credited,
                                              seconds.get(item.nodeid, 0.0)))


# Each test's time in the stats run, set-up (fixtures) included: mutmut records the call only.
_DURATIONS = "mutmut-durations.json"
# The tests mutmut credited to the mutated function (they reached it): these run first.
_credited: set[str] = set()
_seconds: dict[str, float] = {}


def _durations(root: Path) -> dict[str, float]:
    """{test id: seconds} from the stats runs so far ({} before the first)."""
    path = root / _DURATIONS
    return json.loads(path.read_text()) if path.exists() else {}


def pytest_runtest_logreport(report):
    if os.environ.get("MUTANT_UNDER_TEST") == "stats":
        _seconds[report.nodeid] = _seconds.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session):
    """Adds this stats run's times to the file: an incremental stats run (new tests only)
    must not drop the others' times."""
    if os.environ.get("MUTANT_UNDER_TEST") == "stats" and _seconds:
        path = session.config.rootpath / _DURATIONS
        seconds = {**_durations(session.config.rootpath), **_seconds}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(seconds, indent=0))
        tmp.replace(path)


def scores(root: str = "mutants") -> dict[str, dict[str, int]]:
    """Counts per source file from mutmut's ``*.meta`` files: killed, survived, equivalent,
    no tests, timeout, other (exit codes as mutmut's ``status_by_exit_code``)."""
    out = {}
    for module in FILE_TESTS:
        meta = Path(root) / (module.replace(".", "/") + ".py.meta")
        counts = dict.fromkeys(("killed", "survived", "equivalent", "no tests", "timeout",
                                "not checked", "other"), 0)
        if meta.exists():
            for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
                if name in EQUIVALENT and code == 0:  # listed, and it did survive
                    status = "equivalent"
                elif code in (1, 2, 3):  # 2: a test module failed to import (collection)
                    status = "killed"
                elif code == 0:
                    status = "survived"
                elif code in (5, 33):
                    status = "no tests"
                elif code in (24, -24, 36, 152, 255, -9):  # -9: SIGKILL after SIGXCPU
                    status = "timeout"
                elif code is None:
                    status = "not checked"
                else:
                    status = "other"
                counts[status] += 1
        out[module] = counts
    return out


def main(root: str = "mutants") -> int:
    """Prints the score per file: killed / (all - equivalent); timeouts count as killed."""
    print(f"{'file':34s} {'mutants':>7s} {'killed':>6s} {'timeout':>7s} {'survived':>8s} "
          f"{'no tests':>8s} {'equiv':>5s} {'score':>6s}")
    for module, c in scores(root).items():
        judged = sum(c.values()) - c["equivalent"]
        score = (c["killed"] + c["timeout"]) / judged if judged else float("nan")
        print(f"{module.replace('.', '/') + '.py':34s} {sum(c.values()):7d} {c['killed']:6d} "
              f"{c['timeout']:7d} {c['survived']:8d} {c['no tests']:8d} "
              f"{c['equivalent']:5d} {score:6.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
