"""cnn_jax.plotting picks Agg for scripts and leaves a chosen backend (a notebook's) alone."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def backend_after_import(mplbackend):
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    if mplbackend is not None:
        env["MPLBACKEND"] = mplbackend
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    code = "import cnn_jax.plotting, matplotlib; print(matplotlib.get_backend())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    return out.stdout.strip().lower()


def test_agg_without_a_chosen_backend():
    assert backend_after_import(None) == "agg"


def test_a_chosen_backend_is_kept():
    # "svg" stands for the inline backend ipykernel sets through MPLBACKEND
    assert backend_after_import("svg") == "svg"
