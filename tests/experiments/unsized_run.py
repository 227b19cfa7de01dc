"""Runs a script as ``__main__`` with ``cnn_jax.data.load`` answering ``cifar10`` from the
synthetic bars (4096 train, 1024 test images): a dataset whose split sizes the scripts'
checks cannot know before loading it (tests/experiments/test_script_flags.py).

    python tests/experiments/unsized_run.py SCRIPT [FLAGS...]
"""

import os
import runpy
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [ROOT, os.path.join(ROOT, "scripts")]

from cnn_jax import data  # noqa: E402

_load = data.load


def load(name, split, **kwargs):
    return _load("synthetic_bars" if name == "cifar10" else name, split, **kwargs)


if __name__ == "__main__":
    data.load = load
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
