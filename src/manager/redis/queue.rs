//! Queues in Redis: reliable, bounded, joinable across hosts.
//!
//! # Semantics
//!
//! The items wait in the list `q`. A `get` moves the oldest one, in one step
//! (`LMOVE`, or `BLMOVE` when it must wait), to the getting thread's own list
//! `p:<process>:<thread>`, where it stays until that thread's *next* `get`, its
//! `task_done`, or the drop of the process's last proxy of the queue: those
//! acknowledge it. Each consumer thread keeps a heartbeat key `hb:<...>` with a lease,
//! renewed by its process's keeper. Every `get` first returns to the *front* of the
//! queue the items of consumers whose heartbeat has run out (a consumer killed after
//! taking an item and before finishing it), in the same script: such an item is
//! delivered again to exactly one other consumer. Delivery is at least once: an item
//! whose consumer died after finishing it but before acknowledging is delivered
//! again; a consumer that finishes should call `task_done` or `get` again.
//!
//! A bounded queue refuses a `put` while `len() >= maxsize` (items in the consumers'
//! lists do not count, as Python's `qsize` does not count items being processed):
//! the producer blocks, waking on the tokens that `get` pushes, or one slice later.
//! A joinable queue counts unfinished items in `u`: `put` adds one in the same
//! script, `task_done` takes one off (refusing below zero), `join` waits for zero, so
//! the count is exact across hosts. Each `put`, `get`, `task_done` is one script (plus
//! the blocking `BLMOVE` when a get must wait).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use ::redis::Script;

use super::{Cx, LeaseKind, Nap, Ref, SLICE, add_lease, drop_lease, nap, script, thread_owner};
use crate::error::{Error, ErrorKind, Result};
use crate::manager::handler::no_such_op;
use crate::manager::kinds::queue::Op;
use crate::manager::protocol::{Kind, Reply, Wait};

/// `ARGV`: base, consumer, lease ms, ttl. Replies the item moved to the consumer's
/// list, or nil.
///
/// A key this script creates gets its TTL here; one that exists already carries one,
/// which the keepers renew (`RENEW_DATA`). So a get in the steady state touches no
/// TTL: the commands that would create a key tell whether they did (a new field, a
/// new member, a list of one), and only then is it touched.
static GET: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local base, me, ttl = ARGV[1], ARGV[2], ARGV[4]
local q, cs, k = base .. ':q', base .. ':cs', base .. ':k'
local p = base .. ':p:' .. me
redis.call('DEL', p)
if redis.call('HSET', cs, me, 1) == 1 then touch(ttl, cs) end
redis.call('SET', base .. ':hb:' .. me, me, 'PX', ARGV[3])
for _, c in ipairs(redis.call('HKEYS', cs)) do
  if c ~= me and redis.call('EXISTS', base .. ':hb:' .. c) == 0 then
    local pc = base .. ':p:' .. c
    while redis.call('LMOVE', pc, q, 'RIGHT', 'LEFT') do end
    redis.call('HDEL', cs, c)
    redis.call('SREM', k, pc)
    touch(ttl, q)
  end
end
if redis.call('SADD', k, p) == 1 then touch(ttl, k) end
local x = redis.call('LMOVE', q, p, 'LEFT', 'RIGHT')
if x then
  touch(ttl, p)
  if tonumber(redis.call('HGET', base .. ':m', 'maxsize') or '0') > 0 then
    wake(base .. ':nf', 1)
  end
  return x
end
return false
"#,
    )
});

/// `ARGV`: base, item, ttl, joinable (`1` or `0`). Replies 1, or 0 when full. Touches
/// only the keys it creates, as [`GET`].
static PUT: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local base, ttl = ARGV[1], ARGV[3]
local q = base .. ':q'
local max = tonumber(redis.call('HGET', base .. ':m', 'maxsize') or '0')
if max > 0 and redis.call('LLEN', q) >= max then return 0 end
if redis.call('RPUSH', q, ARGV[2]) == 1 then touch(ttl, q) end
if ARGV[4] == '1' and redis.call('INCR', base .. ':u') == 1 then
  touch(ttl, base .. ':u')
end
return 1
"#,
    )
});

static IS_FULL: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local max = tonumber(redis.call('HGET', ARGV[1] .. ':m', 'maxsize') or '0')
if max > 0 and redis.call('LLEN', ARGV[1] .. ':q') >= max then return 1 end
return 0
"#,
    )
});

/// `ARGV`: base, consumer. Replies the unfinished count left, or -1 if none was.
static TASK_DONE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local base = ARGV[1]
redis.call('DEL', base .. ':p:' .. ARGV[2])
local u = tonumber(redis.call('GET', base .. ':u') or '0')
if u <= 0 then return -1 end
u = redis.call('DECR', base .. ':u')
if u == 0 then wake(base .. ':jw', 64) end
return u
"#,
    )
});

/// `ARGV`: base, consumers... Acknowledges and forgets them.
static LET_GO: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local base = ARGV[1]
for i = 2, #ARGV do
  local c = ARGV[i]
  redis.call('DEL', base .. ':p:' .. c, base .. ':hb:' .. c)
  redis.call('HDEL', base .. ':cs', c)
  redis.call('SREM', base .. ':k', base .. ':p:' .. c)
end
return 1
"#,
    )
});

type Consumers = HashMap<(String, String), Vec<String>>;

/// The consumer threads of this process, per queue.
static CONSUMERS: Mutex<Option<(u32, Consumers)>> = Mutex::new(None);

fn consumers<T>(f: impl FnOnce(&mut Consumers) -> T) -> T {
    let mut g = CONSUMERS.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    if g.as_ref().is_none_or(|(p, _)| *p != pid) {
        *g = Some((pid, HashMap::new()));
    }
    f(&mut g.as_mut().expect("just set").1)
}

/// The last proxy of a queue in this process is gone: acknowledge what its threads
/// took, and stop their heartbeats.
pub(super) fn let_go(r: &Ref) {
    if !matches!(r.kind, Kind::Queue | Kind::JoinableQueue) {
        return;
    }
    let mine = consumers(|m| m.remove(&(r.url.clone(), r.base.clone()))).unwrap_or_default();
    if mine.is_empty() {
        return;
    }
    for c in &mine {
        drop_lease(&r.url, &r.key(&format!("hb:{c}")), c);
    }
    let _ = super::with_conn(&r.url, "letting go of a queue", |conn| {
        let mut inv = LET_GO.prepare_invoke();
        inv.key(r.meta()).arg(&r.base);
        for c in &mine {
            inv.arg(c);
        }
        inv.invoke::<i64>(conn)
    });
}

fn empty() -> Error {
    Error::new(ErrorKind::Empty, "the queue is empty")
}

pub(super) fn apply(cx: &Cx<'_>, op: Op) -> Result<Reply> {
    let r = cx.r;
    let joinable = r.kind == Kind::JoinableQueue;
    Ok(match op {
        Op::Put(item, w) => {
            let stored = cx.seal_item(&item);
            let deadline = w.deadline();
            loop {
                let ok: i64 = cx.run("queue put", |c| {
                    PUT.key(r.meta())
                        .arg(&r.base)
                        .arg(stored.as_slice())
                        .arg(r.ttl())
                        .arg(u8::from(joinable))
                        .invoke(c)
                })?;
                if ok == 1 {
                    break Reply::Unit;
                }
                if nap(cx, &r.key("nf"), deadline, SLICE)? == Nap::Late {
                    return Err(Error::new(ErrorKind::Full, "the queue is full"));
                }
            }
        }
        Op::Get(w) => Reply::Bytes(cx.open(get(cx, w)?)?),
        Op::Len => Reply::U64(cx.run("queue len", |c| {
            ::redis::cmd("LLEN").arg(r.key("q")).query(c)
        })?),
        Op::IsFull => {
            let f: i64 = cx.run("queue is_full", |c| {
                IS_FULL.key(r.meta()).arg(&r.base).invoke(c)
            })?;
            Reply::Bool(f == 1)
        }
        Op::TaskDone if !joinable => return Err(no_such_op(Kind::Queue, "TaskDone")),
        Op::Join(_) if !joinable => return Err(no_such_op(Kind::Queue, "Join")),
        Op::TaskDone => {
            let me = thread_owner();
            let n: i64 = cx.run("queue task_done", |c| {
                TASK_DONE.key(r.meta()).arg(&r.base).arg(&me).invoke(c)
            })?;
            if n < 0 {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    "task_done() called more times than there were items",
                ));
            }
            Reply::Unit
        }
        Op::Join(w) => {
            let deadline = w.deadline();
            loop {
                let u: Option<i64> = cx.run("queue join", |c| {
                    ::redis::cmd("GET").arg(r.key("u")).query(c)
                })?;
                if u.unwrap_or(0) <= 0 {
                    break Reply::Bool(true);
                }
                if nap(cx, &r.key("jw"), deadline, SLICE)? == Nap::Late {
                    break Reply::Bool(false);
                }
            }
        }
    })
}

/// Takes the oldest item into this thread's list (see the module docs).
fn get(cx: &Cx<'_>, w: Wait) -> Result<Vec<u8>> {
    let r = cx.r;
    let me = thread_owner();
    let hb = r.key(&format!("hb:{me}"));
    let first = consumers(|m| {
        let v = m.entry((r.url.clone(), r.base.clone())).or_default();
        if v.contains(&me) {
            false
        } else {
            v.push(me.clone());
            true
        }
    });
    if first {
        add_lease(&r.url, &hb, &me, LeaseKind::Key, r.lease_ms);
    }
    let deadline = w.deadline();
    let p = r.key(&format!("p:{me}"));
    loop {
        let x: Option<Vec<u8>> = cx.run("queue get", |c| {
            GET.key(r.meta())
                .arg(&r.base)
                .arg(&me)
                .arg(r.lease_ms)
                .arg(r.ttl())
                .invoke(c)
        })?;
        if let Some(x) = x {
            return Ok(x);
        }
        let slice = match deadline {
            None => SLICE,
            Some(d) => match d.checked_duration_since(std::time::Instant::now()) {
                Some(left) if !left.is_zero() => left.min(SLICE),
                _ => return Err(empty()),
            },
        };
        let secs = slice.as_secs_f64().max(0.001);
        let x: Option<Vec<u8>> = cx.run("queue get", |c| {
            ::redis::cmd("BLMOVE")
                .arg(r.key("q"))
                .arg(&p)
                .arg("LEFT")
                .arg("RIGHT")
                .arg(format!("{secs:.3}"))
                .query(c)
        })?;
        if let Some(x) = x {
            return Ok(x);
        }
    }
}
