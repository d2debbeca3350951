#!/usr/bin/env python3
"""redis-py side of the Redis object rows of the multiprocess benchmark (BENCH.md).

What a Python user who moved shared state into Redis runs: redis-py on the same
``redis-server`` as the Rust side, values pickled. Prints one JSON object per
workload and line, ``{"name": NAME, "value": VALUE}`` (microseconds per op, the
median of several repetitions; ``null`` if the workload failed).

Usage: python redis_py_bench.py --socket PATH [--only NAME[,NAME..]] [--quick]

The harness (bench/src/redis_objects.rs) runs it with the interpreter of a venv it
makes (``python3 -m venv`` + ``pip install redis``) and a redis-server it starts.

Sizes (keep in sync with bench/src/params.rs): 10,000 keys / pairs per repetition,
2,000 with --quick; 5 repetitions, 3 with --quick.

* ``redis_dict_op``: ``HSET`` then ``HGET`` of every key (one op = one set plus one
  get), as ``manager_dict_op``.
* ``redis_lock_pair``: ``Lock.acquire()`` + ``Lock.release()`` of redis-py's lock
  (``SET NX PX`` and a compare-and-delete script, as ours).
* ``redis_queue_op``: ``RPUSH`` then ``LMOVE`` to a processing list (the reliable
  queue pattern), one op being one put plus one get.
"""

import json
import pickle
import statistics
import sys
import time
import traceback

import redis

QUICK = False


def size(full, quick):
    return quick if QUICK else full


def median_of(f):
    return statistics.median(f() for _ in range(size(5, 3)))


def redis_dict_op(r):
    n = size(10_000, 2_000)
    r.delete("bench:d")
    r.hset("bench:d", pickle.dumps(0), pickle.dumps(0))

    def once():
        t = time.perf_counter()
        for k in range(n):
            r.hset("bench:d", pickle.dumps(k), pickle.dumps(k))
        for k in range(n):
            assert pickle.loads(r.hget("bench:d", pickle.dumps(k))) == k
        return (time.perf_counter() - t) * 1e6 / n

    return median_of(once)


def redis_lock_pair(r):
    n = size(10_000, 2_000)
    lock = r.lock("bench:lock", timeout=10)
    lock.acquire()
    lock.release()

    def once():
        t = time.perf_counter()
        for _ in range(n):
            lock.acquire()
            lock.release()
        return (time.perf_counter() - t) * 1e6 / n

    return median_of(once)


def redis_queue_op(r):
    n = size(10_000, 2_000)
    r.delete("bench:q", "bench:p")

    def once():
        t = time.perf_counter()
        for i in range(n):
            r.rpush("bench:q", pickle.dumps(i))
            assert pickle.loads(r.lmove("bench:q", "bench:p", "LEFT", "RIGHT")) == i
        dt = time.perf_counter() - t
        r.delete("bench:p")
        return dt * 1e6 / n

    return median_of(once)


WORKLOADS = [
    ("redis_dict_op", redis_dict_op),
    ("redis_lock_pair", redis_lock_pair),
    ("redis_queue_op", redis_queue_op),
]


def main(argv):
    global QUICK
    only, socket = None, None
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--quick":
            QUICK = True
        elif arg == "--only":
            only = {s for s in (args.pop(0) if args else "").split(",") if s}
        elif arg == "--socket":
            socket = args.pop(0) if args else None
        else:
            print(f"unknown argument {arg!r}", file=sys.stderr)
            return 2
    if socket is None:
        print("--socket PATH is required", file=sys.stderr)
        return 2
    r = redis.Redis(unix_socket_path=socket)
    status = 0
    for name, f in WORKLOADS:
        if only is not None and name not in only:
            continue
        try:
            value = f(r)
        except Exception:
            traceback.print_exc()
            value = None
            status = 1
        print(json.dumps({"name": name, "value": value}), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
