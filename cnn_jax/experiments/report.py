"""The results report: experiment workdirs -> ``DIR/<experiment>/`` copies -> ``DIR/REPORT.md``.

This module is the only place that knows the report's layout. The experiments are named by
the flagfiles in ``experiments/`` (``NAME.flags``; the quick variants ``NAME_quick.flags``
only when asked); each flagfile's ``--workdir`` says where its results are. A workdir holds
one of three layouts:

* an experiment (``experiment.json``, see ``cnn_jax.experiments.results``) with its CSV/PNG;
* a training sweep (``summary.csv``, ``aggregate.csv`` when seeds are swept, ``summary.md``,
  ``figures/sweep.png``; member folders are not copied);
* a single training run (``results.json``, ``config.json``, ``metrics.jsonl``,
  ``figures/history.png``).

Only small result files are copied (JSON, JSONL, CSV, Markdown, PNG, each under
``MAX_FILE_BYTES``; never checkpoints), so ``DIR`` can be committed, and ``REPORT.md`` is
written from ``DIR`` alone: an experiment whose workdir is missing keeps its committed copy,
and one with neither is listed as "not run".
"""

from __future__ import annotations

import csv
import glob
import json
import math
import os
import shutil
from collections.abc import Sequence
from typing import Any

from cnn_jax import io

__all__ = ["MAX_FILE_BYTES", "ORDER", "Experiment", "build", "discover", "render"]

MAX_FILE_BYTES = 1_000_000
SMALL_SUFFIXES = (".json", ".jsonl", ".csv", ".md", ".png")
# Issue 10's numbering; experiments not listed here follow in alphabetical order.
ORDER = ("depth_sweep", "keras_agreement", "dense_vs_conv", "sparse_interactions",
         "parameter_sharing", "receptive_fields", "rotation", "equivariance_practice",
         "variable_input", "activation_maps")
# The lecture's claims for workdirs that carry no experiment.json (sweeps, training runs).
CLAIMS = {
    "depth_sweep": "Adding hidden Dense(512, elu) layers to a plain MLP stops helping after a "
                   "few layers and then hurts (train and validation).",
    "quickstart": "A small CNN reaches high Fashion-MNIST accuracy in a few epochs.",
}
# Section titles for workdirs that carry no experiment.json.
TITLES = {
    "depth_sweep": "1. The lecture's depth sweep: 0..24 hidden Dense(512, elu) layers, 3 seeds",
    "equivariance": "Equivariance of every layer and model: f(g(x)) against g(f(x))",
    "quickstart": "Quickstart: the small CNN on Fashion-MNIST",
}
MAX_ROWS = 40  # longer tables are cut in REPORT.md (the CSV beside it is complete)


class Experiment:
    """One flagfile: its name, the workdir it names, the script that runs it.

    Attributes:
      name: flagfile stem (``depth_sweep``, ``dense_vs_conv_quick``).
      base: the name without ``_quick``.
      flagfile: path relative to the repository root.
      workdir: the ``--workdir`` it names (relative to the root), or None.
      script: ``scripts/<base>.py`` where it exists, else ``scripts/train.py``.
      sweeps: the flagfile's ``--sweep`` specs (a training sweep's grid).
    """

    def __init__(self, name: str, flagfile: str, workdir: str | None, script: str,
                 sweeps: Sequence[str] = ()):
        self.name, self.flagfile, self.workdir, self.script = name, flagfile, workdir, script
        self.base = name.removesuffix("_quick")
        self.sweeps = tuple(sweeps)

    @property
    def grid_size(self) -> int | None:
        """Members of the flagfile's sweep grid (None without ``--sweep``)."""
        if not self.sweeps:
            return None
        from cnn_jax.training.sweep import parse_sweep

        return math.prod(len(parse_sweep(spec)[1]) for spec in self.sweeps)

    @property
    def command(self) -> str:
        return f"python {self.script} --flagfile={self.flagfile}"

    def __repr__(self) -> str:
        return f"Experiment({self.name!r}, workdir={self.workdir!r})"


def _sort_key(name: str):
    base = name.removesuffix("_quick")
    return (ORDER.index(base) if base in ORDER else len(ORDER), base, name)


def discover(root: str = ".", *, quick: bool = False) -> list[Experiment]:
    """The experiments named by ``root/experiments/*.flags``, in report order.

    Args:
      root: the repository root.
      quick: take the quick variants (``*_quick.flags``) instead of the full ones.
    """
    found = []
    for path in glob.glob(os.path.join(root, "experiments", "*.flags")):
        name = os.path.basename(path)[: -len(".flags")]
        if name.endswith("_quick") != quick:
            continue
        workdir, sweeps = None, []
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("--workdir="):
                    workdir = line.partition("=")[2].strip()
                elif line.startswith("--sweep="):
                    sweeps.append(line.partition("=")[2].strip())
        base = name.removesuffix("_quick")
        script = (f"scripts/{base}.py" if os.path.exists(os.path.join(root, "scripts",
                                                                      f"{base}.py"))
                  else "scripts/train.py")
        found.append(Experiment(name, f"experiments/{name}.flags", workdir, script, sweeps))
    return sorted(found, key=lambda e: _sort_key(e.name))


def layout(folder: str) -> str | None:
    """``"experiment"``, ``"sweep"``, ``"run"``, ``"files"`` or None (no results) for a folder."""
    for kind, marker in (("experiment", "experiment.json"), ("sweep", "summary.csv"),
                         ("run", "results.json")):
        if os.path.isfile(os.path.join(folder, marker)):
            return kind
    if os.path.isdir(folder) and any(f.endswith((".csv", ".md")) for f in os.listdir(folder)):
        return "files"
    return None


def _small_files(workdir: str) -> list[str]:
    """Relative paths of the result files to copy: those at the top level and in
    ``figures/``, what ``experiment.json`` names, and the small files beside what it names
    in a subfolder (``equivariance/figures/shift.png`` brings ``equivariance/*.csv``)."""
    subs, rels = {"", "figures"}, set()
    meta = os.path.join(workdir, "experiment.json")
    if os.path.isfile(meta):
        record = io.read_json(meta)
        named = ([t["csv"] for t in record.get("tables", [])]
                 + [f["png"] for f in record.get("figures", [])])
        rels.update(named)
        for rel in named:
            sub = os.path.dirname(rel)
            subs.add(os.path.dirname(sub) if os.path.basename(sub) == "figures" else sub)
    for sub in subs:
        folder = os.path.join(workdir, sub)
        if os.path.isdir(folder):
            rels.update(os.path.join(sub, f) for f in os.listdir(folder)
                        if f.endswith(SMALL_SUFFIXES) and not f.startswith("."))
    return sorted(r for r in rels if os.path.isfile(os.path.join(workdir, r))
                  and os.path.getsize(os.path.join(workdir, r)) <= MAX_FILE_BYTES)


def collect(workdir: str, dest: str) -> list[str]:
    """Replaces ``dest`` with copies of ``workdir``'s small result files; returns them."""
    rels = _small_files(workdir)
    tmp = dest.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    for rel in rels:
        os.makedirs(os.path.dirname(os.path.join(tmp, rel)), exist_ok=True)
        shutil.copyfile(os.path.join(workdir, rel), os.path.join(tmp, rel))
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return rels


def build(out: str, root: str = ".", *, quick: bool = False, from_report: bool = False
          ) -> dict[str, str]:
    """Collects the experiments' results into ``out`` and writes ``out/REPORT.md``.

    Args:
      out: the report folder (e.g. ``report``).
      root: the repository root (flagfiles in ``root/experiments``, workdirs relative to it).
      quick: report the quick variants instead of the full experiments.
      from_report: do not read workdirs at all; rebuild from what ``out`` holds.

    Returns:
      ``{experiment name: "collected" | "committed" | "not run"}``: fresh from its workdir,
      kept from an earlier copy in ``out``, or without results.
    """
    os.makedirs(out, exist_ok=True)
    experiments = discover(root, quick=quick)
    status = {}
    for exp in experiments:
        workdir = None if exp.workdir is None else os.path.join(root, exp.workdir)
        dest = os.path.join(out, exp.name)
        if not from_report and workdir is not None and layout(workdir) is not None:
            collect(workdir, dest)
            status[exp.name] = "collected"
        else:
            status[exp.name] = "committed" if layout(dest) is not None else "not run"
    io.atomic_write_text(os.path.join(out, "REPORT.md"), render(out, experiments))
    return status


# ------------------------------------------------------------------------------ rendering


def _read_csv(path: str) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None,
                   max_rows: int = MAX_ROWS) -> list[str]:
    """Markdown lines of a table; rows beyond ``max_rows`` are counted, not shown."""
    if not rows:
        return ["(empty table)"]
    columns = list(columns or rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r.get(c, "")) for c in columns) + " |"
              for r in rows[:max_rows]]
    if len(rows) > max_rows:
        lines.append(f"\n({len(rows) - max_rows} more rows in the CSV)")
    return lines


def _float(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _section_experiment(folder: str, rel: str, exp: Experiment) -> tuple[list[str], str]:
    record = io.read_json(os.path.join(folder, "experiment.json"))
    lines = [f"**Claim.** {record['claim']}", "",
             f"**Reproduce.** `{record['command']}`" + (" (quick variant)" if record.get(
                 "quick") else ""), "", f"**Finding.** {record['finding']}", ""]
    if record.get("numbers"):
        lines += ["Key numbers:", ""]
        lines += markdown_table([{"quantity": k, "value": v}
                                 for k, v in record["numbers"].items()])
        lines.append("")
    for table in record.get("tables", []):
        path = os.path.join(folder, table["csv"])
        lines += [f"*{table['title']}* ([CSV]({rel}/{table['csv']}))", ""]
        lines += (markdown_table(_read_csv(path)) if os.path.isfile(path)
                  else ["(table missing)"]) + [""]
    for fig in record.get("figures", []):
        lines += [f"![{fig['title']}]({rel}/{fig['png']})", ""]
    shown = {t["csv"] for t in record.get("tables", [])}
    more = [r for r in _small_files(folder) if r.endswith(".csv") and r not in shown]
    if more:
        lines += ["More data: " + ", ".join(f"[{r}]({rel}/{r})" for r in more), ""]
    return lines, record["finding"]


def _sweep_axes(columns: Sequence[str], first_metric: str) -> list[str]:
    return list(columns[: columns.index(first_metric)]) if first_metric in columns else []


def _section_sweep(folder: str, rel: str, exp: Experiment) -> tuple[list[str], str]:
    summary = _read_csv(os.path.join(folder, "summary.csv"))
    agg_path = os.path.join(folder, "aggregate.csv")
    finished = sum(r.get("status") in ("completed", "stopped_early") for r in summary)
    lines = []
    if os.path.isfile(agg_path):
        agg = _read_csv(agg_path)
        axes = [c for c in agg[0] if not c.endswith(("_mean", "_sd")) and c != "n"]
        metrics = ("train_loss", "train_accuracy", "valid_loss", "valid_accuracy", "epochs_run")
        rows = [{**{a: r[a] for a in axes},
                 **{m: f"{_float(r[m + '_mean']):.4f} ± {_float(r.get(m + '_sd')):.4f}"
                    for m in metrics if m + "_mean" in r}, "n": r.get("n", "")} for r in agg]
        lines += [f"*Mean ± sample sd over seeds* ([CSV]({rel}/aggregate.csv))", ""]
        lines += markdown_table(rows) + [""]
        best_rows, key = agg, "valid_accuracy_mean"
    else:
        axes = _sweep_axes(list(summary[0]), "train_loss")
        shown = [*axes, "train_loss", "train_accuracy", "valid_loss", "valid_accuracy",
                 "epochs_run", "status"]
        lines += [f"*One row per member* ([CSV]({rel}/summary.csv))", ""]
        lines += markdown_table(summary, [c for c in shown if c in summary[0]]) + [""]
        best_rows, key = summary, "valid_accuracy"
    finding = _sweep_finding(best_rows, axes, key)
    grid = exp.grid_size
    of_grid = f" of the flagfile's {grid}" if grid else ""
    lines = [f"**Claim.** {CLAIMS.get(exp.base, 'A training sweep.')}", "",
             f"**Reproduce.** `{exp.command}`", "", f"**Finding.** {finding}", "",
             f"Members: {finished} finished{of_grid} ({len(summary)} in this summary).", "",
             *lines]
    if os.path.isfile(os.path.join(folder, "figures", "sweep.png")):
        lines += [f"![{exp.base}: loss and accuracy against the swept value]"
                  f"({rel}/figures/sweep.png)", ""]
    return lines, finding


def _sweep_finding(rows, axes, key) -> str:
    scored = [r for r in rows if math.isfinite(_float(r.get(key)))]
    if not scored or not axes:
        return "No finished member yet."
    best = max(scored, key=lambda r: _float(r[key]))
    last = scored[-1]
    at = lambda r: ", ".join(f"{a}={r[a]}" for a in axes)
    return (f"{key} is highest at {at(best)} ({_float(best[key]):.4f}) and "
            f"{_float(last[key]):.4f} at {at(last)}, the last grid point run.")


def _section_run(folder: str, rel: str, exp: Experiment) -> tuple[list[str], str]:
    results = io.read_json(os.path.join(folder, "results.json"))
    finding = (f"{results.get('model')} reaches valid accuracy "
               f"{results.get('valid_accuracy', math.nan):.4f} after "
               f"{results.get('epochs_run')} epochs ({results.get('status')}).")
    keys = ("model", "param_count", "epochs_run", "train_loss", "train_accuracy", "valid_loss",
            "valid_accuracy", "wall_time", "status")
    lines = [f"**Claim.** {CLAIMS.get(exp.base, 'A training run.')}", "",
             f"**Reproduce.** `{exp.command}`", "", f"**Finding.** {finding}", ""]
    lines += markdown_table([{"quantity": k, "value": results[k]} for k in keys
                             if k in results]) + [""]
    if os.path.isfile(os.path.join(folder, "figures", "history.png")):
        lines += [f"![{exp.base}: loss and accuracy per epoch]({rel}/figures/history.png)", ""]
    return lines, finding


def _section_files(folder: str, rel: str, exp: Experiment) -> tuple[list[str], str]:
    """A workdir of another layout: its Markdown tables verbatim (or its CSVs), its figures."""
    lines = [f"**Reproduce.** `{exp.command}`", ""]
    names = sorted(os.listdir(folder))
    mds = [n for n in names if n.endswith(".md")]
    for name in mds or [n for n in names if n.endswith(".csv")]:
        path = os.path.join(folder, name)
        lines += [f"*{name}*", ""]
        if name.endswith(".md"):
            with open(path) as f:
                lines += [f.read().rstrip(), ""]
        else:
            lines += markdown_table(_read_csv(path)) + [""]
    figures = os.path.join(folder, "figures")
    for name in sorted(os.listdir(figures)) if os.path.isdir(figures) else []:
        if name.endswith(".png"):
            lines += [f"![{name}]({rel}/figures/{name})", ""]
    return lines, ""


def _experiment_state(record: dict[str, Any], exp: Experiment) -> str:
    """"ran"; "ran with FLAGS" when the recorded command added flags to the flagfile's; "ran
    as COMMAND" when it is another command."""
    command = record.get("command") or exp.command
    if not command.startswith(exp.command):
        return f"ran as `{command}`"
    extra = command.removeprefix(exp.command).strip()
    return f"ran with `{extra}`" if extra else "ran"


def _sweep_state(folder: str, exp: Experiment) -> str:
    """"sweep: F of G members" (finished of the flagfile's grid)."""
    try:
        summary = _read_csv(os.path.join(folder, "summary.csv"))
    except (OSError, ValueError):
        return "sweep"
    finished = sum(r.get("status") in ("completed", "stopped_early") for r in summary)
    grid = exp.grid_size
    return f"sweep: {finished} of {grid} members" if grid else f"sweep: {finished} members"


_SECTIONS = {"experiment": _section_experiment, "sweep": _section_sweep, "run": _section_run,
             "files": _section_files}


def render(out: str, experiments: Sequence[Experiment]) -> str:
    """REPORT.md's text, from the copies in ``out`` only."""
    body, index = [], []
    for exp in experiments:
        folder = os.path.join(out, exp.name)
        kind = layout(folder)
        title = TITLES.get(exp.base, exp.name)
        state = {"sweep": "sweep", "run": "training run", "files": "ran"}.get(kind)
        if kind == "sweep":
            state = _sweep_state(folder, exp)
        if kind == "experiment":
            record = io.read_json(os.path.join(folder, "experiment.json"))
            title = record.get("title", title)
            state = "quick variant" if record.get("quick") else _experiment_state(record, exp)
        anchor = exp.name.replace("_", "-")
        body += [f'<a id="{anchor}"></a>', f"## {title}", ""]
        if kind is None:
            body += [f"**Not run.** Reproduce with `{exp.command}`.", ""]
            index.append({"experiment": f"[{exp.name}](#{anchor})", "status": "not run",
                          "finding": ""})
            continue
        try:
            lines, finding = _SECTIONS[kind](folder, exp.name, exp)
        except (KeyError, ValueError, IndexError, json.JSONDecodeError) as e:
            lines, finding = [f"**Unreadable results** in `{exp.name}/`: {e!r}", ""], ""
        body += lines
        index.append({"experiment": f"[{exp.name}](#{anchor})", "status": state,
                      "finding": finding})
    head = ["# Results", "",
            "Every experiment of the lecture's claims, collected by "
            "`python scripts/report.py --out=report` from its workdir (or from the copy "
            "committed here when the workdir is absent). Each section names the command that "
            "reproduces it; the CSV files beside the figures hold every number shown. "
            "Times are wall-clock on the machine that ran the experiment (for the committed "
            "results: a 2-core CPU shared with other jobs, so only their ratios mean much).",
            ""]
    head += markdown_table(index, max_rows=len(index) or 1) + [""]
    return "\n".join(head + body)
