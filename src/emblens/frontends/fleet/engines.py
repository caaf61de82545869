"""Where the replicas' tasks run: in this process (`serial`), in a local process pool (`pool`, the
default: one worker per core), or on Ray (`ray`: the cluster at `--address`, or one started here).

Each engine calls `done(result)` on this process's thread as each task ends, in the order they
end, and keeps only a bounded number of tasks in flight, so that what the driver holds does not
grow with the fleet. A worker that dies (killed for memory, a crash in a native library) fails the
replicas it held, each one row; the others go on.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from emblens.frontends.fleet.replicas import Replica
from emblens.frontends.fleet.task import Conf, failed_rows, run_replica

ENGINES = ("pool", "serial", "ray")
Done = Callable[[dict], None]


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:        # not on Linux
        return max(1, os.cpu_count() or 1)


def _lost(replica: Replica, why: str) -> dict:
    return failed_rows(replica, "failed", why)


def serial(replicas: Iterable[Replica], conf: Conf, done: Done) -> None:
    for replica in replicas:
        done(run_replica(replica, conf))


def pool(replicas: Iterable[Replica], conf: Conf, done: Done, jobs: int) -> None:
    """A local process pool of `jobs` workers (started fresh, not forked: polars' threads do not
    survive a fork), at most 4 tasks a worker in flight."""
    context = multiprocessing.get_context("spawn")
    todo = iter(replicas)
    in_flight: dict[Future, Replica] = {}
    executor = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_worker_start)
    try:
        while True:
            while len(in_flight) < 4 * jobs:
                replica = next(todo, None)
                if replica is None:
                    break
                in_flight[executor.submit(run_replica, replica, conf)] = replica
            if not in_flight:
                break
            finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            broken = False
            for future in finished:
                replica = in_flight.pop(future)
                try:
                    done(future.result())
                except BrokenProcessPool:
                    broken = True
                    done(_lost(replica, "its worker process died (killed for memory, or a crash); the other replicas went on"))
            if broken:       # every task still in flight was lost with the pool: fail them, start a new one
                for replica in in_flight.values():
                    done(_lost(replica, "its worker process died while it ran; the other replicas went on"))
                in_flight.clear()
                executor.shutdown(wait=False, cancel_futures=True)
                executor = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_worker_start)
    except KeyboardInterrupt:      # Ctrl-C: the workers (which ignore it) are stopped, the caller reports what is done
        _stop(executor)
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _worker_start() -> None:
    """A pool worker leaves Ctrl-C to the driver, which stops the pool and reports what is done."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stop(executor: ProcessPoolExecutor) -> None:
    """Stop the workers now (the tasks they hold are lost; shutdown alone would wait for them)."""
    processes = list((getattr(executor, "_processes", None) or {}).values())    # shutdown forgets them
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(5)


def ray(replicas: Iterable[Replica], conf: Conf, done: Done, jobs: int, address: str | None) -> None:
    """On Ray: the cluster at `address` (`auto`, `ray://host:10001`), or a local one started here
    with `jobs` CPUs. Tasks read their replica's files where they lie; only rows come back."""
    try:
        import ray as ray_mod
    except ImportError:
        raise RuntimeError("--engine ray needs Ray: pip install 'emblens[ray]'") from None
    started = not ray_mod.is_initialized()
    if started:
        options = {"address": address} if address else {"num_cpus": jobs, "include_dashboard": False}
        ray_mod.init(logging_level="ERROR", log_to_driver=False, **options)
    task = ray_mod.remote(run_replica)
    conf_ref = ray_mod.put(conf)
    todo = iter(replicas)
    in_flight: dict = {}
    width = 4 * max(1, int(ray_mod.cluster_resources().get("CPU", jobs)))
    try:
        while True:
            while len(in_flight) < width:
                replica = next(todo, None)
                if replica is None:
                    break
                in_flight[task.remote(replica, conf_ref)] = replica
            if not in_flight:
                break
            ready, _ = ray_mod.wait(list(in_flight), num_returns=1)
            for ref in ready:
                replica = in_flight.pop(ref)
                try:
                    done(ray_mod.get(ref))
                except Exception as e:     # the task's worker died: Ray says so as an error of the result
                    done(_lost(replica, f"its Ray task failed ({type(e).__name__}); the other replicas went on"))
    finally:
        if started:
            ray_mod.shutdown()


def run(replicas: list[Replica], conf: Conf, done: Done, *, engine: str = "pool", jobs: int | None = None,
        address: str | None = None) -> None:
    jobs = jobs or default_jobs()
    if engine == "serial" or (engine == "pool" and (jobs == 1 or len(replicas) == 1)):
        serial(replicas, conf, done)
    elif engine == "pool":
        pool(replicas, conf, done, jobs)
    elif engine == "ray":
        ray(replicas, conf, done, jobs, address)
    else:
        raise ValueError(f"--engine {engine}: one of {', '.join(ENGINES)}")
