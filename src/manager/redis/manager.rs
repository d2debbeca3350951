//! `Manager::redis` and the constructors of named objects (feature `redis`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::{DEFAULT_LEASE, Remote, item};
use crate::error::{Error, ErrorKind, Result};
use crate::listener::AuthKey;
use crate::manager::home::Home;
use crate::manager::kinds::Init;
use crate::manager::proxy::FromHome;
use crate::manager::{
    ArrayProxy, BarrierProxy, BoundedSemaphoreProxy, ConditionProxy, DictProxy, EventProxy, Inner,
    JoinableQueueProxy, ListProxy, LockProxy, Manager, NamespaceProxy, QueueProxy, RLockProxy,
    SemaphoreProxy, ValueProxy,
};

/// Declares `Manager::<kind>_named(name, ...)`.
macro_rules! named {
    ($(#[$m:meta])* $fn:ident $(<$($g:ident),*>)? ($($arg:ident: $t:ty),*) -> $proxy:ty, $init:expr, $ex:literal) => {
        $(#[$m])*
        ///
        /// Opens the object of this name in the manager's Redis, making it first if
        /// there is none (atomically: two hosts racing make one object). Processes on
        /// any host that name it share it. It lives until [`delete`](Manager::delete).
        ///
        /// # Errors
        ///
        /// [`ErrorKind::Unsupported`] on a manager that is not in Redis;
        /// [`ErrorKind::InvalidInput`] for a name that is empty, longer than 200 bytes
        /// or holds `{` or `}`, or that names an object of another kind; Redis errors
        /// as [`Manager::redis`].
        ///
        /// # Examples
        ///
        /// ```
        /// use multiprocess::{broker::RedisServer, Manager};
        /// let redis = RedisServer::start()?;
        /// let m = Manager::redis(redis.url(), b"key")?;
        #[doc = $ex]
        /// # Ok::<(), multiprocess::Error>(())
        /// ```
        pub fn $fn $(<$($g),*>)? (&self, name: &str $(, $arg: $t)*) -> Result<$proxy> {
            #[allow(clippy::redundant_closure_call)]
            let init = ($init)($($arg),*)?;
            self.named(name, init)
        }
    };
}

impl Manager {
    /// A manager whose objects live in the Redis at `url` (`redis://host:port/db`,
    /// `redis+unix:///path.sock`), sealed with `authkey` (HMAC-SHA256; `None` for no
    /// seal): the same constructors and proxy types as a server manager, so code
    /// taking a `DictProxy` or a `LockProxy` works with either; plus objects by name
    /// (`dict_named`, ...) that processes on any host share.
    ///
    /// Leases last ten seconds ([`redis_with_lease`](Manager::redis_with_lease) for
    /// another length). See the module docs of `manager/redis` (and its `data`,
    /// `sync`, `queue` files) for the semantics of each kind, which operations are
    /// atomic, and how objects are cleaned up; the README's "Beyond one machine".
    ///
    /// [`shutdown`](Manager::shutdown) does nothing (there is no server process);
    /// [`get`](Manager::get), [`create`](Manager::create) and
    /// [`registered`](Manager::registered) are [`ErrorKind::Unsupported`] (use the
    /// `*_named` constructors); [`object_count`](Manager::object_count) counts the
    /// objects of every Redis manager in that database.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for a malformed URL; [`ErrorKind::Disconnected`] or
    /// [`ErrorKind::Timeout`] when Redis cannot be reached within five seconds (every
    /// later call is bounded the same way: an unreachable Redis is an error, never a
    /// hang).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{broker::RedisServer, Manager};
    /// let redis = RedisServer::start()?; // or an existing server's URL
    /// let m = Manager::redis(redis.url(), b"cluster key")?;
    /// let d = m.dict::<String, u32>()?;
    /// d.insert("a".into(), 1)?;
    /// assert_eq!(d.get(&"a".into())?, Some(1));
    /// let counts = m.dict_named::<String, u32>("counts")?; // shared by name
    /// counts.insert("hits".into(), 1)?;
    /// assert!(m.delete("counts")?);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn redis(url: &str, authkey: impl Into<AuthKey>) -> Result<Manager> {
        Manager::redis_with_lease(url, authkey, DEFAULT_LEASE)
    }

    /// [`Manager::redis`] with leases of `lease` (at least 100 ms): how long a lock,
    /// a semaphore permit or a queue item taken by a process that died or stopped
    /// stays taken, and how long an object without a name outlives its last holder
    /// that died. The keeper thread renews every third of a lease.
    ///
    /// # Errors
    ///
    /// As [`Manager::redis`]; [`ErrorKind::InvalidInput`] for a lease under 100 ms.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiprocess::{broker::RedisServer, Manager};
    /// let redis = RedisServer::start()?;
    /// let m = Manager::redis_with_lease(redis.url(), b"key", Duration::from_secs(2))?;
    /// assert!(m.lock()?.try_acquire()?.is_some());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn redis_with_lease(
        url: &str,
        authkey: impl Into<AuthKey>,
        lease: Duration,
    ) -> Result<Manager> {
        let authkey = authkey.into();
        let remote = Remote::open(url, &authkey, lease)?;
        Ok(Manager {
            inner: Arc::new(Inner {
                address: url.to_string(),
                authkey,
                process: None::<Mutex<_>>,
                redis: Some(remote),
            }),
        })
    }

    /// Is this manager's state in Redis ([`Manager::redis`])?
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{broker::RedisServer, Manager};
    /// let redis = RedisServer::start()?;
    /// assert!(Manager::redis(redis.url(), b"key")?.is_redis());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn is_redis(&self) -> bool {
        self.inner.redis.is_some()
    }

    /// Deletes the named object `name` (every key of it); `false` if there was none.
    /// Proxies of it still held find it empty or gone.
    ///
    /// # Errors
    ///
    /// As the `*_named` constructors.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{broker::RedisServer, Manager};
    /// let redis = RedisServer::start()?;
    /// let m = Manager::redis(redis.url(), b"key")?;
    /// m.list_named::<u8>("l")?.push(1)?;
    /// assert!(m.delete("l")?);
    /// assert!(!m.delete("l")?);
    /// assert!(m.list_named::<u8>("l")?.is_empty()?);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn delete(&self, name: &str) -> Result<bool> {
        self.remote()?.delete(name)
    }

    fn remote(&self) -> Result<&Remote> {
        self.inner.redis.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                "objects by name are made by a Redis manager (Manager::redis); a server \
                 manager registers them with ManagerBuilder::register and finds them \
                 with get",
            )
        })
    }

    fn named<P: FromHome>(&self, name: &str, init: Init) -> Result<P> {
        Ok(P::from_home(Home::redis(
            self.remote()?.make(init, Some(name))?,
        )))
    }

    named!(
        /// A dict by name (see [`dict`](Manager::dict)).
        dict_named<K, V>() -> DictProxy<K, V>,
        || Ok::<_, Error>(Init::Dict(Vec::new())),
        "let d = m.dict_named::<String, i64>(\"counts\")?;\nd.insert(\"x\".into(), 1)?;"
    );
    named!(
        /// A list by name (see [`list`](Manager::list)).
        list_named<T>() -> ListProxy<T>,
        || Ok::<_, Error>(Init::List(Vec::new())),
        "let l = m.list_named::<u32>(\"log\")?;\nl.push(7)?;"
    );
    named!(
        /// A queue by name (see [`queue`](Manager::queue)).
        queue_named<T>() -> QueueProxy<T>,
        || Ok::<_, Error>(Init::Queue { maxsize: None, joinable: false }),
        "let q = m.queue_named::<String>(\"jobs\")?;\nq.put(\"a\".into())?;\nassert_eq!(q.get()?, \"a\");"
    );
    named!(
        /// A queue of at most `maxsize` items by name (see
        /// [`bounded_queue`](Manager::bounded_queue)); the bound of the first maker
        /// holds.
        bounded_queue_named<T>(maxsize: u32) -> QueueProxy<T>,
        |maxsize: u32| Ok::<_, Error>(Init::Queue { maxsize: (maxsize > 0).then_some(u64::from(maxsize)), joinable: false }),
        "let q = m.bounded_queue_named::<u8>(\"q\", 1)?;\nq.put(1)?;\nassert!(q.is_full()?);"
    );
    named!(
        /// A joinable queue by name (see [`joinable_queue`](Manager::joinable_queue)).
        joinable_queue_named<T>() -> JoinableQueueProxy<T>,
        || Ok::<_, Error>(Init::Queue { maxsize: None, joinable: true }),
        "let q = m.joinable_queue_named::<u8>(\"work\")?;\nq.put(1)?;\nq.get()?;\nq.task_done()?;\nq.join()?;"
    );
    named!(
        /// A bounded joinable queue by name.
        bounded_joinable_queue_named<T>(maxsize: u32) -> JoinableQueueProxy<T>,
        |maxsize: u32| Ok::<_, Error>(Init::Queue { maxsize: (maxsize > 0).then_some(u64::from(maxsize)), joinable: true }),
        "let q = m.bounded_joinable_queue_named::<u8>(\"w\", 2)?;\nq.put(1)?;"
    );
    named!(
        /// A lock by name (see [`lock`](Manager::lock)): a lease lock shared by
        /// every host that names it.
        lock_named() -> LockProxy,
        || Ok::<_, Error>(Init::Lock),
        "let l = m.lock_named(\"resource\")?;\nlet g = l.acquire()?;\nassert!(l.fencing_token().is_some());\ndrop(g);"
    );
    named!(
        /// A re-entrant lock by name (see [`rlock`](Manager::rlock)).
        rlock_named() -> RLockProxy,
        || Ok::<_, Error>(Init::RLock),
        "let r = m.rlock_named(\"r\")?;\nlet a = r.acquire()?;\nlet b = r.acquire()?;\ndrop((b, a));"
    );
    named!(
        /// A semaphore by name (see [`semaphore`](Manager::semaphore)); the value of
        /// the first maker holds.
        semaphore_named(value: u32) -> SemaphoreProxy,
        |value: u32| Ok::<_, Error>(Init::Semaphore { value: u64::from(value), bounded: false }),
        "let s = m.semaphore_named(\"slots\", 2)?;\nassert_eq!(s.get_value()?, 2);"
    );
    named!(
        /// A bounded semaphore by name.
        bounded_semaphore_named(value: u32) -> BoundedSemaphoreProxy,
        |value: u32| Ok::<_, Error>(Init::Semaphore { value: u64::from(value), bounded: true }),
        "let s = m.bounded_semaphore_named(\"b\", 1)?;\nassert!(s.release().is_err());"
    );
    named!(
        /// A condition by name (see [`condition`](Manager::condition)).
        condition_named() -> ConditionProxy,
        || Ok::<_, Error>(Init::Condition),
        "let c = m.condition_named(\"c\")?;\nlet _g = c.acquire()?;\nc.notify_all()?;"
    );
    named!(
        /// An event by name (see [`event`](Manager::event)).
        event_named() -> EventProxy,
        || Ok::<_, Error>(Init::Event),
        "let e = m.event_named(\"ready\")?;\ne.set()?;\nassert!(e.is_set()?);"
    );
    named!(
        /// A barrier by name (see [`barrier`](Manager::barrier)); the parties of the
        /// first maker hold.
        barrier_named(parties: u32) -> BarrierProxy,
        |parties: u32| Ok::<_, Error>(Init::Barrier(parties)),
        "let b = m.barrier_named(\"b\", 1)?;\nassert_eq!(b.wait()?, 0);"
    );
    named!(
        /// A namespace by name (see [`namespace`](Manager::namespace)).
        namespace_named() -> NamespaceProxy,
        || Ok::<_, Error>(Init::Namespace),
        "let ns = m.namespace_named(\"config\")?;\nns.set(\"x\", &1u8)?;"
    );

    /// A value by name, made with `x` if there is none (see
    /// [`value`](Manager::value)).
    ///
    /// # Errors
    ///
    /// As [`dict_named`](Manager::dict_named); [`ErrorKind::Serialize`] if `x` does
    /// not encode.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{broker::RedisServer, Manager};
    /// let redis = RedisServer::start()?;
    /// let m = Manager::redis(redis.url(), b"key")?;
    /// let v = m.value_named("total", 0.5)?;
    /// assert_eq!(m.value_named("total", 9.0)?.get()?, 0.5); // already made
    /// # drop(v);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn value_named<T: Serialize>(&self, name: &str, x: T) -> Result<ValueProxy<T>> {
        self.named(name, Init::Value(item(&x)?))
    }

    /// An array by name, made from `items` if there is none (see
    /// [`array`](Manager::array)).
    ///
    /// # Errors
    ///
    /// As [`value_named`](Manager::value_named).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{broker::RedisServer, Manager};
    /// let redis = RedisServer::start()?;
    /// let m = Manager::redis(redis.url(), b"key")?;
    /// let a = m.array_named("a", &[1, 2, 3])?;
    /// assert_eq!(a.to_vec()?, vec![1, 2, 3]);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn array_named<T: Serialize>(&self, name: &str, items: &[T]) -> Result<ArrayProxy<T>> {
        let v = items.iter().map(item).collect::<Result<Vec<_>>>()?;
        self.named(name, Init::Array(v))
    }
}
