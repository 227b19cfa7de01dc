"""Runs one script's flag checks in-process over many argument lists (for test_script_errors).

    python tests/script_checks.py SCRIPT FUNCTION < cases.json > results.json

``cases.json`` is a list of ``{"args": [...], "scratch": folder}``. For each case the flags
are reset, ``args`` parsed through ``_cli.parse_flags`` and ``SCRIPT``'s ``FUNCTION`` (the
script's whole-configuration check, the first thing its ``main`` does) called. The result
per case: the exit code (``None`` when the check passed), what went to stderr, whether XLA
compiled anything, whether ``cnn_jax.data.load`` was called, and the files under ``scratch``
afterwards.
"""

import contextlib
import io
import json
import os
import runpy
import sys

import jax

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "scripts")]


def main(script: str, function: str, cases: list[dict]) -> list[dict]:
    compiled, loads = [], []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, duration, **kw: compiled.append(event) if "backend_compile" in event
        else None)
    from cnn_jax import data

    real_load = data.load
    data.load = lambda *a, **k: loads.append(a) or real_load(*a, **k)
    sys.argv = [script]
    # run_name = argv[0]: absl files the script's flags under it, as for a real __main__
    module = runpy.run_path(script, run_name=script)
    import _cli

    results = []
    for case in cases:
        compiled.clear()
        loads.clear()
        _cli.FLAGS.unparse_flags()
        err = io.StringIO()
        code = None
        with contextlib.redirect_stderr(err):
            try:
                _cli.parse_flags([script, *case["args"]])
                module[function]()
            except SystemExit as e:
                code = e.code
        scratch = case.get("scratch")
        files = sorted(os.listdir(scratch)) if scratch and os.path.isdir(scratch) else []
        results.append({"args": case["args"], "code": code, "stderr": err.getvalue(),
                        "compiled": len(compiled), "loaded": len(loads), "files": files})
    return results


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], json.load(sys.stdin))))
