"""One compute thread per actor, for torch and for NumPy's BLAS.

Actors share a machine's cores with each other and, on a small machine, with the
broker, the database and the web service. Libraries that start a thread per core in
every process oversubscribe them: torch's intra-op pool, and OpenBLAS's under NumPy,
which splits even a 128 x 64 matrix product across threads that then wait on each other
for a core (seen on 2 cores: a fifth of the trainer's time in OpenBLAS's hand-off
between its threads, for products that take microseconds on one).
"""

from __future__ import annotations

import torch
from threadpoolctl import threadpool_limits


def single_threaded() -> None:
    """torch's intra-op threads for the calling thread (the setting is per thread) and
    the BLAS threads of the process, one each."""
    torch.set_num_threads(1)
    threadpool_limits(1, user_api="blas")
