"""Runs one script's flag checks in-process over many argument lists (for test_script_errors
and tests/experiments/test_script_flags).

    python tests/script_checks.py SCRIPT FUNCTION < cases.json > results.json

:func:`walk` starts that for several scripts at once and collects the results.

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
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "scripts")]


def walk(tmp, scripts: dict[str, str], cases: dict[str, list[tuple]], base,
         timeout: float = 300) -> dict[str, list[dict]]:
    """Each script's cases through its check, one process per script, all at once.

    Args:
      tmp: a folder (pathlib) for one scratch folder per case.
      scripts: {script file name in scripts/: the check function to call}.
      cases: {script: [(flag, value), ...]}; each case is ``base`` with ``--flag=value``
        in place of the base's own ``--flag=`` (appended after a flagfile's values).
      base: ``(script, scratch) -> [args]``, a good configuration writing under ``scratch``.

    Returns:
      {script: [case dicts]}: the base first (flag None), then the cases in order; each with
      flag, value, args, scratch and :func:`main`'s result (code, stderr, compiled, loaded,
      files).
    """
    procs, inputs = {}, {}
    for script, function in scripts.items():
        items = []
        for i, (flag, value) in enumerate([(None, None), *cases[script]]):
            scratch = tmp / f"{script}-{i}"
            scratch.mkdir()
            args = base(script, scratch)
            if flag is not None:
                args = [a for a in args if not a.startswith(f"--{flag}=")] + [f"--{flag}={value}"]
            items.append({"args": args, "scratch": str(scratch), "flag": flag, "value": value})
        inputs[script] = items
        env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT}
        procs[script] = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), os.path.join(ROOT, "scripts", script),
             function], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, cwd=ROOT, env=env)
    out = {}
    for script, proc in procs.items():
        stdout, stderr = proc.communicate(json.dumps(inputs[script]), timeout=timeout)
        assert proc.returncode == 0, stderr[-3000:]
        out[script] = [{**case, **res} for case, res in zip(inputs[script], json.loads(stdout),
                                                            strict=True)]
    return out


def line_ok(script: str, flag: str, stderr: str) -> bool:
    """Whether ``stderr`` is exactly one line ``SCRIPT: error: --FLAG=...`` (no traceback)."""
    lines = [x for x in stderr.splitlines() if x.strip()]
    return (len(lines) == 1 and lines[0].startswith(f"{script}: error: --{flag}=")
            and "Traceback" not in stderr)


def failures(script: str, bad: list[dict]) -> list[str]:
    """What is wrong with each walked bad case: not exit 2 with one line naming its flag, or
    work (a compilation, a data load, a file) before the error."""
    out = []
    for case in bad:
        typed = f"--{case['flag']}={case['value']}"
        if case["code"] != 2 or not line_ok(script, case["flag"], case["stderr"]):
            out.append(f"{typed}: exit {case['code']}, stderr {case['stderr']!r}")
        elif case["compiled"] or case["loaded"] or case["files"]:
            out.append(f"{typed}: work before the error: {case['compiled']} compilations, "
                       f"{case['loaded']} data loads, files {case['files']}")
    return out


def main(script: str, function: str, cases: list[dict]) -> list[dict]:
    import jax

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
