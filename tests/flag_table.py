"""Prints every malformed flag value the script tests walk, with what each script answers.

    PYTHONPATH=. python tests/flag_table.py > flag_table.md

A Markdown table ``| script | flag | value | exit | line |``: the cases of
``tests/test_train_flags.py`` (train.py), of ``tests/test_script_errors.py`` (benchmark.py,
equivariance.py) and of
``tests/experiments/test_script_flags.py`` (the ten experiment scripts), each run through
its script's whole-configuration check (``tests/script_checks.walk``), the good
configuration of each script first (exit "passes"). Paths under the scratch folder are
shown as ``$TMP``.
"""

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests import test_script_errors as errors  # noqa: E402
from tests import test_train_flags as train_flags  # noqa: E402
from tests.experiments import test_script_flags as experiments  # noqa: E402
from tests.script_checks import walk  # noqa: E402


def _cell(text, tmp: str) -> str:
    text = "" if text is None else str(text).replace(tmp, "$TMP")
    return text.replace("|", "\\|").replace("\n", " ")


def rows(tmp: Path) -> list[str]:
    """The table's lines, header first."""
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    fx_a = errors._fixtures(tmp / "a")
    runs = errors._trained_runs(fx_a)
    cases = {s: [] for s in errors.CHECKS}
    for script, flag, value in errors._cases(fx_a, runs):
        cases[script].append((flag, value))
    fx_b = experiments.fixtures(tmp / "b")
    cases.update(experiments.cases(fx_b))
    bases = {**{s: (lambda s_, scratch: errors._base(s_, scratch, runs)) for s in errors.CHECKS},
             **{s: experiments.base(fx_b) for s in experiments.CHECKS}}
    walked = walk(tmp, {**errors.CHECKS, **experiments.CHECKS}, cases,
                  lambda script, scratch: bases[script](script, scratch), timeout=900)
    lines = ["| script | flag | value | exit | line |", "|---|---|---|---|---|"]
    for script in sorted(walked):
        for case in walked[script]:
            flag = "(good configuration)" if case["flag"] is None else f"--{case['flag']}"
            code = "passes" if case["code"] is None else case["code"]
            line = " / ".join(x for x in case["stderr"].splitlines() if x.strip())
            lines.append(f"| {script} | {flag} | `{_cell(case['value'], str(tmp))}` | {code} | "
                         f"{_cell(line, str(tmp))} |")
    (tmp / "t").mkdir()
    results = train_flags.walk_train(tmp / "t")["results"]
    for flag, values in train_flags.MALFORMED.items():
        for value in values:
            kind, message = results[f"{flag}={value}"]
            code = 2 if kind in ("bad", "flag_error") else "passes"
            lines.append(f"| train.py | --{flag} | `{_cell(value, str(tmp))}` | {code} | "
                         f"{_cell(f'train.py: error: {message}', str(tmp))} |")
    return lines


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        print("\n".join(rows(Path(tmp))))
