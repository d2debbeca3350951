//! A manager whose objects live in Redis (feature `redis`): the second place of
//! [`Home`](super::home::Home), beside a manager's server process.
//!
//! # Design
//!
//! The proxy types do not change: a proxy encodes its kind's op (`kinds::dict::Op`,
//! ...) and hands it to its home; a home in Redis re-reads it as the server's table of
//! operations (`kinds::Op`, a few bytes of bincode, far cheaper than the round trip)
//! and runs it here, as one Redis command or one Lua script where Python's server
//! would hold its object's mutex. The appliers are grouped by how they use Redis:
//! [`data`] (dict, list, value, namespace, array), [`sync`] (lock, rlock, semaphore,
//! event, condition, barrier) and [`queue`] (queue, joinable queue).
//!
//! ## Keys
//!
//! An object is a handful of Redis keys sharing one base, `mp:{o:<random>}` for an
//! object made without a name and `mp:{n:<name>}` for a named one (the braces are a
//! cluster hash tag: every key of an object lands in one slot, so one script may touch
//! them all; tested against a single `redis-server` only, not Redis Cluster). `<base>:m` is a hash of what the object is (kind, lease, bounds,
//! reference count); the other suffixes are listed in [`DATA`] and [`LEASED`].
//! Dict keys are the bincode bytes of the key (the server manager's rule: canonical
//! types only), so two hosts computing the same key reach the same field.
//!
//! ## Values are sealed
//!
//! Every stored value is `HMAC(key, value) || value` ([`Seal`](crate::broker::Seal),
//! domain `multiprocess-manager-value`), the key being the one given to
//! [`Manager::redis`](crate::Manager::redis): write access to Redis alone cannot plant
//! a value that a proxy decodes. A value that does not open is refused with
//! [`ErrorKind::Authentication`]. Seals are deterministic, so equal values still
//! compare equal in Redis (`ListProxy::remove`). A manager made without a key
//! (`None`) stores plain bytes. A serialized proxy carries the Redis URL, never the
//! key: the decoding process finds the key in its key ring under that URL, as a
//! server manager's proxy does under its address (a child started by this crate has
//! its parent's ring; others call `add_authkey(url, key)`).
//!
//! ## Lifetime
//!
//! Named objects live until [`Manager::delete`](crate::Manager::delete). An object
//! made without a name counts the *processes* that hold a proxy of it (`refs` in its
//! hash; clones inside one process are counted locally, so they cost nothing) and is
//! deleted when the last one lets go. A process that dies without letting go cannot
//! decrement, so every key of such an object also carries a TTL of one lease, which a
//! background thread of each holding process (the *keeper*) renews every third of a
//! lease: when no live process holds it, the object expires one lease later. A proxy
//! being serialized sets `<base>:lent` for three leases, so that the object outlives
//! its sender while the bytes travel, as the server manager's lease does.
//!
//! Unlike a server manager, a proxy *stored inside* an object in Redis (a lock in a
//! dict) does not keep its own object alive: Redis cannot see inside sealed values.
//! Store proxies of named objects, or keep a proxy of the inner object elsewhere.
//!
//! ## Leases
//!
//! The same keeper renews what this process *holds*: lock and rlock leases (`SET NX
//! PX` keys, renewed only while their value is still our token), semaphore permits (a
//! sorted set of tokens scored by expiry) and queue consumers' heartbeats. A process
//! that is killed or stopped stops renewing, and one lease later what it held is free
//! again. This is renewal by a thread, not on use: a holder that is merely slow keeps
//! its lease; one that is stopped (`SIGSTOP`, a VM paused, a partition) loses it, which
//! is what fencing tokens are for (see `LockProxy::fencing_token`).
//!
//! ## Waiting
//!
//! Blocking calls wait in Redis, never by spinning: a waiter blocks in `BLPOP` on a
//! wake list of the object (or `BLMOVE` on a queue) for at most [`SLICE`], then looks
//! again. Whoever frees something pushes a few wake tokens (which expire after a
//! second). A wake that is lost (a waiter between its check and its `BLPOP`) costs at
//! most one slice; a lease that runs out wakes nobody and is noticed by the next look.
//! (The reply to a quick command is another matter: the connection spins briefly for
//! it before it sleeps, see `broker::conn`.)

mod data;
mod manager;
mod queue;
mod sync;

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use ::redis::{RedisResult, Script};
use serde::{Deserialize, Serialize};

use super::kinds::{Init, Op as AnyOp};
use super::protocol::{Bytes, Item, Kind, Ops, Reply, Tagged};
use crate::broker::{self, Seal};
use crate::error::{Error, ErrorKind, Result};
use crate::listener::AuthKey;
use crate::process::keyring;
use crate::wire::codec;

/// How long a lease lasts unless the manager says otherwise.
pub(crate) const DEFAULT_LEASE: Duration = Duration::from_secs(10);

/// The longest one blocking Redis command waits before the caller looks again.
const SLICE: Duration = Duration::from_millis(250);

/// The seal's domain for stored values.
const DOMAIN: &[u8] = b"multiprocess-manager-value";

/// Suffixes of an object's keys that hold its data: renewed by the keeper for
/// objects without a name, deleted with the object.
const DATA: &[&str] = &[
    "m", "h", "o", "seq", "l", "v", "sv", "hs", "fence", "hold", "rc", "q", "u", "cs", "e", "bg",
    "rs", "cw", "cseq", "k", "lent", "es",
];

/// Suffixes of keys with a life of their own (a lock's lease, wake lists): deleted
/// with the object, never renewed as data.
const LEASED: &[&str] = &["lk", "wk", "nf", "jw", "ew"];

/// An object in Redis, as a proxy's home holds it (and serializes it: no key).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Ref {
    url: String,
    base: String,
    kind: Kind,
    named: bool,
    /// Whether the manager has a key (values are sealed).
    sealed: bool,
    lease_ms: u64,
}

impl fmt::Debug for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {} at {}", self.kind, self.base, self.url)
    }
}

impl Ref {
    /// A decoded `Ref` is hostile input: its base must be one of ours (`mp:{...}`,
    /// so a forged proxy cannot reach other keys) and its lease sane.
    fn check(&self) -> Result<()> {
        let inner = self
            .base
            .strip_prefix("mp:{")
            .and_then(|b| b.strip_suffix('}'))
            .filter(|b| !b.contains(['{', '}']) && (b.starts_with("o:") || b.starts_with("n:")));
        if inner.is_none() || self.lease_ms < 100 || self.lease_ms > 1 << 40 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "not a Redis manager object: {self:?} (lease {} ms)",
                    self.lease_ms
                ),
            ));
        }
        Ok(())
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.base)
    }

    fn meta(&self) -> String {
        self.key("m")
    }

    /// The TTL written on data keys: one lease, or 0 (none) for a named object.
    fn ttl(&self) -> u64 {
        if self.named { 0 } else { self.lease_ms }
    }

    /// The seal of this object's manager, if it has a key, from the key ring.
    fn seal(&self) -> Result<Option<Seal>> {
        if !self.sealed {
            return Ok(None);
        }
        match keyring::lookup(&self.url) {
            Some(k) => Ok(Some(Seal::new(&k))),
            None => Err(Error::new(
                ErrorKind::Authentication,
                format!(
                    "no key for the Redis manager at {}: this process needs it in its key \
                     ring (Manager::redis with the same key, or \
                     multiprocess::manager::add_authkey(url, key))",
                    self.url
                ),
            )),
        }
    }
}

/// What a call needs besides the connection: the object and its seal.
pub(crate) struct Cx<'a> {
    r: &'a Ref,
    seal: Option<Seal>,
}

impl Cx<'_> {
    /// `bytes` as stored (sealed when the manager has a key).
    fn seal(&self, bytes: &[u8]) -> Vec<u8> {
        match &self.seal {
            Some(s) => s.seal(DOMAIN, bytes),
            None => bytes.to_vec(),
        }
    }

    fn seal_item(&self, item: &Item) -> Vec<u8> {
        self.seal(&item.bytes)
    }

    /// The value of a stored entry, if it was sealed with our key.
    fn open(&self, stored: Vec<u8>) -> Result<Bytes> {
        match &self.seal {
            None => Ok(stored),
            Some(s) => match s.open(DOMAIN, &stored) {
                Some(b) => Ok(b.to_vec()),
                None => Err(Error::new(
                    ErrorKind::Authentication,
                    format!(
                        "a value of {} in Redis is not sealed with this manager's key \
                         (written with another key, or by something else)",
                        self.r.base
                    ),
                )),
            },
        }
    }

    fn open_maybe(&self, stored: Option<Vec<u8>>) -> Result<Option<Bytes>> {
        stored.map(|s| self.open(s)).transpose()
    }

    /// Runs `f` on this thread's connection to the object's Redis.
    fn run<T>(
        &self,
        what: &str,
        f: impl FnOnce(&mut broker::RedisConn) -> RedisResult<T>,
    ) -> Result<T> {
        with_conn(&self.r.url, what, f)
    }
}

// ------------------------------------------------------------- connections

struct Conn {
    pid: u32,
    conn: broker::RedisConn,
}

thread_local! {
    /// This thread's connection to each Redis it used (a blocking call blocks only
    /// its own thread's connection).
    static CONNS: RefCell<HashMap<String, Conn>> = RefCell::new(HashMap::new());
}

/// Runs `f` on this thread's connection to `url` (made on first use, and again after
/// an error that may have left it mid-reply, and in a forked child, which must not
/// share its parent's socket).
pub(crate) fn with_conn<T>(
    url: &str,
    what: &str,
    f: impl FnOnce(&mut broker::RedisConn) -> RedisResult<T>,
) -> Result<T> {
    let pid = std::process::id();
    let cached = CONNS
        .try_with(|c| c.borrow_mut().remove(url))
        .ok()
        .flatten()
        .filter(|c| c.pid == pid);
    let mut c = match cached {
        Some(c) => c,
        None => Conn {
            pid,
            conn: broker::connect(url, broker::IO_TIMEOUT)?,
        },
    };
    match f(&mut c.conn) {
        Ok(v) => {
            let _ = CONNS.try_with(|m| m.borrow_mut().insert(url.to_string(), c));
            Ok(v)
        }
        Err(e) => {
            // A reply error (a script's refusal) leaves the connection usable.
            if ::redis::ConnectionLike::is_open(&c.conn) {
                let _ = CONNS.try_with(|m| m.borrow_mut().insert(url.to_string(), c));
            }
            Err(broker::redis_error(
                &format!("Redis manager at {url}: {what}"),
                e,
            ))
        }
    }
}

/// How a [`nap`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nap {
    /// A wake token came.
    Woken,
    /// A slice (or `cap`) went by: look again.
    Slept,
    /// The deadline has passed: nothing was waited.
    Late,
}

/// Waits on wake list `key` until a token comes, `deadline` passes, or `cap` (at
/// most one [`SLICE`]) goes by.
fn nap(cx: &Cx<'_>, key: &str, deadline: Option<Instant>, cap: Duration) -> Result<Nap> {
    let cap = cap.clamp(Duration::from_millis(1), SLICE);
    let slice = match deadline {
        None => cap,
        Some(d) => match d.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => left.min(cap),
            _ => return Ok(Nap::Late),
        },
    };
    let secs = slice.as_secs_f64().max(0.001);
    let got = cx.run("waiting", |c| {
        ::redis::cmd("BLPOP")
            .arg(key)
            .arg(format!("{secs:.3}"))
            .query::<Option<(Vec<u8>, Vec<u8>)>>(c)
    })?;
    Ok(if got.is_some() {
        Nap::Woken
    } else {
        Nap::Slept
    })
}

/// Lua: pushes `ARGV[n]` wake tokens on `key` (expiring in a second).
const WAKE_FN: &str = r#"
local function wake(key, n)
  for i = 1, n do redis.call('RPUSH', key, 1) end
  redis.call('LTRIM', key, -64, -1)
  redis.call('PEXPIRE', key, 1000)
end
local function touch(ttl, ...)
  if tonumber(ttl) > 0 then
    for _, k in ipairs({...}) do redis.call('PEXPIRE', k, ttl) end
  end
end
"#;

/// A script made of [`WAKE_FN`] and `body`.
fn script(body: &str) -> Script {
    Script::new(&format!("{WAKE_FN}\n{body}"))
}

// ------------------------------------------------------------- making objects

/// The Redis side of a [`Manager`](crate::Manager) made by `Manager::redis`.
#[derive(Debug)]
pub(crate) struct Remote {
    url: String,
    sealed: bool,
    lease: Duration,
}

static CREATE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local base = ARGV[1]
local m = base .. ':m'
if redis.call('EXISTS', m) == 1 then
  return {0, redis.call('HGET', m, 'kind'), redis.call('HGET', m, 'lease')}
end
local kind, lease, ttl = ARGV[2], ARGV[3], tonumber(ARGV[4])
redis.call('HSET', m, 'kind', kind, 'lease', lease, 'refs', 1, 'maxsize', ARGV[5],
  'bound', ARGV[6], 'parties', ARGV[7])
local keys = {m}
if kind == 'Dict' then
  for i = 9, #ARGV, 2 do
    if redis.call('HSET', base .. ':h', ARGV[i], ARGV[i + 1]) == 1 then
      redis.call('ZADD', base .. ':o', redis.call('INCR', base .. ':seq'), ARGV[i])
    end
  end
  keys = {m, base .. ':h', base .. ':o', base .. ':seq'}
elseif kind == 'List' or kind == 'Array' then
  for i = 9, #ARGV do redis.call('RPUSH', base .. ':l', ARGV[i]) end
  keys = {m, base .. ':l'}
elseif kind == 'Value' then
  redis.call('SET', base .. ':v', ARGV[9])
  keys = {m, base .. ':v'}
elseif kind == 'Semaphore' or kind == 'BoundedSemaphore' then
  redis.call('SET', base .. ':sv', ARGV[8])
  keys = {m, base .. ':sv'}
elseif kind == 'JoinableQueue' then
  redis.call('SET', base .. ':u', 0)
  keys = {m, base .. ':u'}
end
touch(ttl, unpack(keys))
return {1, kind, lease}
"#,
    )
});

/// The kind as Redis stores it, and back.
fn kind_name(k: Kind) -> String {
    format!("{k:?}")
}

fn kind_of(s: &str) -> Option<Kind> {
    use Kind::*;
    [
        Dict,
        List,
        Queue,
        JoinableQueue,
        Lock,
        RLock,
        Semaphore,
        BoundedSemaphore,
        Condition,
        Event,
        Barrier,
        Namespace,
        Value,
        Array,
    ]
    .into_iter()
    .find(|k| kind_name(*k) == s)
}

/// A name usable in a key: not empty, not huge, no hash-tag braces.
fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 200 || name.contains(['{', '}']) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "{name:?} cannot name a Redis manager object: use 1 to 200 bytes without \
                 '{{' or '}}'"
            ),
        ));
    }
    Ok(())
}

fn base_of(name: &str) -> String {
    format!("mp:{{n:{name}}}")
}

impl Remote {
    /// Reaches the Redis at `url` (a `PING` within the connection bounds) and records
    /// `key` in the key ring under the URL.
    pub(crate) fn open(url: &str, key: &AuthKey, lease: Duration) -> Result<Remote> {
        if lease < Duration::from_millis(100) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("a Redis manager's lease must be at least 100 ms, not {lease:?}"),
            ));
        }
        with_conn(url, "connecting", |c| {
            ::redis::cmd("PING").query::<String>(c)
        })?;
        match key.as_bytes() {
            Some(k) => keyring::insert(url, k),
            None => keyring::remove(url),
        }
        Ok(Remote {
            url: url.to_string(),
            sealed: key.as_bytes().is_some(),
            lease,
        })
    }

    /// Makes an object (`name: None`), or opens the named one, making it from `init`
    /// if it does not exist yet; a named object of another kind is refused.
    pub(crate) fn make(&self, init: Init, name: Option<&str>) -> Result<Ref> {
        let base = match name {
            Some(n) => {
                check_name(n)?;
                base_of(n)
            }
            None => {
                let r = crate::listener::random_bytes::<12>()?;
                let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
                format!("mp:{{o:{hex}}}")
            }
        };
        let lease_ms = self.lease.as_millis() as u64;
        let mut r = Ref {
            url: self.url.clone(),
            base,
            kind: Kind::Dict,
            named: name.is_some(),
            sealed: self.sealed,
            lease_ms,
        };
        let cx = Cx {
            r: &r,
            seal: r.seal()?,
        };
        let (kind, maxsize, bound, parties, first, rest): (Kind, u64, u64, u32, u64, Vec<Vec<u8>>) =
            match init {
                Init::Dict(items) => (
                    Kind::Dict,
                    0,
                    0,
                    0,
                    0,
                    items
                        .iter()
                        .flat_map(|(k, v)| [k.clone(), cx.seal_item(v)])
                        .collect(),
                ),
                Init::List(v) => (
                    Kind::List,
                    0,
                    0,
                    0,
                    0,
                    v.iter().map(|i| cx.seal_item(i)).collect(),
                ),
                Init::Array(v) => (
                    Kind::Array,
                    0,
                    0,
                    0,
                    0,
                    v.iter().map(|i| cx.seal_item(i)).collect(),
                ),
                Init::Value(i) => (Kind::Value, 0, 0, 0, 0, vec![cx.seal_item(&i)]),
                Init::Queue { maxsize, joinable } => (
                    if joinable {
                        Kind::JoinableQueue
                    } else {
                        Kind::Queue
                    },
                    maxsize.unwrap_or(0),
                    0,
                    0,
                    0,
                    vec![],
                ),
                Init::Lock => (Kind::Lock, 0, 0, 0, 0, vec![]),
                Init::RLock => (Kind::RLock, 0, 0, 0, 0, vec![]),
                Init::Semaphore { value, bounded } => (
                    if bounded {
                        Kind::BoundedSemaphore
                    } else {
                        Kind::Semaphore
                    },
                    0,
                    if bounded { value } else { 0 },
                    0,
                    value,
                    vec![],
                ),
                Init::Condition => (Kind::Condition, 0, 0, 0, 0, vec![]),
                Init::Event => (Kind::Event, 0, 0, 0, 0, vec![]),
                Init::Barrier(p) => (Kind::Barrier, 0, 0, p, 0, vec![]),
                Init::Namespace => (Kind::Namespace, 0, 0, 0, 0, vec![]),
            };
        let mut inv = CREATE.prepare_invoke();
        inv.key(r.meta())
            .arg(&r.base)
            .arg(kind_name(kind))
            .arg(lease_ms)
            .arg(r.ttl())
            .arg(maxsize)
            .arg(bound)
            .arg(parties)
            .arg(first);
        for a in &rest {
            inv.arg(a.as_slice());
        }
        let (created, found, lease): (i64, String, u64) =
            cx.run("making an object", |c| inv.invoke(c))?;
        let found = kind_of(&found).ok_or_else(|| {
            Error::new(
                ErrorKind::Protocol,
                format!("{} in Redis is of no known kind ({found:?})", r.base),
            )
        })?;
        if created == 0 && found != kind {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "{:?} is a {found:?} in the Redis manager at {}, not a {kind:?}",
                    name.unwrap_or(""),
                    self.url
                ),
            ));
        }
        r.kind = found;
        r.lease_ms = lease.max(100);
        hold(&r);
        Ok(r)
    }

    /// Deletes the named object (every key of it); `false` if there was none.
    pub(crate) fn delete(&self, name: &str) -> Result<bool> {
        check_name(name)?;
        let r = Ref {
            url: self.url.clone(),
            base: base_of(name),
            kind: Kind::Dict,
            named: true,
            sealed: self.sealed,
            lease_ms: self.lease.as_millis() as u64,
        };
        let n: i64 = with_conn(&self.url, "deleting", |c| {
            DELETE.key(r.meta()).arg(&r.base).invoke(c)
        })?;
        Ok(n > 0)
    }

    /// How many objects of any manager live in this Redis (`mp:*:m` keys).
    pub(crate) fn object_count(&self) -> Result<usize> {
        with_conn(&self.url, "counting objects", |c| {
            let keys: Vec<String> = ::redis::cmd("KEYS").arg("mp:{*}:m").query(c)?;
            Ok(keys.len())
        })
    }
}

/// Lua: deletes every key of the object at `base`.
const DELETE_FN: &str = r#"
local function delete_all(base)
  local n = redis.call('EXISTS', base .. ':m')
  for _, k in ipairs(redis.call('SMEMBERS', base .. ':k')) do redis.call('DEL', k) end
  for _, c in ipairs(redis.call('HKEYS', base .. ':cs')) do
    redis.call('DEL', base .. ':hb:' .. c, base .. ':p:' .. c)
  end
  for _, s in ipairs(DATA) do redis.call('DEL', base .. ':' .. s) end
  for _, s in ipairs(LEASED) do redis.call('DEL', base .. ':' .. s) end
  return n
end
"#;

fn lua_list(xs: &[&str]) -> String {
    let quoted: Vec<String> = xs.iter().map(|s| format!("'{s}'")).collect();
    format!("{{{}}}", quoted.join(", "))
}

/// A script with [`WAKE_FN`], the suffix tables and [`DELETE_FN`] before `body`.
fn script_with_delete(body: &str) -> Script {
    Script::new(&format!(
        "{WAKE_FN}\nlocal DATA = {}\nlocal LEASED = {}\n{DELETE_FN}\n{body}",
        lua_list(DATA),
        lua_list(LEASED)
    ))
}

static DELETE: LazyLock<Script> =
    LazyLock::new(|| script_with_delete("return delete_all(ARGV[1])"));

/// A process lets go of an object without a name: the last one deletes it, unless a
/// serialized proxy is in transit (then it expires with the lend).
static LET_GO: LazyLock<Script> = LazyLock::new(|| {
    script_with_delete(
        r#"
local base = ARGV[1]
if redis.call('EXISTS', base .. ':m') == 0 then return -1 end
local n = redis.call('HINCRBY', base .. ':m', 'refs', -1)
if n > 0 then return n end
local lent = redis.call('PTTL', base .. ':lent')
if lent > 0 then
  for _, s in ipairs(DATA) do redis.call('PEXPIRE', base .. ':' .. s, lent) end
  return 0
end
delete_all(base)
return 0
"#,
    )
});

/// A process takes hold of an object without a name (a decoded proxy).
static ADOPT: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local base = ARGV[1]
if redis.call('EXISTS', base .. ':m') == 0 then return 0 end
redis.call('HINCRBY', base .. ':m', 'refs', 1)
return 1
"#,
    )
});

/// Renews the data keys of an object without a name by one lease.
static RENEW_DATA: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"
local DATA = {}
local base, ttl = ARGV[1], ARGV[2]
if redis.call('EXISTS', base .. ':m') == 0 then return 0 end
for _, s in ipairs(DATA) do redis.call('PEXPIRE', base .. ':' .. s, ttl) end
for _, k in ipairs(redis.call('SMEMBERS', base .. ':k')) do redis.call('PEXPIRE', k, ttl) end
return 1
"#,
        lua_list(DATA)
    ))
});

static LEND: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
redis.call('SET', ARGV[1] .. ':lent', 1, 'PX', ARGV[2])
return 1
"#,
    )
});

// ------------------------------------------------------------- what a process holds

/// What this process holds in Redis, renewed by its keeper thread.
#[derive(Default)]
struct Held {
    pid: u32,
    /// The keeper thread, unparked when something new is to be renewed.
    keeper: Option<std::thread::Thread>,
    /// Objects this process has proxies of: how many, and when to renew next.
    objects: HashMap<(String, String), (usize, Ref, Instant)>,
    /// Leases: `(url, key, token)` to `(kind, lease, next renewal)`.
    leases: HashMap<(String, String, String), (LeaseKind, u64, Instant)>,
}

/// How a lease is renewed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum LeaseKind {
    /// A key whose value is the token (`SET NX PX`).
    Key,
    /// A member of a sorted set scored by its expiry, in ms.
    Member,
}

/// Tagged with its pid, so a forked child starts afresh. (A child forked at the very
/// moment the keeper held this mutex, for the microseconds of one scan, would block on
/// it; `process::state::PerProcess` solves that for the layers below, which do not
/// export it.)
static HELD: Mutex<Option<Held>> = Mutex::new(None);

/// This process's [`Held`] (a fresh one in a forked child).
fn held<T>(f: impl FnOnce(&mut Held) -> T) -> T {
    let mut g = HELD.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    let h = g.get_or_insert_with(Held::default);
    if h.pid != pid {
        *h = Held {
            pid,
            ..Held::default()
        };
    }
    f(h)
}

fn start_keeper(h: &mut Held) {
    match &h.keeper {
        Some(t) => t.unpark(),
        None => {
            h.keeper = std::thread::Builder::new()
                .name("mp-redis-keeper".into())
                .spawn(keeper)
                .ok()
                .map(|j| j.thread().clone());
        }
    }
}

fn renew_every(lease_ms: u64) -> Duration {
    Duration::from_millis((lease_ms / 3).max(30))
}

/// Counts one more proxy of `r` in this process; `true` if it is the first.
fn hold(r: &Ref) -> bool {
    held(|h| {
        let e = h
            .objects
            .entry((r.url.clone(), r.base.clone()))
            .or_insert_with(|| (0, r.clone(), Instant::now() + renew_every(r.lease_ms)));
        e.0 += 1;
        let first = e.0 == 1;
        if first && !r.named {
            start_keeper(h);
        }
        first
    })
}

/// Registers a lease to renew while this process lives.
pub(crate) fn add_lease(url: &str, key: &str, token: &str, kind: LeaseKind, lease_ms: u64) {
    held(|h| {
        h.leases.insert(
            (url.to_string(), key.to_string(), token.to_string()),
            (kind, lease_ms, Instant::now() + renew_every(lease_ms)),
        );
        start_keeper(h);
    });
}

pub(crate) fn drop_lease(url: &str, key: &str, token: &str) {
    held(|h| {
        h.leases
            .remove(&(url.to_string(), key.to_string(), token.to_string()))
    });
}

static RENEW_KEY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"#,
    )
});

static RENEW_MEMBER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
  return 1
end
return 0
"#,
    )
});

/// The keeper thread: renews the leases and objects of this process, forever (it
/// ends with the process; a forked child starts its own on first use).
fn keeper() {
    let me = std::process::id();
    loop {
        let now = Instant::now();
        let (objects, leases, next) = {
            let mut g = HELD.lock().unwrap_or_else(|e| e.into_inner());
            let Some(h) = g.as_mut().filter(|h| h.pid == me) else {
                return;
            };
            let objects: Vec<Ref> = h
                .objects
                .values_mut()
                .filter(|(_, r, next)| !r.named && *next <= now)
                .map(|(_, r, next)| {
                    *next = now + renew_every(r.lease_ms);
                    r.clone()
                })
                .collect();
            let leases: Vec<_> = h
                .leases
                .iter_mut()
                .filter(|(_, (_, _, next))| *next <= now)
                .map(|(k, (kind, ms, next))| {
                    *next = now + renew_every(*ms);
                    (k.clone(), *kind, *ms)
                })
                .collect();
            // The next renewal due, to sleep until then (whoever adds a lease or an
            // object unparks us).
            let next = h
                .objects
                .values()
                .filter(|(_, r, _)| !r.named)
                .map(|(_, _, n)| *n)
                .chain(h.leases.values().map(|(_, _, n)| *n))
                .min();
            (objects, leases, next)
        };
        for r in objects {
            let _ = with_conn(&r.url, "renewing", |c| {
                RENEW_DATA
                    .key(r.meta())
                    .arg(&r.base)
                    .arg(r.lease_ms)
                    .invoke::<i64>(c)
            });
        }
        for ((url, key, token), kind, ms) in leases {
            let s = match kind {
                LeaseKind::Key => &*RENEW_KEY,
                LeaseKind::Member => &*RENEW_MEMBER,
            };
            let r = with_conn(&url, "renewing a lease", |c| {
                s.key(&key).arg(&token).arg(ms).invoke::<i64>(c)
            });
            if let Ok(0) = r {
                // Lost (it ran out, or someone else released it): stop renewing.
                drop_lease(&url, &key, &token);
            }
        }
        let nap = next
            .and_then(|n| n.checked_duration_since(Instant::now()))
            .unwrap_or_default()
            .clamp(Duration::from_millis(10), Duration::from_secs(1));
        std::thread::park_timeout(nap);
    }
}

// ------------------------------------------------------------- the home's arms

/// A new home for an object just made or opened by a manager (already counted).
pub(crate) fn adopt(r: &Ref) -> bool {
    if r.check().is_err() || !hold(r) || r.named {
        return true;
    }
    // The first proxy of this process: count the process in Redis.
    let ok = with_conn(&r.url, "adopting", |c| {
        ADOPT.key(r.meta()).arg(&r.base).invoke::<i64>(c)
    });
    matches!(ok, Ok(1))
}

/// A home is dropped: the last one of this process lets go of the object.
pub(crate) fn release(r: &Ref) {
    if r.check().is_err() {
        return; // never counted
    }
    let last = held(|h| {
        let k = (r.url.clone(), r.base.clone());
        match h.objects.get_mut(&k) {
            Some(e) => {
                e.0 -= 1;
                if e.0 == 0 {
                    h.objects.remove(&k);
                    true
                } else {
                    false
                }
            }
            None => false, // a copy from before a fork: not ours to count
        }
    });
    if !last {
        return;
    }
    queue::let_go(r);
    if !r.named {
        let _ = with_conn(&r.url, "letting go", |c| {
            LET_GO.key(r.meta()).arg(&r.base).invoke::<i64>(c)
        });
    }
}

/// A proxy is being serialized: keep an object without a name for three leases.
pub(crate) fn lend(r: &Ref) {
    if !r.named && r.check().is_ok() {
        let _ = with_conn(&r.url, "lending", |c| {
            LEND.key(r.meta())
                .arg(&r.base)
                .arg(r.lease_ms * 3)
                .invoke::<i64>(c)
        });
    }
}

/// Encodes a value to store (no references are counted in Redis).
pub(crate) fn item<T: Serialize + ?Sized>(x: &T) -> Result<Item> {
    Ok(Item {
        bytes: super::protocol::encode_args(x)?,
        refs: Vec::new(),
    })
}

/// Runs a proxy's op on its object in Redis.
pub(crate) fn call<O: Ops>(r: &Ref, op: &O) -> Result<Reply> {
    r.check()?;
    let tagged = Tagged(op);
    let enc = codec::encode(&tagged)?;
    let op: AnyOp = codec::decode(&enc.bytes, Vec::new())?;
    let cx = Cx { r, seal: r.seal()? };
    use Kind as K;
    match (r.kind, op) {
        (K::Dict, AnyOp::Dict(op)) => data::dict(&cx, op),
        (K::List, AnyOp::List(op)) => data::list(&cx, op),
        (K::Array, AnyOp::Array(op)) => data::array(&cx, op),
        (K::Value, AnyOp::Value(op)) => data::value(&cx, op),
        (K::Namespace, AnyOp::Namespace(op)) => data::namespace(&cx, op),
        (K::Lock, AnyOp::Lock(op)) => sync::lock(&cx, op),
        (K::RLock, AnyOp::Lock(op)) => sync::rlock(&cx, op),
        (K::Semaphore | K::BoundedSemaphore, AnyOp::Semaphore(op)) => sync::semaphore(&cx, op),
        (K::Event, AnyOp::Event(op)) => sync::event(&cx, op),
        (K::Condition, AnyOp::Condition(op)) => sync::condition(&cx, op),
        (K::Barrier, AnyOp::Barrier(op)) => sync::barrier(&cx, op),
        (K::Queue | K::JoinableQueue, AnyOp::Queue(op)) => queue::apply(&cx, op),
        (kind, op) => Err(super::handler::no_such_op(
            kind,
            &super::handler::op_name(&op),
        )),
    }
}

/// What a lock proxy tells about this process's hold: `(fencing token of the current
/// hold, owner died at the last acquire)`.
pub(crate) fn lock_info(r: &Ref) -> (Option<u64>, bool) {
    sync::info(r)
}

/// A random token, unique across hosts (96 random bits).
fn token() -> Result<String> {
    let r = crate::listener::random_bytes::<12>()?;
    Ok(r.iter().map(|b| format!("{b:02x}")).collect())
}

/// This process's id in Redis: random, made once per process (again after a fork).
fn process_id() -> String {
    static ME: Mutex<Option<(u32, String)>> = Mutex::new(None);
    let pid = std::process::id();
    let mut g = ME.lock().unwrap_or_else(|e| e.into_inner());
    match &*g {
        Some((p, id)) if *p == pid => id.clone(),
        _ => {
            let id = token().unwrap_or_else(|_| format!("pid{pid}"));
            *g = Some((pid, id.clone()));
            id
        }
    }
}

/// This thread's id in Redis: the process's id and the thread's.
fn thread_owner() -> String {
    format!("{}:{}", process_id(), crate::sys::process::gettid())
}
