"""One compute thread per actor, for torch and for NumPy's BLAS.

Actors share a machine's cores with each other and, on a small machine, with the
broker, the database and the web service. Libraries that start a thread per core in
every process oversubscribe them: torch's intra-op pool, and OpenBLAS's under NumPy,
which splits even the small matrix products of an MLP across threads that then wait on
each other for a core, for work that one thread finishes sooner alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from threadpoolctl import threadpool_limits


def single_threaded() -> None:
    """torch's intra-op threads for the calling thread (the setting is per thread) and
    the BLAS threads of the process, one each."""
    torch.set_num_threads(1)
    threadpool_limits(1, user_api="blas")


@contextmanager
def single_threaded_scope() -> Iterator[None]:
    """`single_threaded` for the length of a block (a one-process run inside a test or a
    benchmark), then torch's thread count and the BLAS limits as they were."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(threads)
