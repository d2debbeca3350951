"""Celery beside the cluster pool: the Python side of the cluster rows.

What Python users run when a Pool outgrows one machine: Celery with its Redis broker
and Redis result backend, a worker with ``--pool prefork -c 2`` (two processes, as
our two hosts of one process each), on a ``redis-server`` of its own (a Unix socket).

- ``cluster_map_100k``: ``square.chunks(zip(range(N)), N // 8).group()`` applied and
  collected (Celery has no ``map``; ``chunks`` is its batching, and eight chunks is
  what ``Pool.map``'s default chunk size gives for two workers). Figure: ms.
- ``cluster_apply_async_per_task``: ``identity.delay(i)`` N times, then every
  ``get()``. Figure: us per task.

The harness (bench/src/cluster.rs) runs this with the Python of a virtual
environment it made with pip, and parses one JSON object per line:
``{"name": NAME, "value": VALUE}``.

Usage: python celery_bench.py --socket PATH [--only NAMES] [--map-items N]
       [--tasks N] [--reps N]
"""

import json
import os
import statistics
import subprocess
import sys
import time
import traceback

from celery import Celery

SOCKET = os.environ.get("CELERY_BENCH_SOCKET", "/nonexistent.sock")
app = Celery(
    "celery_bench",
    broker=f"redis+socket://{SOCKET}",
    backend=f"redis+socket://{SOCKET}",
)
app.conf.update(
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    result_expires=600,
)


@app.task
def square(x):
    return x * x


@app.task
def identity(x):
    return x


def median_of(reps, f):
    return statistics.median(f() for _ in range(reps))


def map_100k(n, reps):
    chunk = max(1, -(-n // 8))

    def once():
        t = time.perf_counter()
        r = square.chunks(zip(range(n)), chunk).group().apply_async()
        parts = r.get(timeout=600)
        dt = time.perf_counter() - t
        flat = [x for p in parts for x in p]
        assert len(flat) == n and flat[-1] == (n - 1) * (n - 1)
        return dt * 1e3

    return median_of(reps, once)


def apply_async_per_task(n, reps):
    def once():
        t = time.perf_counter()
        rs = [identity.delay(i) for i in range(n)]
        out = [r.get(timeout=600) for r in rs]
        dt = time.perf_counter() - t
        assert out[-1] == n - 1
        return dt * 1e6 / n

    return median_of(reps, once)


def main(argv):
    global SOCKET
    opts = {"--only": "", "--map-items": "100000", "--tasks": "2000", "--reps": "3"}
    socket = None
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--socket":
            socket = args.pop(0)
        elif a in opts:
            opts[a] = args.pop(0)
        else:
            print(f"unknown argument {a!r}", file=sys.stderr)
            return 2
    if socket is None:
        print("--socket PATH is required", file=sys.stderr)
        return 2
    only = {s for s in opts["--only"].split(",") if s}
    reps = int(opts["--reps"])
    env = dict(os.environ, CELERY_BENCH_SOCKET=socket)
    here = os.path.dirname(os.path.abspath(__file__))
    # The worker imports this module with the socket from the environment.
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_bench", "worker",
         "--pool", "prefork", "-c", "2", "--loglevel", "WARNING", "--without-gossip",
         "--without-mingle", "--without-heartbeat"],
        cwd=here, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    status = 0
    try:
        SOCKET = socket
        app.conf.broker_url = f"redis+socket://{socket}"
        app.conf.result_backend = f"redis+socket://{socket}"
        deadline = time.time() + 60
        while not app.control.ping(timeout=0.5):
            if time.time() > deadline or worker.poll() is not None:
                raise RuntimeError("the Celery worker did not come up")
        identity.delay(0).get(timeout=60)  # warm-up
        work = [
            ("cluster_map_100k", lambda: map_100k(int(opts["--map-items"]), reps)),
            ("cluster_apply_async_per_task",
             lambda: apply_async_per_task(int(opts["--tasks"]), reps)),
        ]
        for name, f in work:
            if only and name not in only:
                continue
            try:
                value = f()
            except Exception:
                traceback.print_exc()
                value = None
                status = 1
            print(json.dumps({"name": name, "value": value}), flush=True)
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
