"""Several processes, one program: JAX's multi-controller runtime (``jax.distributed``).

Every process runs the same script; ``jax.distributed.initialize`` connects them through a
coordinator (process 0 listens on ``coordinator`` = "host:port"), after which
``jax.devices()`` lists the devices of all processes and one ``jax.jit`` program spans them.
On a SLURM allocation, an Open MPI launch or a Cloud TPU pod the three values are detected
from the environment; elsewhere they are given (scripts/train.py ``--coordinator``,
``--num_processes``, ``--process_id``). README "Several processes and machines" shows the
commands.
"""

from __future__ import annotations

import logging
import os

import jax

log = logging.getLogger(__name__)

__all__ = ["check_arguments", "initialize"]


def check_arguments(coordinator: str | None, num_processes: int | None,
                    process_id: int | None) -> None:
    """Checks the values given (None: detected from the cluster environment).

    Raises:
      ValueError: naming the argument and its value: ``coordinator`` not "host:port" with a
        port in 1..65535, ``num_processes`` < 1, ``process_id`` outside
        [0, ``num_processes``), or ``process_id`` without ``num_processes``.
    """
    if coordinator is not None:
        host, sep, port = coordinator.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"coordinator={coordinator}: expected HOST:PORT with a port in "
                             "1..65535, e.g. 10.0.0.1:12345 (process 0's address)")
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"num_processes={num_processes}: must be >= 1")
    if process_id is not None:
        if num_processes is None:
            raise ValueError(f"process_id={process_id}: give num_processes as well")
        if not 0 <= process_id < num_processes:
            raise ValueError(f"process_id={process_id}: must be in [0, num_processes="
                             f"{num_processes})")


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> tuple[int, int]:
    """Joins this process to the others; call once, before any other JAX call.

    Values left None are detected by ``jax.distributed.initialize`` (SLURM, Open MPI, Cloud
    TPU; ``JAX_COORDINATOR_ADDRESS`` for the coordinator). On CPU the processes exchange
    data through gloo (TCP), unless ``JAX_CPU_COLLECTIVES_IMPLEMENTATION`` says otherwise
    (e.g. "mpi"); GPUs use NCCL and TPUs their interconnect, whatever this says.

    Args:
      coordinator: "host:port" of process 0, reachable from every process.
      num_processes: how many processes take part.
      process_id: this process's index, in [0, num_processes).

    Returns:
      ``(jax.process_index(), jax.process_count())``.

    Raises:
      ValueError: see ``check_arguments``.
    """
    check_arguments(coordinator, num_processes, process_id)
    if "JAX_CPU_COLLECTIVES_IMPLEMENTATION" not in os.environ:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id)
    log.info("process %d of %d; devices: %d local, %d in all", jax.process_index(),
             jax.process_count(), jax.local_device_count(), jax.device_count())
    return jax.process_index(), jax.process_count()
