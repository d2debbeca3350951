//! Lock, rlock, semaphore, event, condition and barrier in Redis.
//!
//! # Locks: leases, dead owners, fencing
//!
//! A lock is the key `lk` set with `SET lk <token> NX PX <lease>` (inside the acquire
//! script), `<token>` being random for a `Lock` and `<process>:<thread>` for an
//! `RLock` or a condition's lock (its re-entrant count in `rc`). The keeper thread of
//! the holding process renews the lease every third of a lease while the value is
//! still its token; release is a compare-and-delete script. So a holder that dies
//! (`SIGKILL`, a host lost) frees the lock one lease later, and a holder that is
//! stopped past its lease (`SIGSTOP`, a long GC-like pause, a partition) loses it.
//!
//! Each acquire runs in one script that also
//! - tells whether the previous holder's lease ran out without a release: the key
//!   `hold` is set on acquire and deleted on release, so finding it on a fresh acquire
//!   means the holder died or was paused past its lease
//!   ([`LockProxy::owner_died`](crate::LockProxy::owner_died));
//! - takes a fencing token, `INCR fence`: strictly larger on every acquire
//!   ([`LockProxy::fencing_token`](crate::LockProxy::fencing_token)).
//!
//! A lease alone cannot make a lock safe: a holder paused past its lease wakes up
//! believing it still holds the lock while another process holds it too. The
//! resource the lock guards must check the fencing token: it remembers the largest
//! token it has seen and refuses a write carrying a smaller one (Kleppmann, "How to do
//! distributed locking", 2016). Releasing after the lease ran out reports
//! [`ErrorKind::InvalidState`] and frees nothing of the new holder's.
//!
//! A `Lock` may be released by a process that does not hold it (as Python allows); that
//! deletes the lease whoever holds it. An `RLock` and a condition are released only
//! by their owning thread.
//!
//! # Semaphore: a lease per permit
//!
//! `sv` counts free permits; each permit taken is a member of the sorted set `hs`
//! scored by its expiry, renewed by the holder's keeper. Every acquire, release and
//! `get_value` first returns the permits whose lease ran out, so a dead holder's
//! permits come back (unlike the local semaphore). A release by a process that holds
//! no permit (Python allows it) retires the oldest lease if there is one, else adds a
//! permit; a bounded semaphore refuses to go above its initial value. Each call is one
//! script.
//!
//! # Event, condition, barrier
//!
//! An event is the key `e`; `set` pushes wake tokens. A condition is an rlock plus a
//! list of waiting tickets `cw`: `wait` releases the lock fully and appends its ticket
//! in one script, then blocks on its own list `cn:<ticket>`; `notify(n)` moves `n`
//! tickets to their lists; the woken waiter takes the lock back at its former depth.
//! A barrier is a hash (`count`, `gen`, `broken`): the party that completes a
//! generation advances it and wakes the others; a party that times out breaks it, as
//! Python's. Each step is one script; waits are bounded slices (see the parent module).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use ::redis::Script;

use super::{
    Cx, LeaseKind, Nap, Ref, SLICE, add_lease, drop_lease, nap, script, thread_owner, token,
};
use crate::error::{Error, ErrorKind, Result};
use crate::manager::kinds::{barrier, condition, event, lock, semaphore};
use crate::manager::protocol::{Kind, Reply, Wait};

// ------------------------------------------------------------- local state

/// What this process knows of its holds on one lock, per owner (`""` for a `Lock`,
/// the thread's owner id for an `RLock` or a condition).
#[derive(Default, Clone)]
struct Info {
    token: Option<String>,
    fence: u64,
    died: bool,
}

type Infos = HashMap<(String, String, String), Info>;

static INFOS: Mutex<Option<(u32, Infos)>> = Mutex::new(None);

fn infos<T>(f: impl FnOnce(&mut Infos) -> T) -> T {
    let mut g = INFOS.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    if g.as_ref().is_none_or(|(p, _)| *p != pid) {
        *g = Some((pid, HashMap::new()));
    }
    f(&mut g.as_mut().expect("just set").1)
}

fn info_key(r: &Ref, owner: &str) -> (String, String, String) {
    (r.url.clone(), r.base.clone(), owner.to_string())
}

/// The owner key a kind's holds are kept under.
fn owner_of(kind: Kind) -> String {
    match kind {
        Kind::Lock => String::new(),
        _ => thread_owner(),
    }
}

pub(super) fn info(r: &Ref) -> (Option<u64>, bool) {
    let k = info_key(r, &owner_of(r.kind));
    infos(|m| match m.get(&k) {
        Some(i) => (i.token.as_ref().map(|_| i.fence), i.died),
        None => (None, false),
    })
}

// ------------------------------------------------------------- lock and rlock

/// `ARGV`: base, owner token, lease ms, ttl, re-entrant. Replies `{1, fence, died,
/// fresh}` or `{0, pttl, 0, 0}`.
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local base = ARGV[1]
local lk, rc, hold, fence = base .. ':lk', base .. ':rc', base .. ':hold', base .. ':fence'
local cur = redis.call('GET', lk)
if cur == ARGV[2] and ARGV[5] == '1' then
  redis.call('INCR', rc)
  redis.call('PEXPIRE', lk, ARGV[3])
  return {1, tonumber(redis.call('GET', fence) or '0'), 0, 0}
end
if not cur then
  redis.call('SET', lk, ARGV[2], 'PX', ARGV[3])
  redis.call('SET', rc, 1)
  local died = redis.call('EXISTS', hold)
  redis.call('SET', hold, ARGV[2])
  local f = redis.call('INCR', fence)
  touch(ARGV[4], rc, hold, fence)
  return {1, f, died, 1}
end
return {0, redis.call('PTTL', lk), 0, 0}
"#,
    )
});

/// `ARGV`: base, owner token, force, re-entrant. Replies the depth left (0: free),
/// -1 (not locked) or -2 (held by another).
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local base = ARGV[1]
local lk, rc, hold = base .. ':lk', base .. ':rc', base .. ':hold'
local cur = redis.call('GET', lk)
if not cur then return -1 end
if cur ~= ARGV[2] then
  if ARGV[3] ~= '1' then return -2 end
elseif ARGV[4] == '1' then
  local n = redis.call('DECR', rc)
  if n > 0 then return n end
end
redis.call('DEL', lk, rc, hold)
wake(base .. ':wk', 1)
return 0
"#,
    )
});

/// Acquires the lock of `cx` for `owner_key`'s holds with `tok` as the lease's value.
fn acquire_as(cx: &Cx<'_>, w: Wait, tok: &str, owner_key: &str, reentrant: bool) -> Result<bool> {
    let r = cx.r;
    let deadline = w.deadline();
    let wk = r.key("wk");
    loop {
        let (ok, x, died, fresh): (i64, i64, i64, i64) = cx.run("acquiring", |c| {
            ACQUIRE
                .key(r.meta())
                .arg(&r.base)
                .arg(tok)
                .arg(r.lease_ms)
                .arg(r.ttl())
                .arg(u8::from(reentrant))
                .invoke(c)
        })?;
        if ok == 1 {
            if fresh == 1 {
                add_lease(&r.url, &r.key("lk"), tok, LeaseKind::Key, r.lease_ms);
                infos(|m| {
                    m.insert(
                        info_key(r, owner_key),
                        Info {
                            token: Some(tok.to_string()),
                            fence: x as u64,
                            died: died == 1,
                        },
                    )
                });
            }
            return Ok(true);
        }
        // Held: wait for a release, or until the holder's lease may have run out.
        let cap = if x > 0 {
            Duration::from_millis(x as u64 + 2)
        } else {
            SLICE
        };
        if nap(cx, &wk, deadline, cap)? == Nap::Late {
            return Ok(false);
        }
    }
}

fn lease_lost(r: &Ref) -> Error {
    Error::new(
        ErrorKind::InvalidState,
        format!(
            "the lease on {} ran out before this release (the holder was stopped or cut \
             off for longer than the lease); another process may have held it since: \
             check fencing tokens",
            r.base
        ),
    )
}

/// Releases for `owner_key` with `tok`; `force` releases another holder's lease too.
fn release_as(
    cx: &Cx<'_>,
    tok: &str,
    owner_key: &str,
    force: bool,
    reentrant: bool,
) -> Result<i64> {
    let r = cx.r;
    let n: i64 = cx.run("releasing", |c| {
        RELEASE
            .key(r.meta())
            .arg(&r.base)
            .arg(tok)
            .arg(u8::from(force))
            .arg(u8::from(reentrant))
            .invoke(c)
    })?;
    if n <= 0 {
        // Ours no more, one way or another.
        drop_lease(&r.url, &r.key("lk"), tok);
        infos(|m| {
            if let Some(i) = m.get_mut(&info_key(r, owner_key))
                && i.token.as_deref() == Some(tok)
            {
                i.token = None;
            }
        });
    }
    Ok(n)
}

pub(super) fn lock(cx: &Cx<'_>, op: lock::Op) -> Result<Reply> {
    let r = cx.r;
    Ok(match op {
        lock::Op::Acquire(w) => Reply::Bool(acquire_as(cx, w, &token()?, "", false)?),
        lock::Op::Release => {
            let mine = infos(|m| m.get(&info_key(r, "")).and_then(|i| i.token.clone()));
            match mine {
                Some(t) => match release_as(cx, &t, "", false, false)? {
                    0 => Reply::Unit,
                    _ => return Err(lease_lost(r)),
                },
                None => match release_as(cx, "", "", true, false)? {
                    -1 => return Err(unlocked("lock")),
                    _ => Reply::Unit,
                },
            }
        }
    })
}

/// A plain lock released while nobody holds it (the local `Lock`'s kind).
fn unlocked(what: &str) -> Error {
    Error::new(
        ErrorKind::InvalidState,
        format!("cannot release an un-acquired {what}"),
    )
}

/// An `RLock` or a condition released by a thread that does not own it: the local
/// types' and the server manager's kind (Python's `RuntimeError`).
fn not_owner(what: &str) -> Error {
    Error::new(
        ErrorKind::NotPermitted,
        format!("cannot release an un-acquired {what}"),
    )
}

pub(super) fn rlock(cx: &Cx<'_>, op: lock::Op) -> Result<Reply> {
    let me = thread_owner();
    Ok(match op {
        lock::Op::Acquire(w) => Reply::Bool(acquire_as(cx, w, &me, &me, true)?),
        lock::Op::Release => match release_as(cx, &me, &me, false, true)? {
            n if n >= 0 => Reply::Unit,
            _ => return Err(not_owner("rlock")),
        },
    })
}

// ------------------------------------------------------------- semaphore

const RECLAIM: &str = r#"
local base = ARGV[1]
local sv, hs = base .. ':sv', base .. ':hs'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local gone = redis.call('ZREMRANGEBYSCORE', hs, '-inf', now)
if gone > 0 then redis.call('INCRBY', sv, gone) end
local v = tonumber(redis.call('GET', sv) or '0')
"#;

/// `ARGV`: base, token, lease ms, ttl.
static SEM_ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    script(&format!(
        r#"{RECLAIM}
if v > 0 then
  redis.call('DECR', sv)
  redis.call('ZADD', hs, now + tonumber(ARGV[3]), ARGV[2])
  touch(ARGV[4], sv, hs)
  return 1
end
return 0
"#
    ))
});

/// `ARGV`: base, token (or empty), ttl. Replies 1, or -1 above a bound.
static SEM_RELEASE: LazyLock<Script> = LazyLock::new(|| {
    script(&format!(
        r#"{RECLAIM}
local removed = 0
if ARGV[2] ~= '' then removed = redis.call('ZREM', hs, ARGV[2]) end
if removed == 0 then
  local o = redis.call('ZRANGE', hs, 0, 0)
  if #o > 0 then
    redis.call('ZREM', hs, o[1])
    removed = 1
  end
end
local bound = tonumber(redis.call('HGET', base .. ':m', 'bound') or '0')
if removed == 0 and bound > 0 and v >= bound then return -1 end
redis.call('INCR', sv)
touch(ARGV[3], sv)
wake(base .. ':wk', 1)
return 1
"#
    ))
});

static SEM_VALUE: LazyLock<Script> = LazyLock::new(|| script(&format!("{RECLAIM}\nreturn v")));

/// The permits this process holds, per semaphore.
type Permits = HashMap<(String, String), Vec<String>>;

static PERMITS: Mutex<Option<(u32, Permits)>> = Mutex::new(None);

fn permits<T>(f: impl FnOnce(&mut Permits) -> T) -> T {
    let mut g = PERMITS.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    if g.as_ref().is_none_or(|(p, _)| *p != pid) {
        *g = Some((pid, HashMap::new()));
    }
    f(&mut g.as_mut().expect("just set").1)
}

pub(super) fn semaphore(cx: &Cx<'_>, op: semaphore::Op) -> Result<Reply> {
    let r = cx.r;
    let hs = r.key("hs");
    let slot = (r.url.clone(), r.base.clone());
    Ok(match op {
        semaphore::Op::Acquire(w) => {
            let deadline = w.deadline();
            let tok = token()?;
            loop {
                let ok: i64 = cx.run("acquiring a permit", |c| {
                    SEM_ACQUIRE
                        .key(r.meta())
                        .arg(&r.base)
                        .arg(&tok)
                        .arg(r.lease_ms)
                        .arg(r.ttl())
                        .invoke(c)
                })?;
                if ok == 1 {
                    add_lease(&r.url, &hs, &tok, LeaseKind::Member, r.lease_ms);
                    permits(|m| m.entry(slot).or_default().push(tok));
                    break Reply::Bool(true);
                }
                if nap(cx, &r.key("wk"), deadline, SLICE)? == Nap::Late {
                    break Reply::Bool(false);
                }
            }
        }
        semaphore::Op::Release => {
            let tok = permits(|m| m.get_mut(&slot).and_then(Vec::pop)).unwrap_or_default();
            if !tok.is_empty() {
                drop_lease(&r.url, &hs, &tok);
            }
            let n: i64 = cx.run("releasing a permit", |c| {
                SEM_RELEASE
                    .key(r.meta())
                    .arg(&r.base)
                    .arg(&tok)
                    .arg(r.ttl())
                    .invoke(c)
            })?;
            if n < 0 {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    "bounded semaphore released too many times",
                ));
            }
            Reply::Unit
        }
        semaphore::Op::GetValue => {
            let v: u64 = cx.run("semaphore value", |c| {
                SEM_VALUE.key(r.meta()).arg(&r.base).invoke(c)
            })?;
            Reply::U64(v)
        }
    })
}

// ------------------------------------------------------------- event

static EVENT_SET: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
redis.call('SET', KEYS[1], 1)
redis.call('INCR', KEYS[3])
touch(ARGV[1], KEYS[1], KEYS[3])
wake(KEYS[2], 64)
return 1
"#,
    )
});

pub(super) fn event(cx: &Cx<'_>, op: event::Op) -> Result<Reply> {
    let r = cx.r;
    let e = r.key("e");
    // How many times it was set: a waiter woken by a `set` returns `true` even if a
    // `clear` came before it looked (Python's manager `Event.wait`), as in the server
    // manager.
    let sets = r.key("es");
    let look = || -> Result<(bool, u64)> {
        let (flag, n): (Option<i64>, Option<u64>) = cx.run("event state", |c| {
            ::redis::cmd("MGET").arg(&e).arg(&sets).query(c)
        })?;
        Ok((flag.is_some(), n.unwrap_or(0)))
    };
    Ok(match op {
        event::Op::Set => {
            cx.run("event set", |c| {
                EVENT_SET
                    .key(&e)
                    .key(r.key("ew"))
                    .key(&sets)
                    .arg(r.ttl())
                    .invoke::<i64>(c)
            })?;
            Reply::Unit
        }
        event::Op::Clear => {
            cx.run("event clear", |c| {
                ::redis::cmd("DEL").arg(&e).query::<i64>(c)
            })?;
            Reply::Unit
        }
        event::Op::IsSet => Reply::Bool(look()?.0),
        event::Op::Wait(w) => {
            let deadline = w.deadline();
            let (set, seen) = look()?;
            if set {
                return Ok(Reply::Bool(true));
            }
            loop {
                if nap(cx, &r.key("ew"), deadline, SLICE)? == Nap::Late {
                    break Reply::Bool(false);
                }
                let (set, n) = look()?;
                if set || n != seen {
                    break Reply::Bool(true);
                }
            }
        }
    })
}

// ------------------------------------------------------------- condition

/// `ARGV`: base, owner, ttl. Replies `{depth, ticket}` or `{-1, ''}` if not owned.
static COND_WAIT: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local base = ARGV[1]
local lk, rc, hold = base .. ':lk', base .. ':rc', base .. ':hold'
if redis.call('GET', lk) ~= ARGV[2] then return {-1, ''} end
local depth = tonumber(redis.call('GET', rc) or '1')
redis.call('DEL', lk, rc, hold)
wake(base .. ':wk', 1)
local t = ARGV[2] .. ':' .. redis.call('INCR', base .. ':cseq')
redis.call('RPUSH', base .. ':cw', t)
redis.call('SADD', base .. ':k', base .. ':cn:' .. t)
touch(ARGV[3], base .. ':cw', base .. ':cseq', base .. ':k')
return {depth, t}
"#,
    )
});

/// `ARGV`: base, ticket. Replies 1 if it was notified meanwhile.
static COND_CANCEL: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local base = ARGV[1]
local cn = base .. ':cn:' .. ARGV[2]
redis.call('SREM', base .. ':k', cn)
redis.call('DEL', cn)
if redis.call('LREM', base .. ':cw', 0, ARGV[2]) > 0 then return 0 end
return 1
"#,
    )
});

/// `ARGV`: base, owner, n (-1: all). Replies how many were woken, or -1 if not owned.
static COND_NOTIFY: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local base = ARGV[1]
if redis.call('GET', base .. ':lk') ~= ARGV[2] then return -1 end
local n, c = tonumber(ARGV[3]), 0
while n < 0 or c < n do
  local t = redis.call('LPOP', base .. ':cw')
  if not t then break end
  local cn = base .. ':cn:' .. t
  redis.call('RPUSH', cn, 1)
  redis.call('PEXPIRE', cn, 60000)
  c = c + 1
end
return c
"#,
    )
});

fn not_acquired(what: &str) -> Error {
    Error::new(
        ErrorKind::NotPermitted,
        format!("cannot {what} on an un-acquired condition"),
    )
}

pub(super) fn condition(cx: &Cx<'_>, op: condition::Op) -> Result<Reply> {
    let r = cx.r;
    let me = thread_owner();
    Ok(match op {
        condition::Op::Acquire(w) => Reply::Bool(acquire_as(cx, w, &me, &me, true)?),
        condition::Op::Release => match release_as(cx, &me, &me, false, true)? {
            n if n >= 0 => Reply::Unit,
            _ => return Err(not_owner("condition")),
        },
        condition::Op::Wait(w) => {
            let (depth, ticket): (i64, String) = cx.run("condition wait", |c| {
                COND_WAIT
                    .key(r.meta())
                    .arg(&r.base)
                    .arg(&me)
                    .arg(r.ttl())
                    .invoke(c)
            })?;
            if depth < 0 {
                return Err(not_acquired("wait"));
            }
            drop_lease(&r.url, &r.key("lk"), &me);
            let deadline = w.deadline();
            let cn = r.key(&format!("cn:{ticket}"));
            let woken = loop {
                match nap(cx, &cn, deadline, SLICE) {
                    Ok(Nap::Woken) => break true,
                    Ok(Nap::Slept) => {}
                    Ok(Nap::Late) | Err(_) => {
                        let n: i64 = cx.run("condition wait", |c| {
                            COND_CANCEL
                                .key(r.meta())
                                .arg(&r.base)
                                .arg(&ticket)
                                .invoke(c)
                        })?;
                        break n == 1;
                    }
                }
            };
            let _ = cx.run("condition wait", |c| {
                COND_CANCEL
                    .key(r.meta())
                    .arg(&r.base)
                    .arg(&ticket)
                    .invoke::<i64>(c)
            });
            // Take the lock back, however long that takes (as Python does), at the
            // depth it had.
            acquire_as(cx, Wait::Block, &me, &me, true)?;
            if depth > 1 {
                cx.run("condition wait", |c| {
                    ::redis::cmd("SET")
                        .arg(r.key("rc"))
                        .arg(depth)
                        .query::<()>(c)
                })?;
            }
            Reply::Bool(woken)
        }
        condition::Op::Notify(n) => notify(cx, &me, i64::from(n))?,
        condition::Op::NotifyAll => {
            notify(cx, &me, -1)?;
            Reply::Unit
        }
    })
}

fn notify(cx: &Cx<'_>, me: &str, n: i64) -> Result<Reply> {
    let r = cx.r;
    let c: i64 = cx.run("condition notify", |c| {
        COND_NOTIFY
            .key(r.meta())
            .arg(&r.base)
            .arg(me)
            .arg(n)
            .invoke(c)
    })?;
    if c < 0 {
        return Err(not_acquired("notify"));
    }
    Ok(Reply::U64(c as u64))
}

// ------------------------------------------------------------- barrier

/// `ARGV`: base, ttl. Replies `{state, index, generation}`: 1 completed it, 0 wait,
/// -1 broken.
static BARRIER_WAIT: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local base = ARGV[1]
local bg = base .. ':bg'
if redis.call('HGET', bg, 'broken') == '1' then return {-1, 0, 0} end
local parties = tonumber(redis.call('HGET', base .. ':m', 'parties') or '1')
local gen = tonumber(redis.call('HGET', bg, 'gen') or '0')
local idx = redis.call('HINCRBY', bg, 'count', 1) - 1
touch(ARGV[2], bg)
if idx + 1 >= parties then
  redis.call('HSET', bg, 'count', 0)
  redis.call('HINCRBY', bg, 'gen', 1)
  wake(base .. ':bw:' .. gen, parties)
  return {1, idx, gen}
end
return {0, idx, gen}
"#,
    )
});

/// `ARGV`: base, generation. Replies 1 (passed), 0 (still waiting), -1 (broken).
static BARRIER_CHECK: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local base = ARGV[1]
local bg = base .. ':bg'
local g = tonumber(redis.call('HGET', bg, 'gen') or '0')
if g ~= tonumber(ARGV[2]) then
  if redis.call('SISMEMBER', base .. ':rs', ARGV[2]) == 1 then return -1 end
  return 1
end
if redis.call('HGET', bg, 'broken') == '1' then return -1 end
return 0
"#,
    )
});

/// `ARGV`: base, ttl, how (`abort`, `reset`).
static BARRIER_BREAK: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local base = ARGV[1]
local bg = base .. ':bg'
local gen = tonumber(redis.call('HGET', bg, 'gen') or '0')
if ARGV[3] == 'reset' then
  if tonumber(redis.call('HGET', bg, 'count') or '0') > 0 then
    redis.call('SADD', base .. ':rs', gen)
  end
  redis.call('HINCRBY', bg, 'gen', 1)
  redis.call('HSET', bg, 'count', 0, 'broken', 0)
else
  redis.call('HSET', bg, 'count', 0, 'broken', 1)
end
touch(ARGV[2], bg, base .. ':rs')
wake(base .. ':bw:' .. gen, 64)
return 1
"#,
    )
});

fn broken_barrier() -> Error {
    Error::new(ErrorKind::BrokenBarrier, "the barrier is broken")
}

pub(super) fn barrier(cx: &Cx<'_>, op: barrier::Op) -> Result<Reply> {
    let r = cx.r;
    let bg = r.key("bg");
    let brk = |how: &str| -> Result<()> {
        cx.run("barrier", |c| {
            BARRIER_BREAK
                .key(r.meta())
                .arg(&r.base)
                .arg(r.ttl())
                .arg(how)
                .invoke::<i64>(c)
        })?;
        Ok(())
    };
    Ok(match op {
        barrier::Op::Wait(w) => {
            let deadline = w.deadline();
            let (state, idx, generation): (i64, u64, u64) = cx.run("barrier wait", |c| {
                BARRIER_WAIT
                    .key(r.meta())
                    .arg(&r.base)
                    .arg(r.ttl())
                    .invoke(c)
            })?;
            match state {
                1 => return Ok(Reply::U64(idx)),
                -1 => return Err(broken_barrier()),
                _ => {}
            }
            let bw = r.key(&format!("bw:{generation}"));
            loop {
                let s: i64 = cx.run("barrier wait", |c| {
                    BARRIER_CHECK
                        .key(r.meta())
                        .arg(&r.base)
                        .arg(generation)
                        .invoke(c)
                })?;
                match s {
                    1 => break Reply::U64(idx),
                    -1 => return Err(broken_barrier()),
                    _ => {}
                }
                if nap(cx, &bw, deadline, SLICE)? == Nap::Late {
                    // A party that times out breaks the barrier for everyone.
                    brk("abort")?;
                    return Err(broken_barrier());
                }
            }
        }
        barrier::Op::Abort => {
            brk("abort")?;
            Reply::Unit
        }
        barrier::Op::Reset => {
            brk("reset")?;
            Reply::Unit
        }
        barrier::Op::IsBroken => {
            let b: Option<String> = cx.run("barrier", |c| {
                ::redis::cmd("HGET").arg(&bg).arg("broken").query(c)
            })?;
            Reply::Bool(b.as_deref() == Some("1"))
        }
        barrier::Op::Waiting => {
            let n: Option<u64> = cx.run("barrier", |c| {
                ::redis::cmd("HGET").arg(&bg).arg("count").query(c)
            })?;
            Reply::U64(n.unwrap_or(0))
        }
        barrier::Op::Parties => {
            let n: Option<u64> = cx.run("barrier", |c| {
                ::redis::cmd("HGET").arg(r.meta()).arg("parties").query(c)
            })?;
            Reply::U64(n.unwrap_or(0))
        }
    })
}
