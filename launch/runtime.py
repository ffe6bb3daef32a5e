"""Process start-up shared by every entry point that takes ``--devices``.

The number of simulated CPU devices (``jax_num_cpu_devices``) is read once, when JAX starts its
CPU backend, so it must be fixed before the first JAX computation. Multi-host runs must call
``jax.distributed.initialize`` before any JAX computation too. Both live here, called first
thing by ``launch.<verb>.main``.
"""

from __future__ import annotations

import argparse
import os

import jax


def add_device_flags(parser: argparse.ArgumentParser) -> None:
    """``--devices`` and the multi-host flags, identical in every entry point."""
    group = parser.add_argument_group("devices")
    group.add_argument(
        "--devices",
        type=int,
        default=None,
        help="local devices to use (default: all). On CPU, N devices are simulated "
        "(jax_num_cpu_devices=N).",
    )
    group.add_argument(
        "--coordinator_address",
        default=None,
        help="host:port of process 0 for a multi-process run (not needed on TPU VMs)",
    )
    group.add_argument(
        "--num_processes", type=int, default=None, help="processes in a multi-process run"
    )
    group.add_argument("--process_id", type=int, default=None, help="this process's index")


def _multi_host_tpu() -> bool:
    hosts = os.environ.get("TPU_WORKER_HOSTNAMES", "")
    return "," in hosts


def setup_devices(
    devices: int | None = None,
    *,
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> int | None:
    """Fix the device count and join a multi-process run; returns ``devices`` unchanged.

    - ``devices=N`` on CPU: ``jax.config.update("jax_num_cpu_devices", N)`` (harmless on
      GPU/TPU hosts, where it only shapes the unused host platform). Raises if a JAX backend
      already started with fewer than N local devices.
    - ``coordinator_address`` (+ ``num_processes``, ``process_id``): calls
      ``jax.distributed.initialize`` with them; on a multi-host TPU VM it is called with no
      arguments (TPU metadata provides them).
    """
    if devices is not None:
        if devices < 1:
            raise ValueError(f"--devices must be >= 1, got {devices}")
        try:
            jax.config.update("jax_num_cpu_devices", devices)
        except RuntimeError as err:  # the backends already started (with another count)
            if jax.local_device_count() < devices:
                raise RuntimeError(
                    f"setup_devices({devices}) called after JAX started its backends with "
                    f"{jax.local_device_count()} local devices; call it before the first JAX "
                    "computation"
                ) from err
    if coordinator_address is not None:
        if num_processes is None or process_id is None:
            raise ValueError("--coordinator_address needs --num_processes and --process_id")
        jax.distributed.initialize(
            coordinator_address=coordinator_address,
            num_processes=num_processes,
            process_id=process_id,
        )
    elif _multi_host_tpu():
        jax.distributed.initialize()
    if devices is not None and jax.local_device_count() < devices:
        raise RuntimeError(
            f"--devices={devices} but only {jax.local_device_count()} local "
            f"{jax.default_backend()} devices exist (ask for fewer devices)"
        )
    return devices


def setup_from_args(args: argparse.Namespace) -> int | None:
    """:func:`setup_devices` from the flags of :func:`add_device_flags`."""
    return setup_devices(
        args.devices,
        coordinator_address=args.coordinator_address,
        num_processes=args.num_processes,
        process_id=args.process_id,
    )
