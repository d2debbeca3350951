#!/usr/bin/env python3
"""CPython baseline for the multiprocess benchmark (see /work/shared/BENCH.md).

Runs every workload of the benchmark contract with CPython's own
``multiprocessing`` (standard library only) and prints one JSON object per
workload, one per line:

    {"name": "NAME", "value": VALUE}

VALUE is a number in the unit of the contract's table (us, ms, ns, MB/s,
msg/s, ops/s, tasks/s); it is ``null`` if the workload failed (its traceback
goes to stderr and the exit status becomes 1).  Each figure is the median of
several repetitions.

Usage: python3 baseline.py [--only NAME[,NAME..]] [--quick]

Conventions shared with the Rust harness (keep in sync with bench/src/params.rs):

* MB means 10**6 bytes; message sizes are 1 KiB = 1024 B and 1 MiB = 1048576 B.
* Everything except the explicit start-method workloads uses the ``fork``
  context (the Linux default up to CPython 3.13), chosen explicitly so the
  baseline does not move when the default changes.
* Process start-up, pool/executor/manager creation and the first-use warm-up
  are excluded from timings unless the workload is process start itself.
* Multi-process rate workloads start their children first, line them up on a
  barrier, and time from the barrier (t0, in the parent) until the parent has
  heard "done" from every child that finishes the work.
"""

import concurrent.futures
import ctypes
import json
import os
import signal
import multiprocessing as mp
import statistics
import sys
import time
import traceback

CTX = mp.get_context("fork")

MB = 1_000_000
KIB = 1024
MIB = 1024 * 1024

# Sizes: (full, quick).  Mirrors bench/src/params.rs.
REPS = (5, 3)
START_FORK = (50, 20)
START_SPAWN = (10, 5)
START_FORKSERVER = (20, 10)
PIPE_ROUNDTRIPS = (2000, 500)
PIPE_MESSAGES_1MIB = (200, 50)
QUEUE_SMALL_MSGS = (100_000, 20_000)
QUEUE_1KIB_MSGS = (100_000, 20_000)
QUEUE_1MIB_MSGS = (200, 50)
QUEUE_4P4C_MSGS = (100_000, 20_000)  # total over the four producers
LOCK_PAIRS = (1_000_000, 200_000)
VALUE_INCRS_PER_PROC = (200_000, 50_000)
POOL_MAP_ITEMS = (1_000_000, 1_000_000)
APPLY_ASYNC_TASKS = (20_000, 20_000)
IMAP_ITEMS = (100_000, 100_000)
EXECUTOR_TASKS = (20_000, 5_000)
MANAGER_DICT_KEYS = (10_000, 2_000)
MANAGER_QUEUE_OPS = (10_000, 2_000)
SHM_BYTES = (64 * MIB, 64 * MIB)
DISPATCH_TASKS = (100_000, 20_000)
F64_PER_MIB = MIB // 8
LOAD_PROCS = 2
LOAD_ROUNDS = (9, 3)
LOAD_BOUND_SECS = 300

QUICK = False


def size(pair):
    """Pick the full or quick size of a (full, quick) pair."""
    return pair[1] if QUICK else pair[0]


def median_of(f):
    """Median of `size(REPS)` calls of `f` (each returns one figure)."""
    return statistics.median(f() for _ in range(size(REPS)))


# --------------------------------------------------------------------------
# Child targets (module level so that spawn and forkserver can import them).


def empty():
    """The empty function of the process start+join workloads."""


def identity(x):
    return x


def square(x):
    return x * x


def pipe_echo(conn):
    """Echo x+1 for every integer received; stop on None."""
    while True:
        x = conn.recv()
        if x is None:
            break
        conn.send(x + 1)
    conn.close()


def pipe_sink(conn, n):
    """Receive `n` byte messages per round; acknowledge each round; stop on b''."""
    conn.send("ready")
    while True:
        got = 0
        for _ in range(n):
            got += len(conn.recv_bytes())
        conn.send(got)
        if conn.recv() is None:
            break
    conn.close()


def queue_producer(barrier, q, item, n):
    barrier.wait()
    for _ in range(n):
        q.put(item)
    q.put(None)


def queue_producer_ints(barrier, q, n):
    barrier.wait()
    for i in range(n):
        q.put(i)
    q.put(None)


def queue_consumer(barrier, q, done):
    """Get until one None arrives; report the number of bytes/messages got."""
    barrier.wait()
    count = 0
    nbytes = 0
    get = q.get
    while True:
        x = get()
        if x is None:
            break
        count += 1
        if isinstance(x, bytes):
            nbytes += len(x)
    done.put((count, nbytes))


def value_incrementer(barrier, v, n, done):
    barrier.wait()
    lock = v.get_lock()
    for _ in range(n):
        with lock:
            v.value += 1
    done.put(n)


def noop(_):
    """The task of pool_dispatch_capacity: returns at once."""


def cpu_spinner(deadline):
    """A CPU-bound load process of the _loaded rows; bounded by `deadline`."""
    parent = os.getppid()
    x = 1
    while True:
        for _ in range(100_000):
            x = (x * 6364136223846793005 + 1) & 0xFFFFFFFFFFFFFFFF
        if time.monotonic() > deadline or os.getppid() != parent:
            return


def with_load(f):
    """Median of f() over LOAD_ROUNDS rounds, each while LOAD_PROCS CPU-bound
    processes of its own spin (killed and reaped after it): as the Rust side."""
    figures = []
    for _ in range(size(LOAD_ROUNDS)):
        deadline = time.monotonic() + LOAD_BOUND_SECS
        procs = [CTX.Process(target=cpu_spinner, args=(deadline,)) for _ in range(LOAD_PROCS)]
        for p in procs:
            p.start()
        try:
            figures.append(f())
        finally:
            for p in procs:
                os.kill(p.pid, signal.SIGKILL)
            for p in procs:
                p.join()
    return statistics.median(figures)


def shm_filler(conn, arr, nbytes):
    """On each byte value received, memset the shared array with it; stop on None."""
    addr = ctypes.addressof(arr)
    while True:
        v = conn.recv()
        if v is None:
            break
        ctypes.memset(addr, v, nbytes)
        conn.send(True)
    conn.close()


# --------------------------------------------------------------------------
# Helpers.


def timed_children(specs, n_done):
    """Start children, release them together, time until `n_done` reports.

    `specs` is a list of (target, args, wants_done): every child gets the
    start barrier as its first argument, then `args`, then, if `wants_done`,
    the queue on which it reports when its work is done.  Returns
    (seconds from release to the `n_done`-th report, the reports).
    """
    barrier = CTX.Barrier(len(specs) + 1)
    done = CTX.SimpleQueue()
    procs = []
    for target, args, wants_done in specs:
        full = (barrier,) + tuple(args) + ((done,) if wants_done else ())
        p = CTX.Process(target=target, args=full)
        p.start()
        procs.append(p)
    barrier.wait()
    t0 = time.perf_counter()
    reports = [done.get() for _ in range(n_done)]
    t1 = time.perf_counter()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"child exited with {p.exitcode}")
    return t1 - t0, reports


# --------------------------------------------------------------------------
# Workloads.  Each returns the median figure in the unit of BENCH.md.


def start_join(method, pair):
    """us per start+join of a process running an empty function."""
    ctx = mp.get_context(method)
    n = size(pair)
    # Warm-up: starts the fork server, fills the page cache for spawn.
    p = ctx.Process(target=empty)
    p.start()
    p.join()

    def once():
        t0 = time.perf_counter()
        for _ in range(n):
            p = ctx.Process(target=empty)
            p.start()
            p.join()
        return (time.perf_counter() - t0) / n * 1e6

    return median_of(once)


def process_start_join_fork():
    return start_join("fork", START_FORK)


def process_start_join_spawn():
    return start_join("spawn", START_SPAWN)


def process_start_join_forkserver():
    return start_join("forkserver", START_FORKSERVER)


def pipe_roundtrip_small():
    """us per round trip: parent sends i, child answers i+1."""
    n = size(PIPE_ROUNDTRIPS)
    a, b = CTX.Pipe()
    p = CTX.Process(target=pipe_echo, args=(b,))
    p.start()
    b.close()
    a.send(0)
    a.recv()  # child is up

    def once():
        send, recv = a.send, a.recv
        t0 = time.perf_counter()
        for i in range(n):
            send(i)
            if recv() != i + 1:
                raise RuntimeError("bad echo")
        return (time.perf_counter() - t0) / n * 1e6

    try:
        return median_of(once)
    finally:
        a.send(None)
        p.join()


def pipe_throughput_1MiB():
    """MB/s: parent send_bytes of 1 MiB messages, child recv_bytes."""
    n = size(PIPE_MESSAGES_1MIB)
    msg = b"\x5a" * MIB
    a, b = CTX.Pipe()
    p = CTX.Process(target=pipe_sink, args=(b, n))
    p.start()
    b.close()
    assert a.recv() == "ready"
    reps = size(REPS)
    results = []
    for r in range(reps):
        t0 = time.perf_counter()
        for _ in range(n):
            a.send_bytes(msg)
        got = a.recv()
        dt = time.perf_counter() - t0
        if got != n * MIB:
            raise RuntimeError("short read")
        results.append(n * MIB / dt / MB)
        a.send(True if r + 1 < reps else None)
    p.join()
    return statistics.median(results)


def pipe_throughput_1MiB_vec():
    """MB/s, as pipe_throughput_1MiB: Python's Vec<u8> is bytes, sent with send_bytes."""
    return pipe_throughput_1MiB()


def queue_1p1c(item, n):
    """(seconds, reports) for one producer putting `item` n times, one consumer."""
    q = CTX.Queue()
    specs = [
        (queue_producer, (q, item, n), False),
        (queue_consumer, (q,), True),
    ]
    dt, reports = timed_children(specs, 1)
    if reports[0][0] != n:
        raise RuntimeError("lost messages")
    return dt


def queue_1p1c_small():
    """msg/s, one producer of small integers, one consumer."""
    n = size(QUEUE_SMALL_MSGS)

    def once():
        q = CTX.Queue()
        specs = [
            (queue_producer_ints, (q, n), False),
            (queue_consumer, (q,), True),
        ]
        dt, reports = timed_children(specs, 1)
        if reports[0][0] != n:
            raise RuntimeError("lost messages")
        return n / dt

    return median_of(once)


def queue_1p1c_1KiB():
    """msg/s, 1 KiB byte strings."""
    n = size(QUEUE_1KIB_MSGS)
    item = b"\x5a" * KIB
    return median_of(lambda: n / queue_1p1c(item, n))


def queue_1p1c_1MiB():
    """MB/s, 1 MiB byte strings."""
    n = size(QUEUE_1MIB_MSGS)
    item = b"\x5a" * MIB
    return median_of(lambda: n * MIB / queue_1p1c(item, n) / MB)


def queue_1p1c_1MiB_vec():
    """MB/s, 1 MiB byte strings: Python's typed equivalent of Vec<u8> is bytes."""
    return queue_1p1c_1MiB()


def queue_1p1c_1MiB_f64():
    """MB/s, lists of 131,072 floats (1 MiB as f64), Python's Vec<f64>."""
    n = size(QUEUE_1MIB_MSGS)
    item = [1.5] * F64_PER_MIB
    return median_of(lambda: n * MIB / queue_1p1c(item, n) / MB)


def queue_4p4c_small():
    """msg/s over all, four producers of small integers, four consumers."""
    total = size(QUEUE_4P4C_MSGS)
    per = total // 4

    def once():
        q = CTX.Queue()
        specs = [(queue_producer_ints, (q, per), False) for _ in range(4)]
        specs += [(queue_consumer, (q,), True) for _ in range(4)]
        dt, reports = timed_children(specs, 4)
        if sum(c for c, _ in reports) != 4 * per:
            raise RuntimeError("lost messages")
        return 4 * per / dt

    return median_of(once)


def lock_uncontended_pair():
    """ns per acquire+release of a multiprocessing.Lock, one process."""
    n = size(LOCK_PAIRS)
    lock = CTX.Lock()
    acquire, release = lock.acquire, lock.release

    def once():
        t0 = time.perf_counter()
        for _ in range(n):
            acquire()
            release()
        return (time.perf_counter() - t0) / n * 1e9

    return median_of(once)


def value_locked_incr_2proc():
    """ops/s in total: two processes each increment a Value('i') n times."""
    n = size(VALUE_INCRS_PER_PROC)

    def once():
        v = CTX.Value("i", 0)
        specs = [(value_incrementer, (v, n), True) for _ in range(2)]
        dt, _ = timed_children(specs, 2)
        if v.value != 2 * n:
            raise RuntimeError(f"lost increments: {v.value}")
        return 2 * n / dt

    return median_of(once)


def with_pool(f):
    """Run f(pool) under a warmed-up Pool(2) (creation excluded)."""
    with CTX.Pool(2) as pool:
        pool.map(identity, range(8))
        return f(pool)


def pool_map_1M_square():
    """ms for Pool(2).map(square, range(1_000_000)), default chunksize."""
    n = size(POOL_MAP_ITEMS)

    def run(pool):
        def once():
            t0 = time.perf_counter()
            out = pool.map(square, range(n))
            dt = time.perf_counter() - t0
            if out[-1] != (n - 1) * (n - 1):
                raise RuntimeError("bad result")
            return dt * 1e3

        return median_of(once)

    return with_pool(run)


def pool_apply_async_per_task():
    """us per task: 20,000 apply_async(identity, (i,)) then get them all."""
    n = size(APPLY_ASYNC_TASKS)

    def run(pool):
        def once():
            t0 = time.perf_counter()
            rs = [pool.apply_async(identity, (i,)) for i in range(n)]
            out = [r.get() for r in rs]
            dt = time.perf_counter() - t0
            if out[-1] != n - 1:
                raise RuntimeError("bad result")
            return dt / n * 1e6

        return median_of(once)

    return with_pool(run)


def drain_imap_unordered(pool, f, n, **kwargs):
    """Seconds to drain pool.imap_unordered(f, range(n), **kwargs)."""
    t0 = time.perf_counter()
    count = 0
    for _ in pool.imap_unordered(f, range(n), **kwargs):
        count += 1
    dt = time.perf_counter() - t0
    if count != n:
        raise RuntimeError("lost results")
    return dt


def pool_imap_unordered_100k():
    """ms to drain pool.imap_unordered(square, range(100_000)), default chunksize (1)."""
    n = size(IMAP_ITEMS)
    return with_pool(lambda pool: median_of(lambda: drain_imap_unordered(pool, square, n) * 1e3))


def executor_submit_per_task():
    """us per task: ProcessPoolExecutor(2), submit(identity, i) n times, then result()."""
    n = size(EXECUTOR_TASKS)
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=CTX) as ex:
        list(ex.map(identity, range(8)))  # warm-up: workers up

        def once():
            t0 = time.perf_counter()
            fs = [ex.submit(identity, i) for i in range(n)]
            out = [f.result() for f in fs]
            dt = time.perf_counter() - t0
            if out[-1] != n - 1:
                raise RuntimeError("bad result")
            return dt / n * 1e6

        return median_of(once)


def manager_dict_op():
    """us per op, where one op = one set plus one get (d[k] = k ... then d[k])."""
    n = size(MANAGER_DICT_KEYS)
    with CTX.Manager() as m:
        d = m.dict()

        def once():
            t0 = time.perf_counter()
            for k in range(n):
                d[k] = k
            for k in range(n):
                if d[k] != k:
                    raise RuntimeError("bad value")
            return (time.perf_counter() - t0) / n * 1e6

        return median_of(once)


def pipe_roundtrip_small_loaded():
    return with_load(pipe_roundtrip_small)


def queue_1p1c_small_loaded():
    return with_load(queue_1p1c_small)


def manager_dict_op_loaded():
    return with_load(manager_dict_op)


def pool_dispatch_capacity():
    """tasks/s: Pool(2).imap_unordered(noop, range(n), chunksize=1), drained."""
    n = size(DISPATCH_TASKS)
    return with_pool(
        lambda pool: median_of(lambda: n / drain_imap_unordered(pool, noop, n, chunksize=1))
    )


def manager_queue_op():
    """us per op, where one op = one put plus one get on a manager Queue."""
    n = size(MANAGER_QUEUE_OPS)
    with CTX.Manager() as m:
        q = m.Queue()

        def once():
            t0 = time.perf_counter()
            for i in range(n):
                q.put(i)
                if q.get() != i:
                    raise RuntimeError("bad value")
            return (time.perf_counter() - t0) / n * 1e6

        return median_of(once)


def shm_array_write_64MiB():
    """MB/s: a child fills a 64 MiB shared byte array, the parent sums it.

    The child is started once (start-up excluded) and fills on command; a
    repetition is timed from the command to the end of the parent's sum.  The
    parent sums the array as native 64-bit words (the fastest pure-stdlib
    sum); the Rust side sums the same array.
    """
    nbytes = size(SHM_BYTES)
    arr = CTX.Array(ctypes.c_ubyte, nbytes, lock=False)
    words = memoryview(arr).cast("B").cast("Q")
    a, b = CTX.Pipe()
    p = CTX.Process(target=shm_filler, args=(b, arr, nbytes))
    p.start()
    b.close()
    reps = size(REPS)
    results = []
    try:
        for r in range(reps):
            v = 1 + r % 255
            t0 = time.perf_counter()
            a.send(v)
            a.recv()
            total = sum(words)
            dt = time.perf_counter() - t0
            if total != (nbytes // 8) * (v * 0x0101010101010101):
                raise RuntimeError("bad sum")
            results.append(nbytes / dt / MB)
    finally:
        a.send(None)
        p.join()
        words.release()
    return statistics.median(results)


# Order and names exactly as in BENCH.md's table.
WORKLOADS = [
    ("process_start_join_fork", process_start_join_fork),
    ("process_start_join_spawn", process_start_join_spawn),
    ("process_start_join_forkserver", process_start_join_forkserver),
    ("pipe_roundtrip_small", pipe_roundtrip_small),
    ("pipe_throughput_1MiB", pipe_throughput_1MiB),
    ("queue_1p1c_small", queue_1p1c_small),
    ("queue_1p1c_1KiB", queue_1p1c_1KiB),
    ("queue_1p1c_1MiB", queue_1p1c_1MiB),
    ("queue_4p4c_small", queue_4p4c_small),
    ("lock_uncontended_pair", lock_uncontended_pair),
    ("value_locked_incr_2proc", value_locked_incr_2proc),
    ("pool_map_1M_square", pool_map_1M_square),
    ("pool_apply_async_per_task", pool_apply_async_per_task),
    ("pool_imap_unordered_100k", pool_imap_unordered_100k),
    ("executor_submit_per_task", executor_submit_per_task),
    ("manager_dict_op", manager_dict_op),
    ("manager_queue_op", manager_queue_op),
    ("shm_array_write_64MiB", shm_array_write_64MiB),
    ("queue_1p1c_1MiB_vec", queue_1p1c_1MiB_vec),
    ("pipe_throughput_1MiB_vec", pipe_throughput_1MiB_vec),
    ("queue_1p1c_1MiB_f64", queue_1p1c_1MiB_f64),
    ("pipe_roundtrip_small_loaded", pipe_roundtrip_small_loaded),
    ("queue_1p1c_small_loaded", queue_1p1c_small_loaded),
    ("manager_dict_op_loaded", manager_dict_op_loaded),
    ("pool_dispatch_capacity", pool_dispatch_capacity),
]


def main(argv):
    global QUICK
    names = [n for n, _ in WORKLOADS]
    only = None
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--quick":
            QUICK = True
        elif arg == "--only" or arg.startswith("--only="):
            value = arg.split("=", 1)[1] if "=" in arg else (args.pop(0) if args else "")
            only = (only or set()) | {s for s in value.split(",") if s}
        elif arg in ("-h", "--help"):
            print(__doc__)
            return 0
        else:
            print(f"unknown argument {arg!r}", file=sys.stderr)
            return 2
    if only is not None:
        unknown = sorted(only - set(names))
        if unknown:
            print(f"unknown workload(s): {', '.join(unknown)}", file=sys.stderr)
            print(f"valid: {', '.join(names)}", file=sys.stderr)
            return 2
    status = 0
    for name, f in WORKLOADS:
        if only is not None and name not in only:
            continue
        try:
            value = f()
        except Exception:
            traceback.print_exc()
            value = None
            status = 1
        print(json.dumps({"name": name, "value": value}), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
