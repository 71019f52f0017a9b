"""Running a test body in 2 gloo processes on loopback, with a deadline on every wait.

A machine where two processes cannot talk over loopback skips the test instead of hanging the suite: gloo's
own default timeout is 30 minutes per operation. The parent hosts the TCP store; workers rebuild their data
from seeds (no tensors cross process boundaries) and write their results under ``out_dir``.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Callable

import pytest

WORLD_SIZE = 2
TIMEOUT = timedelta(seconds=60)


def init_worker(rank: int, port: int, out_dir: str) -> object:
    """Join the process group (in a worker), then mark this rank as having rendezvoused. Returns the store:
    the worker keeps it until after ``destroy_process_group`` (a store destroyed under a live group can abort
    the process at exit)."""
    import torch.distributed as dist

    # Loopback by name: gloo otherwise binds to whatever address the host name resolves to.
    os.environ["GLOO_SOCKET_IFNAME"] = "lo0" if sys.platform == "darwin" else "lo"
    store = dist.TCPStore("127.0.0.1", port, is_master=False, timeout=TIMEOUT)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=WORLD_SIZE, timeout=TIMEOUT)
    dist.barrier()
    Path(out_dir, f"ready{rank}").touch()
    return store


def finish_worker(store: object) -> None:
    """Leave the process group and end the worker process at once (after its results are written): the
    interpreter's teardown of gloo's threads aborts a worker now and then ("terminate called without an active
    exception") after all its work is done."""
    import torch.distributed as dist

    dist.destroy_process_group()
    del store
    os._exit(0)


def run_workers(worker: Callable[[int, int, str], None], out_dir: Path) -> None:
    """Run ``worker(rank, port, out_dir)`` in ``WORLD_SIZE`` spawned processes; skip the calling test where
    loopback TCP or the rendezvous is missing, fail it on any error after the rendezvous."""
    import torch.distributed as dist
    import torch.multiprocessing as mp

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not built in")
    try:
        with socket.create_server(("127.0.0.1", 0)) as server, socket.create_connection(server.getsockname(), 5):
            pass
    except OSError as error:
        pytest.skip(f"no TCP on loopback here: {error}")
    store = dist.TCPStore("127.0.0.1", 0, is_master=True, timeout=TIMEOUT, wait_for_workers=False)
    workers = mp.start_processes(
        worker, args=(store.port, str(out_dir)), nprocs=WORLD_SIZE, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + 3 * TIMEOUT.total_seconds()
    ready = lambda: all((out_dir / f"ready{rank}").exists() for rank in range(WORLD_SIZE))  # noqa: E731
    try:
        while not workers.join(timeout=1.0):
            if time.monotonic() > deadline:
                break
    except mp.ProcessRaisedException as error:
        if not ready():
            pytest.skip(f"gloo processes cannot rendezvous on loopback here: {error}")
        raise
    finally:
        for process in workers.processes:
            if process.is_alive():
                process.kill()
    if not ready():
        pytest.skip("gloo processes did not rendezvous on loopback within the deadline")
    done = [out_dir / f"rank{rank}.pt" for rank in range(WORLD_SIZE)]
    assert all(path.exists() for path in done), "the distributed workers did not finish within the deadline"
