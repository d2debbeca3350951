//! Dict, list, array, value and namespace in Redis.
//!
//! # Semantics and atomicity
//!
//! - **Dict**: a hash `h` (field: the key's bincode bytes; value: the sealed value)
//!   and a sorted set `o` of the fields by insertion number (Python's insertion
//!   order: `keys`, `values`, `items`, `pop_item`). `get`, `contains_key` and `len`
//!   are one command; every other operation is one Lua script, so each is atomic,
//!   `set_default` and `pop_item` included. A sequence of calls is not (hold a lock).
//! - **List**: a Redis list. `push`, `extend`, `pop`, `len`, `get`, `to_vec`,
//!   `clear` and `remove` (the first equal value, `LREM`) are one command; `set`,
//!   `insert` (Python's clamped index) and `reverse` are scripts. All atomic.
//! - **Array**: a list of fixed length (its ops are a subset of the list's).
//! - **Value**: a string key; `get` and `set` are one command each.
//! - **Namespace**: a dict whose keys are attribute names.
//!
//! An object without a name gets a TTL of one lease on every key an operation
//! creates (the keeper renews it, see the parent module).

use std::sync::LazyLock;

use ::redis::Script;

use super::{Cx, script};
use crate::error::{Error, ErrorKind, Result};
use crate::manager::kinds::{array, dict, list, namespace, value};
use crate::manager::protocol::{Bytes, Item, Reply};

static DICT_INSERT: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local h, o, seq = KEYS[1], KEYS[2], KEYS[3]
local ttl = ARGV[1]
local old = redis.call('HGET', h, ARGV[2])
redis.call('HSET', h, ARGV[2], ARGV[3])
if not old then redis.call('ZADD', o, redis.call('INCR', seq), ARGV[2]) end
touch(ttl, h, o, seq)
return old
"#,
    )
});

static DICT_UPDATE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local h, o, seq = KEYS[1], KEYS[2], KEYS[3]
for i = 2, #ARGV, 2 do
  if redis.call('HSET', h, ARGV[i], ARGV[i + 1]) == 1 then
    redis.call('ZADD', o, redis.call('INCR', seq), ARGV[i])
  end
end
touch(ARGV[1], h, o, seq)
return 1
"#,
    )
});

static DICT_SET_DEFAULT: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local h, o, seq = KEYS[1], KEYS[2], KEYS[3]
local cur = redis.call('HGET', h, ARGV[2])
if cur then return cur end
redis.call('HSET', h, ARGV[2], ARGV[3])
redis.call('ZADD', o, redis.call('INCR', seq), ARGV[2])
touch(ARGV[1], h, o, seq)
return ARGV[3]
"#,
    )
});

static DICT_REMOVE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return old
"#,
    )
});

static DICT_POP_ITEM: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local f = redis.call('ZRANGE', KEYS[2], -1, -1)
if #f == 0 then return {} end
local v = redis.call('HGET', KEYS[1], f[1])
redis.call('HDEL', KEYS[1], f[1])
redis.call('ZREM', KEYS[2], f[1])
if not v then return {} end
return {f[1], v}
"#,
    )
});

/// `ARGV[1]`: 0 for values only, 1 for pairs.
static DICT_IN_ORDER: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local out = {}
for _, f in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local v = redis.call('HGET', KEYS[1], f)
  if v then
    if ARGV[1] == '1' then table.insert(out, f) end
    table.insert(out, v)
  end
end
return out
"#,
    )
});

/// The hash, order and counter keys of a dict (or namespace).
fn dict_keys(cx: &Cx<'_>) -> [String; 3] {
    [cx.r.key("h"), cx.r.key("o"), cx.r.key("seq")]
}

pub(super) fn dict(cx: &Cx<'_>, op: dict::Op) -> Result<Reply> {
    use dict::Op;
    let [h, o, seq] = dict_keys(cx);
    let ttl = cx.r.ttl();
    Ok(match op {
        Op::Get(k) => {
            let v: Option<Vec<u8>> =
                cx.run("dict get", |c| ::redis::cmd("HGET").arg(&h).arg(k).query(c))?;
            Reply::MaybeBytes(cx.open_maybe(v)?)
        }
        Op::Insert(k, v) => {
            let old: Option<Vec<u8>> = cx.run("dict insert", |c| {
                DICT_INSERT
                    .key(&h)
                    .key(&o)
                    .key(&seq)
                    .arg(ttl)
                    .arg(k)
                    .arg(cx.seal_item(&v))
                    .invoke(c)
            })?;
            Reply::MaybeBytes(cx.open_maybe(old)?)
        }
        Op::Remove(k) => {
            let old: Option<Vec<u8>> = cx.run("dict remove", |c| {
                DICT_REMOVE.key(&h).key(&o).arg(k).invoke(c)
            })?;
            Reply::MaybeBytes(cx.open_maybe(old)?)
        }
        Op::Contains(k) => Reply::Bool(cx.run("dict contains", |c| {
            ::redis::cmd("HEXISTS").arg(&h).arg(k).query(c)
        })?),
        Op::Len => Reply::U64(cx.run("dict len", |c| ::redis::cmd("HLEN").arg(&h).query(c))?),
        Op::Keys => Reply::List(cx.run("dict keys", |c| {
            ::redis::cmd("ZRANGE").arg(&o).arg(0).arg(-1).query(c)
        })?),
        Op::Values => {
            let vs: Vec<Vec<u8>> = cx.run("dict values", |c| {
                DICT_IN_ORDER.key(&h).key(&o).arg(0).invoke(c)
            })?;
            Reply::List(vs.into_iter().map(|v| cx.open(v)).collect::<Result<_>>()?)
        }
        Op::Items => Reply::Pairs(items(cx, &h, &o)?),
        Op::Clear => {
            cx.run("dict clear", |c| {
                ::redis::cmd("DEL").arg(&h).arg(&o).query::<i64>(c)
            })?;
            Reply::Unit
        }
        Op::Update(items) => {
            if !items.is_empty() {
                let mut inv = DICT_UPDATE.prepare_invoke();
                inv.key(&h).key(&o).key(&seq).arg(ttl);
                for (k, v) in &items {
                    inv.arg(k.as_slice()).arg(cx.seal_item(v));
                }
                cx.run("dict update", |c| inv.invoke::<i64>(c))?;
            }
            Reply::Unit
        }
        Op::PopItem => {
            let p: Vec<Vec<u8>> =
                cx.run("dict pop_item", |c| DICT_POP_ITEM.key(&h).key(&o).invoke(c))?;
            match <[Vec<u8>; 2]>::try_from(p) {
                Ok([k, v]) => Reply::MaybePair(Some((k, cx.open(v)?))),
                Err(_) => Reply::MaybePair(None),
            }
        }
        Op::SetDefault(k, v) => {
            let cur: Vec<u8> = cx.run("dict set_default", |c| {
                DICT_SET_DEFAULT
                    .key(&h)
                    .key(&o)
                    .key(&seq)
                    .arg(ttl)
                    .arg(k)
                    .arg(cx.seal_item(&v))
                    .invoke(c)
            })?;
            Reply::Bytes(cx.open(cur)?)
        }
    })
}

fn items(cx: &Cx<'_>, h: &str, o: &str) -> Result<Vec<(Bytes, Bytes)>> {
    let flat: Vec<Vec<u8>> = cx.run("dict items", |c| {
        DICT_IN_ORDER.key(h).key(o).arg(1).invoke(c)
    })?;
    let mut out = Vec::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, cx.open(v)?));
    }
    Ok(out)
}

pub(super) fn namespace(cx: &Cx<'_>, op: namespace::Op) -> Result<Reply> {
    use namespace::Op;
    let as_dict = match op {
        Op::Get(n) => dict::Op::Get(n.into_bytes()),
        Op::Set(n, v) => {
            dict(cx, dict::Op::Insert(n.into_bytes(), v))?;
            return Ok(Reply::Unit);
        }
        Op::Remove(n) => dict::Op::Remove(n.into_bytes()),
        Op::Names => {
            let names = match dict(cx, dict::Op::Keys)? {
                Reply::List(v) => v,
                _ => Vec::new(),
            };
            return Ok(Reply::Strings(
                names
                    .into_iter()
                    .map(|n| {
                        String::from_utf8(n).map_err(|_| {
                            Error::new(ErrorKind::Protocol, "a namespace name is not UTF-8")
                        })
                    })
                    .collect::<Result<_>>()?,
            ));
        }
    };
    dict(cx, as_dict)
}

static LIST_SET: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local n = redis.call('LLEN', KEYS[1])
local i = tonumber(ARGV[1])
if i < 0 then i = n + i end
if i < 0 or i >= n then return {0, n} end
redis.call('LSET', KEYS[1], i, ARGV[2])
return {1, n}
"#,
    )
});

static LIST_INSERT: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local l = KEYS[1]
local n = redis.call('LLEN', l)
local i = tonumber(ARGV[2])
if i < 0 then i = math.max(n + i, 0) else i = math.min(i, n) end
if i == n then
  redis.call('RPUSH', l, ARGV[3])
elseif i == 0 then
  redis.call('LPUSH', l, ARGV[3])
else
  local tail = redis.call('LRANGE', l, i, -1)
  redis.call('LTRIM', l, 0, i - 1)
  redis.call('RPUSH', l, ARGV[3])
  for j = 1, #tail, 1000 do
    redis.call('RPUSH', l, unpack(tail, j, math.min(j + 999, #tail)))
  end
end
touch(ARGV[1], l)
return 1
"#,
    )
});

static LIST_REVERSE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local l = KEYS[1]
local all = redis.call('LRANGE', l, 0, -1)
if #all < 2 then return 1 end
redis.call('DEL', l)
for j = 1, #all, 1000 do
  redis.call('LPUSH', l, unpack(all, j, math.min(j + 999, #all)))
end
touch(ARGV[1], l)
return 1
"#,
    )
});

static LIST_PUSH: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
for j = 2, #ARGV, 1000 do
  redis.call('RPUSH', KEYS[1], unpack(ARGV, j, math.min(j + 999, #ARGV)))
end
touch(ARGV[1], KEYS[1])
return 1
"#,
    )
});

fn out_of_range(i: i64, n: u64) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("index {i} out of range for length {n}"),
    )
}

pub(super) fn list(cx: &Cx<'_>, op: list::Op) -> Result<Reply> {
    use list::Op;
    let l = cx.r.key("l");
    let ttl = cx.r.ttl();
    let push = |items: &[Item]| -> Result<()> {
        let mut inv = LIST_PUSH.prepare_invoke();
        inv.key(&l).arg(ttl);
        for x in items {
            inv.arg(cx.seal_item(x));
        }
        cx.run("list push", |c| inv.invoke::<i64>(c))?;
        Ok(())
    };
    Ok(match op {
        Op::Push(x) => {
            push(std::slice::from_ref(&x))?;
            Reply::Unit
        }
        Op::Extend(xs) => {
            if !xs.is_empty() {
                push(&xs)?;
            }
            Reply::Unit
        }
        Op::Get(i) => {
            let v: Option<Vec<u8>> = cx.run("list get", |c| {
                ::redis::cmd("LINDEX").arg(&l).arg(i).query(c)
            })?;
            match v {
                Some(v) => Reply::Bytes(cx.open(v)?),
                None => {
                    let n: u64 = cx.run("list len", |c| ::redis::cmd("LLEN").arg(&l).query(c))?;
                    return Err(out_of_range(i, n));
                }
            }
        }
        Op::Set(i, x) => {
            let (ok, n): (i64, u64) = cx.run("list set", |c| {
                LIST_SET.key(&l).arg(i).arg(cx.seal_item(&x)).invoke(c)
            })?;
            if ok == 0 {
                return Err(out_of_range(i, n));
            }
            Reply::Unit
        }
        Op::Len => Reply::U64(cx.run("list len", |c| ::redis::cmd("LLEN").arg(&l).query(c))?),
        Op::Pop => {
            let v: Option<Vec<u8>> =
                cx.run("list pop", |c| ::redis::cmd("RPOP").arg(&l).query(c))?;
            Reply::MaybeBytes(cx.open_maybe(v)?)
        }
        Op::Insert(i, x) => {
            cx.run("list insert", |c| {
                LIST_INSERT
                    .key(&l)
                    .arg(ttl)
                    .arg(i)
                    .arg(cx.seal_item(&x))
                    .invoke::<i64>(c)
            })?;
            Reply::Unit
        }
        Op::Remove(x) => {
            let n: i64 = cx.run("list remove", |c| {
                ::redis::cmd("LREM")
                    .arg(&l)
                    .arg(1)
                    .arg(cx.seal(&x))
                    .query(c)
            })?;
            if n == 0 {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    "list.remove(x): x not in list",
                ));
            }
            Reply::Unit
        }
        Op::Reverse => {
            cx.run("list reverse", |c| {
                LIST_REVERSE.key(&l).arg(ttl).invoke::<i64>(c)
            })?;
            Reply::Unit
        }
        Op::Clear => {
            cx.run("list clear", |c| {
                ::redis::cmd("DEL").arg(&l).query::<i64>(c)
            })?;
            Reply::Unit
        }
        Op::ToVec => {
            let vs: Vec<Vec<u8>> = cx.run("list to_vec", |c| {
                ::redis::cmd("LRANGE").arg(&l).arg(0).arg(-1).query(c)
            })?;
            Reply::List(vs.into_iter().map(|v| cx.open(v)).collect::<Result<_>>()?)
        }
    })
}

pub(super) fn array(cx: &Cx<'_>, op: array::Op) -> Result<Reply> {
    use array::Op;
    list(
        cx,
        match op {
            Op::Len => list::Op::Len,
            Op::Get(i) => list::Op::Get(i),
            Op::Set(i, x) => list::Op::Set(i, x),
            Op::ToVec => list::Op::ToVec,
        },
    )
}

pub(super) fn value(cx: &Cx<'_>, op: value::Op) -> Result<Reply> {
    use value::Op;
    let v = cx.r.key("v");
    Ok(match op {
        Op::Get => {
            let b: Option<Vec<u8>> =
                cx.run("value get", |c| ::redis::cmd("GET").arg(&v).query(c))?;
            match b {
                Some(b) => Reply::Bytes(cx.open(b)?),
                None => {
                    return Err(Error::new(
                        ErrorKind::NotFound,
                        format!(
                            "the value {} is gone from Redis (deleted, or its lease ran out)",
                            cx.r.base
                        ),
                    ));
                }
            }
        }
        Op::Set(x) => {
            let ttl = cx.r.ttl();
            cx.run("value set", |c| {
                let mut cmd = ::redis::cmd("SET");
                cmd.arg(&v).arg(cx.seal_item(&x));
                if ttl > 0 {
                    cmd.arg("PX").arg(ttl);
                }
                cmd.query::<()>(c)
            })?;
            Reply::Unit
        }
    })
}
