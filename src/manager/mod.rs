//! Managers: a server process that holds shared objects, and typed proxies that
//! operate on them from any process, as Python's `multiprocessing.Manager()` and
//! `multiprocessing.managers.BaseManager`.
//!
//! ## When to use a manager
//!
//! The crate's own [`Queue`](crate::Queue), [`Lock`](crate::Lock) and
//! [`Value`](crate::Value) live in shared memory: they are fast, and are shared by
//! passing them to children. A manager's objects live in one server process and are
//! reached through a socket: slower (a round trip per call), but any process that
//! knows the manager's address and authkey can use them, including processes with no
//! common parent and processes on other hosts (over TCP), and they hold any
//! serializable type (a dict of strings to vectors, a list of structs).
//!
//! ## Starting a manager and making objects
//!
//! [`Manager::start`] starts the server (a child process named `Manager-N`, with the
//! default start method; [`Context::manager`](crate::Context::manager) for another).
//! Its methods make objects in the server and return proxies:
//!
//! ```
//! use multiprocess::{DictProxy, ListProxy, Manager, Process};
//!
//! fn f((d, l): (DictProxy<String, Option<String>>, ListProxy<i32>)) {
//!     d.insert("1".into(), Some("1".into())).unwrap();
//!     d.insert("0.25".into(), None).unwrap();
//!     l.reverse().unwrap();
//! }
//!
//! multiprocess::init();
//! let manager = Manager::start()?;
//! let d = manager.dict()?;
//! let l = manager.list_from(0..10)?;
//! let mut p = Process::new(f, (d.clone(), l.clone()));
//! p.start()?;
//! p.join()?;
//! assert_eq!(d.len()?, 2);
//! assert_eq!(l.to_vec()?, vec![9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
//! # Ok::<(), multiprocess::Error>(())
//! ```
//!
//! Proxies are serializable: pass them in a child's args under any start method, send
//! them through a queue or a connection, or store them in another manager object. The
//! first call from a process (or thread) connects to the server; later calls reuse
//! that connection.
//!
//! ## Authkeys and serialized proxies
//!
//! A serialized proxy carries the manager's address, the object's id and whether the
//! manager has an authkey, **never the key** (as Python, which refuses to pickle an
//! authkey): sending a proxy over a network gives nothing away. A process that decodes
//! a proxy presents the key that its *key ring* holds for the proxy's address, when it
//! first connects there:
//!
//! * the process that started the manager ([`Manager::start`], the builder,
//!   [`Manager::with_context`]) or reached it with [`Manager::connect`] has its key;
//! * a child started by this crate (any start method, pools included) begins with a
//!   copy of its parent's ring, sent in its start-up message over the private channel
//!   of the start (a socketpair, or the fork server's private socket), never a network;
//!   keys its parent learns later do not reach it;
//! * any other process adds a key with [`Manager::connect`] or [`add_authkey`].
//!
//! Without a key, a decoded proxy's calls fail with [`ErrorKind::Authentication`],
//! saying how to give one; once given, the same proxy works. A manager without a key
//! ([`AuthKey`] from `None`) needs no ring entry.
//!
//! ## Proxy types
//!
//! [`DictProxy`], [`ListProxy`], [`QueueProxy`], [`JoinableQueueProxy`], [`LockProxy`],
//! [`RLockProxy`], [`SemaphoreProxy`], [`BoundedSemaphoreProxy`], [`ConditionProxy`],
//! [`EventProxy`], [`BarrierProxy`], [`NamespaceProxy`], [`ValueProxy`], [`ArrayProxy`],
//! and [`ObjectProxy`] for your own types ([`SharedObject`]). Every call returns a
//! `Result`: the server may be gone.
//!
//! ## Lifetime
//!
//! Dropping the last [`Manager`] handle (or [`Manager::shutdown`]) stops the server;
//! proxies used afterwards fail with [`ErrorKind::Disconnected`]. The server never
//! outlives the process that started it, even one killed by `SIGKILL`. An object lives
//! while a proxy of it does, in any process (proxies count references, as Python's
//! do; see [`Manager::object_count`]).
//!
//! ## Remote managers
//!
//! A [`ManagerServer`] serves named objects at an address you choose, with an authkey,
//! from your own process, until asked to stop (Python's `BaseManager.register` plus
//! `get_server().serve_forever()`); [`Manager::connect`] reaches it from anywhere and
//! [`Manager::get`] returns a typed proxy by name. See `examples/manager_server.rs` and
//! `examples/manager_client.rs`.
//!
//! Over TCP, the authkey is the only protection: anyone who can reach the port can try
//! to log in, and after the login the traffic is not encrypted (the handshake proves
//! both sides know the key without sending it, as Python's). Bind a loopback address
//! unless other hosts must connect, and then only on a network you trust (or through
//! an SSH tunnel or a VPN).
//!
//! ```
//! use multiprocess::{Manager, ManagerServer, QueueProxy, Served};
//!
//! multiprocess::init();
//! // In the server program:
//! let server = ManagerServer::bind("127.0.0.1:0", b"abracadabra")?;
//! server.register("get_queue", Served::queue());
//! let address = server.address().to_string();
//! let s = server.clone();
//! let t = std::thread::spawn(move || s.serve_forever());
//!
//! // In a client program that knows the address and the key:
//! let m = Manager::connect(&address, b"abracadabra")?;
//! let q: QueueProxy<String> = m.get("get_queue")?;
//! q.put("hello".into())?;
//! assert_eq!(q.get()?, "hello");
//!
//! server.shutdown();
//! t.join().unwrap()?;
//! # Ok::<(), multiprocess::Error>(())
//! ```
//!
//! ## Managers in Redis
//!
//! With the `redis` feature, [`Manager::redis`] keeps the objects in Redis instead of
//! a server process: the same constructors and proxy types (a function taking a
//! [`DictProxy`] works with either), objects by name shared by every host
//! ([`Manager::dict_named`], [`Manager::lock_named`], ...), locks with leases, fencing
//! tokens and dead-owner detection ([`LockProxy::fencing_token`],
//! [`LockProxy::owner_died`]), semaphore permits and queue items that come back from
//! a dead holder. The semantics of each kind, and which operations are atomic, are in
//! the design notes of `src/manager/redis/`. See `examples/manager_lock_redis.rs`.
//!
//! # Caveats
//!
//! * Each call is a round trip to the server (a few microseconds on one host), so a
//!   manager dict is far slower than a local one; batch with `update`, `extend`,
//!   `items`, `to_vec` where you can.
//! * Read-modify-write sequences (`v.set(v.get()? + 1)`) are not atomic: hold a
//!   [`LockProxy`] around them, as in Python.
//! * Values are compared as encoded bytes (see `DictProxy`).

mod client;
mod handler;
mod home;
mod kinds;
mod protocol;
mod proxy;
#[cfg(feature = "redis")]
mod redis;
mod served;
mod server;

pub use kinds::array::ArrayProxy;
pub use kinds::barrier::BarrierProxy;
pub use kinds::condition::ConditionProxy;
pub use kinds::custom::{ObjectProxy, SharedObject, invoke};
pub use kinds::dict::DictProxy;
pub use kinds::event::EventProxy;
pub use kinds::list::ListProxy;
pub use kinds::lock::{LockProxy, ProxyGuard, RLockProxy};
pub use kinds::namespace::NamespaceProxy;
pub use kinds::queue::{JoinableQueueProxy, QueueProxy};
pub use kinds::semaphore::{BoundedSemaphoreProxy, SemaphoreProxy};
pub use kinds::value::ValueProxy;
pub use protocol::encode_args;
pub use proxy::Proxy;
pub use served::Served;

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use self::client::request;
use self::home::encode_item;
use self::kinds::{Init, Object};
use self::protocol::{Plain, Reply, Request};
use self::served::ServedInner;
use self::server::{Factory, Server};
use crate::error::{Error, ErrorKind, Result};
use crate::listener::{AuthKey, Limits, Listener};
use crate::process::{Context, Process, default_context, keyring};
use crate::wire::codec;

/// How long `shutdown` waits for the server to exit before killing it.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A handle on a manager's server: Python's `multiprocessing.Manager()` (started by
/// this process) or `BaseManager(address, authkey).connect()` (someone else's).
///
/// Clone it freely; the server started by [`start`](Manager::start) stops when the
/// last clone drops. See the [module docs](self) for a tour.
///
/// # Examples
///
/// ```
/// multiprocess::init();
/// let m = multiprocess::Manager::start()?;
/// let q = m.queue::<u32>()?;
/// q.put(1)?;
/// assert_eq!(q.get()?, 1);
/// m.shutdown()?;
/// assert!(q.try_get().is_err());
/// # Ok::<(), multiprocess::Error>(())
/// ```
#[derive(Clone)]
pub struct Manager {
    inner: Arc<Inner>,
}

struct Inner {
    address: String,
    authkey: AuthKey,
    process: Option<Mutex<Option<Process<ServerArgs>>>>,
    /// The Redis of a manager made by `Manager::redis` (its objects live there).
    #[cfg(feature = "redis")]
    redis: Option<redis::Remote>,
}

impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manager")
            .field("address", &self.inner.address)
            .field("owned", &self.inner.process.is_some())
            .finish()
    }
}

/// Builds a [`Manager`] with a chosen address, authkey, start method or registered
/// objects. Python's `SyncManager(address, authkey)` before `start()`.
///
/// # Examples
///
/// ```
/// use multiprocess::{Manager, Served, StartMethod, get_context};
/// multiprocess::init();
/// let name = format!("@doc-manager-{}", std::process::id());
/// let m = Manager::builder()
///     .address(&name)
///     .authkey(b"secret")
///     .context(get_context(StartMethod::Spawn))
///     .register("jobs", Served::queue())
///     .start()?;
/// assert_eq!(m.address(), name);
/// m.get::<multiprocess::QueueProxy<String>>("jobs")?.put("x".into())?;
/// # Ok::<(), multiprocess::Error>(())
/// ```
#[derive(Debug, Default)]
#[must_use = "a builder does nothing until start()"]
pub struct ManagerBuilder {
    address: Option<String>,
    authkey: Option<AuthKey>,
    ctx: Option<Context>,
    named: Vec<(String, Served)>,
    types: Vec<(String, Factory)>,
    lease: Option<Duration>,
    limits: Option<Limits>,
}

/// What the server process is given.
#[derive(Serialize, Deserialize)]
struct ServerArgs {
    socket: ListeningSocket,
    address: String,
    authkey: AuthKey,
    named: Vec<(String, Init)>,
    types: Vec<(String, usize)>,
    lease: Option<Duration>,
    limits: Option<Limits>,
}

/// A bound listening socket handed to the server process (as an fd).
struct ListeningSocket {
    fd: OwnedFd,
    unix: bool,
}

impl Serialize for ListeningSocket {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        struct Fd<'a>(BorrowedFd<'a>);
        impl Serialize for Fd<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                codec::serialize_fd(self.0, s)
            }
        }
        (Fd(self.fd.as_fd()), self.unix).serialize(s)
    }
}

impl<'de> Deserialize<'de> for ListeningSocket {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Fd(OwnedFd);
        impl<'de> Deserialize<'de> for Fd {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                codec::deserialize_fd(d).map(Fd)
            }
        }
        let (Fd(fd), unix) = <(Fd, bool)>::deserialize(d)?;
        Ok(ListeningSocket { fd, unix })
    }
}

/// The manager server process's main.
fn server_main(args: ServerArgs) {
    let listener = Listener::from_fd(
        args.socket.fd,
        args.socket.unix,
        args.address.clone(),
        args.authkey,
    );
    if let Some(l) = args.limits {
        listener.set_limits(l);
    }
    let server = match Server::new() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("manager {}: cannot start: {e}", args.address);
            std::process::exit(1);
        }
    };
    for (name, init) in args.named {
        server.register(&name, Object::new(init));
    }
    if let Some(d) = args.lease {
        server.set_lease(d);
    }
    for (typeid, off) in args.types {
        #[allow(unsafe_code)]
        // SAFETY: `off` was made by `code_offset` from a `Factory` in the process that
        // started this server from the same binary (`ManagerBuilder::register_type`).
        let factory = unsafe { crate::wire::code::code_at::<Factory>(off) };
        server.register_type(&typeid, factory);
    }
    let parent = crate::process::parent_process();
    if let Err(e) = server.serve(&listener, parent.as_ref().and_then(|p| p.sentinel())) {
        eprintln!("manager {}: {e}", args.address);
    }
    drop(listener); // removes a socket file
    // Connection threads may still be blocked in calls: end the process now.
    std::process::exit(0);
}

fn default_address() -> Result<String> {
    static N: AtomicU32 = AtomicU32::new(0);
    let r = crate::listener::random_bytes::<6>()?;
    let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!(
        "@multiprocess-manager-{}-{}-{hex}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

impl ManagerBuilder {
    /// Serves at `address` (see [`Listener`] for the syntax) instead
    /// of a fresh abstract socket name.
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let m = multiprocess::Manager::builder().address("127.0.0.1:0").start()?;
    /// assert!(m.address().starts_with("127.0.0.1:"));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn address(mut self, address: &str) -> Self {
        self.address = Some(address.to_string());
        self
    }

    /// Uses `authkey` instead of a fresh random one.
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let m = multiprocess::Manager::builder().authkey("k").start()?;
    /// assert_eq!(m.authkey().as_bytes(), Some(&b"k"[..]));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn authkey(mut self, authkey: impl Into<AuthKey>) -> Self {
        self.authkey = Some(authkey.into());
        self
    }

    /// Starts the server with `ctx`'s start method.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{Manager, StartMethod, get_context};
    /// multiprocess::init();
    /// let m = Manager::builder().context(get_context(StartMethod::Fork)).start()?;
    /// # drop(m);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn context(mut self, ctx: Context) -> Self {
        self.ctx = Some(ctx);
        self
    }

    /// Registers a named object, for [`Manager::get`] (Python's
    /// `register(typeid, callable)` for a shared object). Only the built-in kinds
    /// (not [`Served::object`], which cannot travel to the server process: use
    /// [`register_type`](ManagerBuilder::register_type), or a [`ManagerServer`]).
    ///
    /// # Examples
    ///
    /// See [`ManagerBuilder`].
    pub fn register(mut self, name: &str, object: Served) -> Self {
        self.named.push((name.to_string(), object));
        self
    }

    /// Registers a custom type: [`Manager::create`] makes an object with `factory` in
    /// the server (Python's `register('Foo', Foo)`, then `manager.Foo()`).
    ///
    /// # Examples
    ///
    /// See [`ObjectProxy`].
    pub fn register_type(mut self, typeid: &str, factory: fn() -> Box<dyn SharedObject>) -> Self {
        self.types.push((typeid.to_string(), factory));
        self
    }

    /// How long a serialized proxy keeps its object alive when no live proxy owns it
    /// (default two minutes): long enough for the receiver (a child, a queue's reader)
    /// to decode it. See [`Manager::object_count`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// multiprocess::init();
    /// let m = multiprocess::Manager::builder().lease(Duration::from_secs(10)).start()?;
    /// # drop(m);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn lease(mut self, d: Duration) -> Self {
        self.lease = Some(d);
        self
    }

    /// The limits the server puts on its clients (see [`Limits`] for what they are
    /// and their defaults: a 10 s login deadline, at most 64 connections logging in,
    /// 64 MiB per request, 60 s for the rest of a request once started, 256 MiB for
    /// partly received requests together). A client that breaks one loses its
    /// connection; the server and the other clients go on.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiprocess::Limits;
    /// multiprocess::init();
    /// let mut limits = Limits::default();
    /// limits.max_message_size = 1 << 20;
    /// let m = multiprocess::Manager::builder().limits(limits).start()?;
    /// # drop(m);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// Binds the address and starts the server process (named `Manager-N`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::AlreadyExists`] if the address is taken; [`ErrorKind::InvalidInput`]
    /// for a [`Served::object`] registration; otherwise as
    /// [`Process::start`](crate::Process::start).
    ///
    /// # Examples
    ///
    /// See [`ManagerBuilder`].
    pub fn start(self) -> Result<Manager> {
        let address = match self.address {
            Some(a) => a,
            None => default_address()?,
        };
        let authkey = match self.authkey {
            Some(k) => k,
            None => AuthKey::random()?,
        };
        let mut named = Vec::new();
        for (name, shared) in self.named {
            match shared.0 {
                ServedInner::Builtin(init) => named.push((name, init)),
                ServedInner::Custom(_) => {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "{name:?}: a custom object cannot be sent to a manager process; \
                             register a type with register_type, or serve it from a \
                             ManagerServer"
                        ),
                    ));
                }
            }
        }
        let types = self
            .types
            .into_iter()
            .map(|(t, f)| (t, crate::wire::code::code_offset(f as *const ())))
            .collect();
        let listener = Listener::bind(&address, authkey.clone())?;
        let shown = listener.address().to_string();
        let (fd, unix) = listener.into_fd();
        let args = ServerArgs {
            socket: ListeningSocket { fd, unix },
            address: shown.clone(),
            authkey: authkey.clone(),
            named,
            types,
            lease: self.lease,
            limits: self.limits,
        };
        let ctx = self.ctx.unwrap_or_else(default_context);
        let p = Process::new(server_main, args).context(ctx).daemon(true);
        let name = p.get_name().replacen("Process-", "Manager-", 1);
        let mut p = p.name(name);
        p.start()?;
        remember(&shown, &authkey);
        Ok(Manager {
            inner: Arc::new(Inner {
                address: shown,
                authkey,
                process: Some(Mutex::new(Some(p))),
                #[cfg(feature = "redis")]
                redis: None,
            }),
        })
    }
}

impl Manager {
    /// Starts a manager server with the default start method, a fresh abstract
    /// address and a random authkey: Python's `multiprocessing.Manager()`. The key
    /// joins this process's key ring until the server stops (see [`add_authkey`]):
    /// children started afterwards can decode and use its proxies.
    ///
    /// # Errors
    ///
    /// As [`Process::start`](crate::Process::start).
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let e = m.event()?;
    /// e.set()?;
    /// assert!(e.is_set()?);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn start() -> Result<Manager> {
        Manager::builder().start()
    }

    /// A [`ManagerBuilder`] to choose the address, authkey, start method and
    /// registrations.
    ///
    /// # Examples
    ///
    /// See [`ManagerBuilder`].
    pub fn builder() -> ManagerBuilder {
        ManagerBuilder::default()
    }

    /// As [`start`](Manager::start), with `ctx`'s start method.
    ///
    /// # Errors
    ///
    /// As [`start`](Manager::start).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{Manager, StartMethod, get_context};
    /// multiprocess::init();
    /// let m = Manager::with_context(get_context(StartMethod::Spawn))?;
    /// # drop(m);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn with_context(ctx: Context) -> Result<Manager> {
        Manager::builder().context(ctx).start()
    }

    /// Connects to a manager someone else serves (a [`ManagerServer`], or another
    /// program's [`Manager`]): Python's `BaseManager(address, authkey).connect()`.
    /// Dropping this handle leaves that server running. On success the key joins this
    /// process's key ring (see [`add_authkey`]), so proxies of that server that this
    /// process decodes, and the children it starts later, can use it.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`] if nobody serves there; [`ErrorKind::Authentication`]
    /// for a wrong key (the server is told too).
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let owner = multiprocess::Manager::start()?;
    /// let other = multiprocess::Manager::connect(owner.address(), owner.authkey())?;
    /// let d = other.dict::<u8, u8>()?;
    /// d.insert(1, 2)?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn connect(address: &str, authkey: impl Into<AuthKey>) -> Result<Manager> {
        let m = Manager {
            inner: Arc::new(Inner {
                address: address.to_string(),
                authkey: authkey.into(),
                process: None,
                #[cfg(feature = "redis")]
                redis: None,
            }),
        };
        m.registered()?;
        remember(&m.inner.address, &m.inner.authkey);
        Ok(m)
    }

    /// The address the server listens at.
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// assert!(m.address().starts_with("@multiprocess-manager-"));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn address(&self) -> &str {
        &self.inner.address
    }

    /// The authkey clients need.
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// assert_eq!(m.authkey().as_bytes().map(<[u8]>::len), Some(32));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn authkey(&self) -> &AuthKey {
        &self.inner.authkey
    }

    /// The server process's pid, for a manager this process started.
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// assert!(m.pid().is_some());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn pid(&self) -> Option<u32> {
        let p = self.inner.process.as_ref()?;
        p.lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|p| p.pid())
    }

    fn request(&self, req: &Request<Init, ()>) -> Result<Reply> {
        #[cfg(feature = "redis")]
        if self.inner.redis.is_some() {
            return Err(redis_unsupported());
        }
        request(&self.inner.address, Some(&self.inner.authkey), req)
    }

    fn make<P: Proxy + proxy::FromHome>(&self, init: Init) -> Result<P> {
        #[cfg(feature = "redis")]
        if let Some(r) = &self.inner.redis {
            return Ok(P::from_home(home::Home::redis(r.make(init, None)?)));
        }
        match self.request(&Request::Create(init))? {
            Reply::Created(id, _) => Ok(self.proxy(id)),
            r => Err(Error::new(
                ErrorKind::Protocol,
                format!("unexpected reply from the manager: {r:?}"),
            )),
        }
    }

    fn proxy<P: Proxy>(&self, id: u64) -> P {
        P::from_parts(self.inner.address.clone(), self.inner.authkey.clone(), id)
    }

    /// A new empty dict (Python's `manager.dict()`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`] if the server is gone; every constructor fails so.
    ///
    /// # Examples
    ///
    /// See [`DictProxy`].
    pub fn dict<K, V>(&self) -> Result<DictProxy<K, V>> {
        self.make(Init::Dict(Vec::new()))
    }

    /// A new empty list (Python's `manager.list()`).
    ///
    /// # Errors
    ///
    /// As [`dict`](Manager::dict).
    ///
    /// # Examples
    ///
    /// See [`ListProxy`].
    pub fn list<T>(&self) -> Result<ListProxy<T>> {
        self.make(Init::List(Vec::new()))
    }

    /// A new list holding `items` (Python's `manager.list(range(10))`).
    ///
    /// # Errors
    ///
    /// As [`dict`](Manager::dict); [`ErrorKind::Serialize`] if an item fails to encode.
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// assert_eq!(m.list_from(0..3)?.to_vec()?, vec![0, 1, 2]);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn list_from<T: Serialize>(
        &self,
        items: impl IntoIterator<Item = T>,
    ) -> Result<ListProxy<T>> {
        let v = items
            .into_iter()
            .map(|x| encode_item(&self.inner.address, &x))
            .collect::<Result<Vec<_>>>()?;
        self.make(Init::List(v))
    }

    /// A new unbounded queue (Python's `manager.Queue()`).
    ///
    /// # Errors
    ///
    /// As [`dict`](Manager::dict).
    ///
    /// # Examples
    ///
    /// See [`Manager`].
    pub fn queue<T>(&self) -> Result<QueueProxy<T>> {
        self.make(Init::Queue {
            maxsize: None,
            joinable: false,
        })
    }

    /// A new queue of at most `maxsize` items (Python's `manager.Queue(maxsize)`;
    /// `0` means unbounded, as in Python).
    ///
    /// # Errors
    ///
    /// As [`dict`](Manager::dict).
    ///
    /// # Examples
    ///
    /// See [`QueueProxy`].
    pub fn bounded_queue<T>(&self, maxsize: u32) -> Result<QueueProxy<T>> {
        self.make(Init::Queue {
            maxsize: (maxsize > 0).then_some(u64::from(maxsize)),
            joinable: false,
        })
    }

    /// A new unbounded joinable queue (Python's `manager.JoinableQueue()`).
    ///
    /// # Errors
    ///
    /// As [`dict`](Manager::dict).
    ///
    /// # Examples
    ///
    /// See [`JoinableQueueProxy`].
    pub fn joinable_queue<T>(&self) -> Result<JoinableQueueProxy<T>> {
        self.make(Init::Queue {
            maxsize: None,
            joinable: true,
        })
    }

    /// A new joinable queue of at most `maxsize` items (`0`: unbounded).
    ///
    /// # Errors
    ///
    /// As [`dict`](Manager::dict).
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let q = m.bounded_joinable_queue::<u8>(1)?;
    /// q.put(1)?;
    /// assert!(q.is_full()?);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn bounded_joinable_queue<T>(&self, maxsize: u32) -> Result<JoinableQueueProxy<T>> {
        self.make(Init::Queue {
            maxsize: (maxsize > 0).then_some(u64::from(maxsize)),
            joinable: true,
        })
    }

    /// A new lock (Python's `manager.Lock()`).
    ///
    /// # Errors
    ///
    /// As [`dict`](Manager::dict).
    ///
    /// # Examples
    ///
    /// See [`LockProxy`].
    pub fn lock(&self) -> Result<LockProxy> {
        self.make(Init::Lock)
    }

    /// A new re-entrant lock (Python's `manager.RLock()`).
    ///
    /// # Errors
    ///
    /// As [`dict`](Manager::dict).
    ///
    /// # Examples
    ///
    /// See [`RLockProxy`].
    pub fn rlock(&self) -> Result<RLockProxy> {
        self.make(Init::RLock)
    }

    /// A new semaphore with `value` permits (Python's `manager.Semaphore(value)`).
    ///
    /// # Errors
    ///
    /// As [`dict`](Manager::dict).
    ///
    /// # Examples
    ///
    /// See [`SemaphoreProxy`].
    pub fn semaphore(&self, value: u32) -> Result<SemaphoreProxy> {
        self.make(Init::Semaphore {
            value: u64::from(value),
            bounded: false,
        })
    }

    /// A new bounded semaphore (Python's `manager.BoundedSemaphore(value)`).
    ///
    /// # Errors
    ///
    /// As [`dict`](Manager::dict).
    ///
    /// # Examples
    ///
    /// See [`BoundedSemaphoreProxy`].
    pub fn bounded_semaphore(&self, value: u32) -> Result<BoundedSemaphoreProxy> {
        self.make(Init::Semaphore {
            value: u64::from(value),
            bounded: true,
        })
    }

    /// A new condition with its own re-entrant lock (Python's `manager.Condition()`).
    ///
    /// # Errors
    ///
    /// As [`dict`](Manager::dict).
    ///
    /// # Examples
    ///
    /// See [`ConditionProxy`].
    pub fn condition(&self) -> Result<ConditionProxy> {
        self.make(Init::Condition)
    }

    /// A new event (Python's `manager.Event()`).
    ///
    /// # Errors
    ///
    /// As [`dict`](Manager::dict).
    ///
    /// # Examples
    ///
    /// See [`EventProxy`].
    pub fn event(&self) -> Result<EventProxy> {
        self.make(Init::Event)
    }

    /// A new barrier for `parties` callers (Python's `manager.Barrier(parties)`).
    ///
    /// # Errors
    ///
    /// As [`dict`](Manager::dict); [`ErrorKind::InvalidInput`] for zero parties.
    ///
    /// # Examples
    ///
    /// See [`BarrierProxy`].
    pub fn barrier(&self, parties: u32) -> Result<BarrierProxy> {
        if parties == 0 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "a barrier needs at least one party",
            ));
        }
        self.make(Init::Barrier(parties))
    }

    /// A new empty namespace (Python's `manager.Namespace()`).
    ///
    /// # Errors
    ///
    /// As [`dict`](Manager::dict).
    ///
    /// # Examples
    ///
    /// See [`NamespaceProxy`].
    pub fn namespace(&self) -> Result<NamespaceProxy> {
        self.make(Init::Namespace)
    }

    /// A new value holding `x` (Python's `manager.Value(typecode, x)`).
    ///
    /// # Errors
    ///
    /// As [`dict`](Manager::dict); [`ErrorKind::Serialize`] if `x` fails to encode.
    ///
    /// # Examples
    ///
    /// See [`ValueProxy`].
    pub fn value<T: Serialize>(&self, x: T) -> Result<ValueProxy<T>> {
        self.make(Init::Value(encode_item(&self.inner.address, &x)?))
    }

    /// A new fixed-length array holding `items` (Python's
    /// `manager.Array(typecode, seq)`).
    ///
    /// # Errors
    ///
    /// As [`value`](Manager::value).
    ///
    /// # Examples
    ///
    /// See [`ArrayProxy`].
    pub fn array<T: Serialize>(&self, items: &[T]) -> Result<ArrayProxy<T>> {
        let v = items
            .iter()
            .map(|x| encode_item(&self.inner.address, x))
            .collect::<Result<Vec<_>>>()?;
        self.make(Init::Array(v))
    }

    /// A new object of the custom type registered as `typeid`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] if no such type is registered.
    ///
    /// # Examples
    ///
    /// See [`ObjectProxy`].
    pub fn create(&self, typeid: &str) -> Result<ObjectProxy> {
        match self.request(&Request::CreateCustom(typeid.to_string()))? {
            Reply::Created(id, _) => Ok(self.proxy(id)),
            r => Err(Error::new(
                ErrorKind::Protocol,
                format!("unexpected reply from the manager: {r:?}"),
            )),
        }
    }

    /// A proxy on the object registered as `name`, typed as `P`: Python's
    /// `manager.get_queue()` after `register('get_queue', ...)`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] if nothing is registered as `name` (the message lists
    /// what is); [`ErrorKind::InvalidInput`] if it is of another kind than `P` (a dict
    /// asked for as a queue). The item type (`T` of `QueueProxy<T>`) is not checked:
    /// it must match what the other programs use.
    ///
    /// # Examples
    ///
    /// See [`ManagerBuilder`] and the [module docs](self).
    pub fn get<P: Proxy>(&self, name: &str) -> Result<P> {
        match self.request(&Request::Lookup(name.to_string()))? {
            Reply::Created(id, kind) => {
                if format!("{kind:?}") != P::KIND {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!("{name:?} is a {kind:?}, not a {}", P::KIND),
                    ));
                }
                Ok(self.proxy(id))
            }
            r => Err(Error::new(
                ErrorKind::Protocol,
                format!("unexpected reply from the manager: {r:?}"),
            )),
        }
    }

    /// The number of objects alive in the server, registered ones included (Python's
    /// `_number_of_objects()`). An object is freed when no proxy of it is left: no live
    /// proxy in any process, no value stored in this manager that holds one, and no
    /// serialized proxy in transit (a lease, two minutes by default, from its last
    /// serialization; see [`ManagerBuilder::lease`]). Freeing an object releases the
    /// proxies it stored. Drops reach the server without waiting, so the count falls
    /// a moment after a drop.
    ///
    /// # Errors
    ///
    /// As [`dict`](Manager::dict).
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let d = m.dict::<u8, u8>()?;
    /// let d2 = d.clone();
    /// assert_eq!(m.object_count()?, 1);
    /// drop((d, d2));
    /// // Drops are not waited for: the count falls a moment later.
    /// let t = std::time::Instant::now();
    /// while m.object_count()? != 0 && t.elapsed().as_secs() < 30 {
    ///     std::thread::yield_now();
    /// }
    /// assert_eq!(m.object_count()?, 0);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    #[doc(alias = "_number_of_objects")]
    pub fn object_count(&self) -> Result<usize> {
        #[cfg(feature = "redis")]
        if let Some(r) = &self.inner.redis {
            return r.object_count();
        }
        match self.request(&Request::Count)? {
            Reply::U64(n) => Ok(n as usize),
            r => Err(Error::new(
                ErrorKind::Protocol,
                format!("unexpected reply from the manager: {r:?}"),
            )),
        }
    }

    /// The names registered with the server: objects, then custom types.
    ///
    /// # Errors
    ///
    /// As [`dict`](Manager::dict).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{Manager, Served};
    /// multiprocess::init();
    /// let m = Manager::builder().register("d", Served::dict()).start()?;
    /// assert_eq!(m.registered()?, vec!["d"]);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn registered(&self) -> Result<Vec<String>> {
        match self.request(&Request::Registered)? {
            Reply::Strings(v) => Ok(v),
            r => Err(Error::new(
                ErrorKind::Protocol,
                format!("unexpected reply from the manager: {r:?}"),
            )),
        }
    }

    /// Stops the server and waits for it to exit (killing it after 10 s). For a
    /// manager this process started, the address is free again when this returns;
    /// for one reached with [`connect`](Manager::connect), this asks its server to
    /// stop (a [`ManagerServer`] then returns from `serve_forever`). Calling it again
    /// does nothing.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`] for a connected manager whose server is gone
    /// already.
    ///
    /// # Examples
    ///
    /// See [`Manager`].
    pub fn shutdown(&self) -> Result<()> {
        #[cfg(feature = "redis")]
        if self.inner.redis.is_some() {
            return Ok(()); // nothing to stop: the objects live in Redis
        }
        let Some(slot) = &self.inner.process else {
            self.request(&Request::Shutdown)?;
            client::forget(&self.inner.address);
            return Ok(());
        };
        let Some(p) = slot.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return Ok(());
        };
        let asked = self.request(&Request::Shutdown).is_ok();
        client::forget(&self.inner.address);
        self.inner.forget_key();
        if !asked || !p.join_timeout(SHUTDOWN_GRACE)? {
            let _ = p.kill();
            p.join_timeout(SHUTDOWN_GRACE)?;
        }
        Ok(())
    }
}

/// Refusal of a server manager's request on a Redis manager.
#[cfg(feature = "redis")]
fn redis_unsupported() -> Error {
    Error::new(
        ErrorKind::Unsupported,
        "a Redis manager has no server: get, create and registered are for server \
         managers; open shared objects by name (dict_named, lock_named, ...)",
    )
}

impl Inner {
    /// A manager this process started stopped: its key is of no use any more (a
    /// later manager at the same address may have put its own).
    fn forget_key(&self) {
        if let Some(k) = self.authkey.as_bytes() {
            keyring::remove_if(&self.address, k);
        }
    }
}

/// Puts the key of the manager at `address` in this process's key ring, for the
/// proxies of it that this process decodes and the children it starts.
fn remember(address: &str, authkey: &AuthKey) {
    if let Some(k) = authkey.as_bytes() {
        keyring::insert(address, k);
    }
}

/// Gives this process the authkey of the manager at `address`, for proxies of that
/// manager that it decodes (received through a connection, a queue, a file). Python
/// keeps one authkey per process (`current_process().authkey`); this crate keeps one
/// per manager address, in a key ring.
///
/// A serialized proxy carries no key. The process that decodes one presents the key
/// its key ring holds for the proxy's address, spelled as in the proxy (as its `Debug`
/// shows it). The ring is filled by [`Manager::start`] (and the builder and
/// [`Manager::with_context`]) with the manager this process started, by
/// [`Manager::connect`], and by this function; a child started by this crate (any
/// start method) begins with a copy of its parent's ring, sent in its start-up message
/// over the private channel of the start (a socketpair, or the fork server's private
/// socket), never a network. A keyless `authkey` removes the address's key.
///
/// Calling this is needed only in a process that receives proxies without having
/// connected to their manager itself; [`Manager::connect`] does it too.
///
/// # Examples
///
/// In process 1, a proxy goes out over a TCP connection (the bytes hold no key):
///
/// ```
/// use multiprocess::{DictProxy, Manager, manager::add_authkey};
/// multiprocess::init();
/// let m = Manager::builder().address("127.0.0.1:0").authkey(b"secret").start()?;
/// let d = m.dict::<u8, u8>()?;
/// let bytes = multiprocess::manager::encode_args(&d)?;
/// assert!(!bytes.windows(6).any(|w| w == b"secret"));
/// // In process 2, which learned the address and the key some other way:
/// add_authkey(m.address(), b"secret");
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub fn add_authkey(address: &str, authkey: impl Into<AuthKey>) {
    match authkey.into().as_bytes() {
        Some(k) => keyring::insert(address, k),
        None => keyring::remove(address),
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(slot) = &self.process
            && let Some(p) = slot.lock().unwrap_or_else(|e| e.into_inner()).take()
        {
            let asked = request(&self.address, Some(&self.authkey), &Plain::Shutdown).is_ok();
            client::forget(&self.address);
            self.forget_key();
            if !asked || !p.join_timeout(SHUTDOWN_GRACE).unwrap_or(false) {
                let _ = p.kill();
                let _ = p.join_timeout(SHUTDOWN_GRACE);
            }
        }
    }
}

/// A manager server run by your own process at an address of your choice, serving
/// objects registered by name until asked to stop: Python's `BaseManager.register`
/// with `get_server().serve_forever()`.
///
/// Clone it to stop it from another thread ([`shutdown`](ManagerServer::shutdown)).
/// Any client with the address and authkey may also stop it
/// ([`Manager::shutdown`] on a connected manager).
///
/// # Examples
///
/// See the [module docs](self) and `examples/manager_server.rs`.
#[derive(Clone)]
pub struct ManagerServer {
    server: Arc<Server>,
    listener: Arc<Listener>,
}

impl fmt::Debug for ManagerServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagerServer")
            .field("address", &self.listener.address())
            .finish()
    }
}

impl ManagerServer {
    /// Binds `address` (see [`Listener`]); clients must present
    /// `authkey`. Nothing is served until [`serve_forever`](ManagerServer::serve_forever).
    ///
    /// # Errors
    ///
    /// As [`Listener::bind`](crate::Listener::bind).
    ///
    /// # Examples
    ///
    /// ```
    /// let s = multiprocess::ManagerServer::bind("127.0.0.1:0", b"key")?;
    /// assert!(s.address().starts_with("127.0.0.1:"));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn bind(address: &str, authkey: impl Into<AuthKey>) -> Result<ManagerServer> {
        Ok(ManagerServer {
            server: Server::new()?,
            listener: Arc::new(Listener::bind(address, authkey)?),
        })
    }

    /// The address clients connect to (for port `0`, the port chosen).
    ///
    /// # Examples
    ///
    /// See [`bind`](ManagerServer::bind).
    pub fn address(&self) -> &str {
        self.listener.address()
    }

    /// Registers `object` under `name`; clients get a proxy on it with
    /// [`Manager::get`]. Registering a name again replaces it for later lookups.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{ManagerServer, Served};
    /// let s = ManagerServer::bind("127.0.0.1:0", b"key")?;
    /// s.register("get_queue", Served::queue()).register("config", Served::dict());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn register(&self, name: &str, object: Served) -> &Self {
        let obj = match object.0 {
            ServedInner::Builtin(init) => Object::new(init),
            ServedInner::Custom(o) => Object::custom(o),
        };
        self.server.register(name, obj);
        self
    }

    /// Registers a custom type for [`Manager::create`].
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{ManagerServer, SharedObject};
    /// struct Nothing;
    /// impl SharedObject for Nothing {
    ///     fn methods(&self) -> &'static [&'static str] { &[] }
    ///     fn call(&mut self, _: &str, _: &[u8]) -> multiprocess::Result<Vec<u8>> { Ok(vec![]) }
    /// }
    /// fn make() -> Box<dyn SharedObject> { Box::new(Nothing) }
    /// let s = ManagerServer::bind("127.0.0.1:0", b"key")?;
    /// s.register_type("Nothing", make);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn register_type(&self, typeid: &str, factory: fn() -> Box<dyn SharedObject>) -> &Self {
        self.server.register_type(typeid, factory);
        self
    }

    /// The limits on this server's clients (see [`Limits`]).
    ///
    /// # Examples
    ///
    /// See [`set_limits`](ManagerServer::set_limits).
    pub fn limits(&self) -> Limits {
        self.listener.limits()
    }

    /// Sets the limits on this server's clients (see [`Limits`] for what they are and
    /// their defaults: a 10 s login deadline, at most 64 connections logging in,
    /// 64 MiB per request, 60 s for the rest of a request once started, 256 MiB for
    /// partly received requests together). Logins and connections from now on get
    /// them.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiprocess::{Limits, ManagerServer};
    /// let s = ManagerServer::bind("127.0.0.1:0", b"key")?;
    /// let mut limits = s.limits();
    /// limits.login_timeout = Duration::from_secs(3);
    /// s.set_limits(limits);
    /// assert_eq!(s.limits().login_timeout, Duration::from_secs(3));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn set_limits(&self, limits: Limits) -> &Self {
        self.listener.set_limits(limits);
        self
    }

    /// Serves clients until [`shutdown`](ManagerServer::shutdown) or a client's
    /// [`Manager::shutdown`]. Clients log in concurrently on one login thread, under
    /// the server's [`Limits`]; each authenticated client gets a thread. Clients with a
    /// wrong key, slow logins, and clients that send malformed, oversized or stalled
    /// requests are disconnected; the server goes on.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if waiting for clients fails.
    ///
    /// # Examples
    ///
    /// See the [module docs](self).
    pub fn serve_forever(&self) -> Result<()> {
        self.server.serve(&self.listener, None)
    }

    /// Makes [`serve_forever`](ManagerServer::serve_forever) return (connections in
    /// progress are not waited for).
    ///
    /// # Examples
    ///
    /// See the [module docs](self).
    pub fn shutdown(&self) {
        self.server.stop();
    }
}
