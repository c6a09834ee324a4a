"""One interface for batches of fits: in-process, local processes, or a Dask cluster.

Batches of independent fits (leave-one-trial-out, held-out LOO refits, prior-sensitivity
grids, calibration replicates, simulation-based calibration) are run as
``executor.map(fn, tasks)``: ``fn`` is applied to every task and the results come back
**in task order**. Three executors:

``SerialExecutor`` (``"serial"``)
    In this process, one task after the other. Refits of an existing fit reuse the
    compiled model of this process (:func:`bayesln.hierarchy.sampling.cached_nutpie_model`),
    so a refit costs one sampling run.
``LocalExecutor`` (``"local"``, ``"local:N"``)
    A pool of ``N`` worker processes (default ``os.cpu_count()``), started with the
    ``spawn`` method (nutpie, numba and PyTensor run threads; ``fork`` is not safe with
    them). Each worker keeps its own compiled-model cache for its lifetime, so within a
    worker only the first fit of each model structure compiles, and runs its chains on
    ``cpu_count // N`` threads. Starting a worker costs an import of bayesln and PyMC
    (3-5 s) and a compile per model structure (5-9 s with nutpie and warm disk caches).
    A single fit already runs its chains in parallel on all cores, so workers pay off only
    with more cores than chains per fit: on the 2-core benchmark machine 20
    leave-one-trial-out refits took 45 s in-process and 62 s in two workers.
``DaskExecutor`` (a scheduler address ``"tcp://host:8786"``, ``"dask://host:8786"``, or
    a ``distributed.Client``)
    Tasks are submitted to an existing Dask distributed cluster (``pip install
    bayesln[dask]``). Workers keep their compiled-model caches between tasks as local
    processes do.

Reproducibility: every task carries its own seed, derived in the calling process from the
batch seed and the task's key (e.g. ``derive_seed(seed, "loo", study)``), never from the
worker that runs it or from the order of completion. The same batch gives the same draws
with the serial, local and Dask executors (tested in tests/test_executor.py): bit for bit
from fresh processes; a process that has already compiled other models can differ from a
worker in the last bits of the compiled gradient (1e-10), never in seeds or task order.

Choosing: ``executor=None`` (the default of every batch function) means
``$BAYESLN_EXECUTOR`` if set (e.g. ``tcp://scheduler:8786`` or ``local:8``), else
"auto" (:func:`run_batch`): local worker processes when the batch has at least 16 fits
(24 for refits of an existing fit, which reuse its compiled model in-process) *and* the
machine has at least twice as many cores as chains per fit; otherwise in this process.
Inside a worker, None always means in-process (no nested pools). An explicit
``executor=`` (a string, an :class:`Executor`, a ``distributed.Client``) overrides both.
The rule comes from benchmarks/results/perf.json (``loto``): a fit already runs its
chains in parallel, so on a 2-core machine worker processes only add their start-up.

Task functions and their tasks must be picklable. Module-level functions are pickled by
reference; functions of scripts that are not importable in a worker (e.g. a benchmark
loaded from a file) are pickled by value with cloudpickle.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import pickle
import uuid
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

__all__ = [
    "DaskExecutor",
    "Executor",
    "ExecutorError",
    "LocalExecutor",
    "SerialExecutor",
    "TaskError",
    "get_executor",
    "in_worker",
    "resolve_executor",
    "auto_parallel",
    "run_batch",
]

ENV_EXECUTOR = "BAYESLN_EXECUTOR"
ENV_WORKER = "BAYESLN_WORKER"


class ExecutorError(RuntimeError):
    """An executor that cannot be created or reached (bad specification or address)."""


class TaskError(RuntimeError):
    """A task of a batch failed; ``index`` is its position in the task list."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index


def in_worker() -> bool:
    """True inside a LocalExecutor or Dask worker process."""
    if os.environ.get(ENV_WORKER) == "1":
        return True
    try:  # a Dask worker (thread of a worker process)
        from distributed import get_worker

        get_worker()
        return True
    except Exception:  # noqa: BLE001 - distributed not installed, or not in a worker
        return False


class Executor:
    """Base class: ``map(fn, tasks)`` -> list of results in task order."""

    name = "executor"
    n_workers = 1

    def map(self, fn: Callable[[Any], Any], tasks: Iterable[Any], *, progress: Callable[[int], None] | None = None) -> list:
        """``[fn(t) for t in tasks]``, in task order. ``progress(i)`` is called with the
        index of each task: before it starts (serial) or when it finishes (pools). A
        failing task raises :class:`TaskError` (the others are cancelled)."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def describe(self) -> str:
        return f"{self.name} ({self.n_workers} worker{'s' if self.n_workers != 1 else ''})"


class SerialExecutor(Executor):
    """Tasks one after the other in this process."""

    name = "serial"

    def map(self, fn, tasks, *, progress=None) -> list:
        out = []
        for i, t in enumerate(tasks):
            if progress:
                progress(i)
            out.append(fn(t))
        return out


# --------------------------------------------------------------------------- local processes
ENV_THREADS = "BAYESLN_WORKER_THREADS"


def _worker_init(threads: int | None = None) -> None:
    os.environ[ENV_WORKER] = "1"
    if threads:
        # chains run in parallel threads within a fit: share the cores among the workers
        os.environ[ENV_THREADS] = str(threads)
    warnings.filterwarnings("ignore", category=FutureWarning)


def _call_pickled(payload: bytes, task):
    """Run a function shipped by value (cloudpickle) in a worker."""
    fn = pickle.loads(payload)
    return fn(task)


def _ship(fn: Callable) -> tuple[Callable, bytes | None]:
    """(function to submit, cloudpickled payload or None): importable functions go by
    reference, others (script or notebook functions, closures) by value."""
    try:
        pickle.dumps(fn)
        mod = getattr(fn, "__module__", None)
        if mod not in (None, "__main__"):
            return fn, None
    except Exception:  # noqa: BLE001 - not picklable by reference
        pass
    import cloudpickle

    return _call_pickled, cloudpickle.dumps(fn)


class LocalExecutor(Executor):
    """A pool of ``workers`` spawned processes (default: all cores).

    The pool starts on the first ``map`` and stays up until :meth:`close` (or the end of
    a ``with`` block), so successive batches reuse warm workers and their compiled models.
    """

    name = "local"

    def __init__(self, workers: int | None = None, *, start_method: str = "spawn"):
        n = (os.cpu_count() or 1) if workers is None else int(workers)
        if n < 1:
            raise ExecutorError(f"LocalExecutor needs at least one worker, got {workers!r}")
        self.n_workers = n
        self.start_method = start_method
        self._pool: cf.ProcessPoolExecutor | None = None

    def _ensure(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            threads = max(1, (os.cpu_count() or 1) // self.n_workers)
            self._pool = cf.ProcessPoolExecutor(
                max_workers=self.n_workers, mp_context=mp.get_context(self.start_method), initializer=_worker_init,
                initargs=(threads,),
            )
        return self._pool

    def map(self, fn, tasks, *, progress=None) -> list:
        tasks = list(tasks)
        if not tasks:
            return []
        pool = self._ensure()
        call, payload = _ship(fn)
        futs = [pool.submit(call, payload, t) if payload is not None else pool.submit(call, t) for t in tasks]
        index = {f: i for i, f in enumerate(futs)}
        try:
            for f in cf.as_completed(futs):
                exc = f.exception()
                if exc is not None:
                    raise TaskError(index[f], f"task {index[f]} failed in a local worker: {type(exc).__name__}: {exc}") from exc
                if progress:
                    progress(index[f])
        except BaseException:
            for f in futs:
                f.cancel()
            raise
        return [f.result() for f in futs]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


# --------------------------------------------------------------------------- dask
class DaskExecutor(Executor):
    """Tasks on a Dask distributed cluster: ``address`` of its scheduler
    (``tcp://host:8786``) or an existing ``distributed.Client``."""

    name = "dask"

    def __init__(self, address, *, timeout: float = 10.0):
        try:
            from distributed import Client
        except ImportError:  # pragma: no cover - depends on the install
            raise ExecutorError(
                "a Dask executor needs the 'distributed' package: pip install 'bayesln[dask]'"
            ) from None
        self._own = False
        if isinstance(address, Client):
            self.client = address
            self.address = getattr(address.scheduler, "address", None) if address.scheduler else None
        else:
            addr = str(address)
            if addr.startswith("dask://"):
                addr = "tcp://" + addr[len("dask://"):]
            self.address = addr
            try:
                self.client = Client(addr, timeout=timeout, set_as_default=False)
            except Exception as exc:  # noqa: BLE001 - OSError / TimeoutError / ValueError by version
                raise ExecutorError(
                    f"cannot connect to a Dask scheduler at {addr!r} within {timeout:g} s "
                    f"({type(exc).__name__}: {exc}). Start one (`dask scheduler` + `dask worker ADDRESS`, or "
                    "distributed.LocalCluster()) and pass its address, or use executor='local'."
                ) from None
            self._own = True
        try:
            self.n_workers = max(1, len(self.client.scheduler_info().get("workers", {})))
        except Exception:  # noqa: BLE001
            self.n_workers = 1

    def map(self, fn, tasks, *, progress=None) -> list:
        tasks = list(tasks)
        if not tasks:
            return []
        token = uuid.uuid4().hex[:12]
        keys = [f"bayesln-{token}-{i}" for i in range(len(tasks))]
        futs = self.client.map(fn, tasks, key=keys, pure=False)
        try:
            from distributed import as_completed

            index = {f.key: i for i, f in enumerate(futs)}
            for f in as_completed(futs):
                i = index[f.key]
                if f.status == "error":
                    exc = f.exception()
                    raise TaskError(i, f"task {i} failed on a Dask worker: {type(exc).__name__}: {exc}") from exc
                if progress:
                    progress(i)
            return self.client.gather(futs)
        except BaseException:
            self.client.cancel(futs)
            raise

    def close(self) -> None:
        if self._own:
            self.client.close()
            self._own = False

    def describe(self) -> str:
        return f"dask at {self.address} ({self.n_workers} workers)"


# --------------------------------------------------------------------------- choosing
def get_executor(spec: str | Executor | Any | None = None, *, default: str = "serial") -> Executor:
    """An executor from a specification.

    ``spec``: an :class:`Executor` (returned as is); a ``distributed.Client``; ``"serial"``;
    ``"local"`` / ``"local:N"`` (N worker processes); a Dask scheduler address
    (``"tcp://host:port"``, ``"dask://host:port"``, ``"tls://..."``); or None for
    ``$BAYESLN_EXECUTOR`` if set, else ``default``. Inside a worker, None always means
    serial (no nested pools). Ray is not supported (use Dask).
    """
    if isinstance(spec, Executor):
        return spec
    if spec is not None and type(spec).__name__ == "Client" and type(spec).__module__.startswith("distributed"):
        return DaskExecutor(spec)
    if spec is None:
        if in_worker():
            return SerialExecutor()
        spec = os.environ.get(ENV_EXECUTOR) or default
    if not isinstance(spec, str):
        raise ExecutorError(f"executor must be None, a string, an Executor or a distributed.Client, not {type(spec).__name__}")
    s = spec.strip()
    low = s.lower()
    if low in ("serial", "none", "inprocess", "in-process"):
        return SerialExecutor()
    if low == "local" or low.startswith("local:"):
        n = None
        if ":" in low:
            try:
                n = int(low.split(":", 1)[1])
            except ValueError:
                raise ExecutorError(f"bad executor {spec!r}: expected 'local' or 'local:N' with N workers") from None
        return LocalExecutor(n)
    if low.startswith(("tcp://", "tls://", "dask://", "inproc://", "ucx://")):
        return DaskExecutor(s)
    if low.startswith("ray"):
        raise ExecutorError(f"executor {spec!r}: Ray is not supported; run a Dask cluster and pass its scheduler address")
    raise ExecutorError(
        f"unknown executor {spec!r}: use 'serial', 'local', 'local:N', a Dask scheduler address "
        "('tcp://host:8786') or a distributed.Client"
    )


def resolve_executor(spec, *, default: str = "serial") -> tuple[Executor, bool]:
    """``(executor, owned)``: ``owned`` is True when the executor was created here from a
    string or None (the caller closes it after its batch), False for one passed in."""
    ex = get_executor(spec, default=default)
    return ex, not (isinstance(spec, Executor) or (spec is not None and not isinstance(spec, str)))


#: ``default="auto"`` runs a batch in local worker processes from this many tasks on
#: (and with enough cores, see :func:`auto_parallel`); see benchmarks/results/perf.json
AUTO_MIN_TASKS = 16


def auto_parallel(n_tasks: int, *, min_tasks: int = AUTO_MIN_TASKS, chains: int = 2) -> bool:
    """The "auto" rule: worker processes for at least ``min_tasks`` fits on a machine
    with at least ``2 * chains`` cores (each fit runs its chains in parallel already)."""
    return n_tasks >= min_tasks and (os.cpu_count() or 1) >= 2 * max(1, int(chains))


def run_batch(fn: Callable, tasks: Sequence, executor=None, *, default: str = "auto", min_tasks: int = AUTO_MIN_TASKS,
              chains: int = 2, progress=None) -> list:
    """``fn`` over ``tasks`` with ``executor`` (see :func:`get_executor`); an executor
    created here is closed afterwards. ``default="auto"`` (used when ``executor`` is None
    and ``$BAYESLN_EXECUTOR`` is unset): local worker processes on all cores when
    :func:`auto_parallel` says so (``chains`` = chains per fit), else in this process."""
    tasks = list(tasks)
    if default == "auto":
        default = "local" if auto_parallel(len(tasks), min_tasks=min_tasks, chains=chains) else "serial"
    ex, owned = resolve_executor(executor, default=default)
    try:
        return ex.map(fn, tasks, progress=progress)
    finally:
        if owned:
            ex.close()
