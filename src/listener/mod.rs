//! Listeners and clients: connections between processes that share no parent, as
//! Python's `multiprocessing.connection.Listener` and `Client`.
//!
//! A [`Listener`] is bound to an address; [`Client::connect`] reaches it from any
//! process that knows the address (and the authkey, if the listener has one), and
//! each side gets a [`Connection`] that works like a pipe's. Addresses are strings:
//!
//! | address | kind |
//! |---|---|
//! | `"@name"` | a Linux abstract Unix socket: no file, gone when the listener closes |
//! | `"/tmp/app.sock"`, `"./x.sock"` (anything with a `/`) | a Unix socket at that path (removed when the listener drops) |
//! | `"127.0.0.1:6000"`, `"localhost:6000"`, `"[::1]:6000"` | TCP; port `0` picks a free port, see [`Listener::address`] |
//!
//! With an authkey, both sides prove they know it with an HMAC-SHA256 challenge and
//! response in each direction (see [`Listener::bind`]); a wrong key fails with
//! [`ErrorKind::Authentication`] on both sides. Over TCP no file descriptor can travel,
//! so sending a handle (a connection, queue, lock, ...) there is an error, while
//! manager proxies, which carry only an address, travel anywhere.
//!
//! ```
//! use multiprocess::{Client, Listener};
//!
//! fn client(addr: String) {
//!     let conn = Client::connect(&addr, b"secret").unwrap();
//!     conn.send(&"hello".to_string()).unwrap();
//! }
//!
//! multiprocess::init();
//! let listener = Listener::bind("127.0.0.1:0", b"secret")?;
//! let addr = listener.address().to_string();
//! let mut p = multiprocess::Process::new(client, addr);
//! p.start()?;
//! let conn = listener.accept::<String>()?;
//! assert_eq!(conn.recv()?, "hello");
//! p.join()?;
//! # Ok::<(), multiprocess::Error>(())
//! ```

//! # Design: the login stage, and what an attacker can still do
//!
//! Anything that reaches a listening socket is hostile until it has proved the key,
//! and bounded after. The shape:
//!
//! * **Logins run off the accept path, concurrently.** Each listener (and each
//!   manager server, which uses the same machinery) starts, at its first `accept`, one
//!   *login stage* thread (`login.rs`). It accepts connections with non-blocking
//!   sockets, runs the server's side of every handshake as a small state machine
//!   (`auth::ServerLogin`) driven by `poll`, and puts each authenticated connection in a
//!   ready queue that [`Listener::accept`] takes from (an eventfd semaphore counts it,
//!   so `accept_timeout` and [`wait`](crate::wait) see it). So `accept` returns the next
//!   *authenticated* connection while others are still logging in; a failed login is
//!   closed by the stage and never reaches `accept`. One thread with `poll` rather than
//!   a thread per login: a flood of connections costs a few hundred bytes each, not a
//!   thread and its stack, and there is nothing to cap but one number.
//! * **One deadline for the whole login**: every byte of every handshake frame must
//!   arrive before [`Limits::login_timeout`] (default 10 s) from the accept; a frame
//!   that has started does not extend it. Handshake frames are at most 256 bytes.
//! * **Unauthenticated connections are capped** ([`Limits::max_pending_logins`],
//!   default 64): when the cap is hit, the *oldest* login is dropped for the newcomer.
//!   An attacker without the key therefore holds at most that many connections, each
//!   for at most the login deadline, and a correct client that connects is dropped
//!   only if that many newer connections arrive before it has logged in.
//! * **Out of fds** (`EMFILE`, `ENFILE`): the oldest login gives its fd to the
//!   newcomer; with no login to drop, the stage stops accepting for 10 ms, doubling up
//!   to 1 s, and resumes by itself (the kernel's backlog keeps the clients meanwhile).
//!   Never a busy loop.
//! * **After login**, each accepted connection has a largest message
//!   ([`Limits::max_message_size`], default 64 MiB, refused at its header), a deadline
//!   for the rest of a message once its first byte has arrived
//!   ([`Limits::frame_timeout`], default 60 s), and the server (a listener, or a manager
//!   server) has a budget for the bytes of partly received messages
//!   ([`Limits::partial_frame_budget`], default 256 MiB), shared by all its
//!   connections; a message's buffer grows as its bytes arrive (`wire::frame`). A
//!   connection that breaks a limit is closed; the others go on.
//! * **Ready queue**: at most 128 authenticated connections wait for `accept`; past
//!   that the stage stops accepting until `accept` takes one.
//!
//! What an attacker **without the key** can still do: keep up to
//! `max_pending_logins` connections open for a login deadline each, over and over;
//! with a flood of new connections faster than a client's login round trips, make a
//! correct client's login fail (it is dropped as the oldest), so it must retry;
//! fill the kernel's backlog so that new connections wait or are refused (as for any
//! server; the kernel's SYN cookies and backlog apply). What a peer **with the key**
//! can do: anything the protocol allows (on a manager, [`Shutdown`](crate::Manager::shutdown)
//! too), use memory up to `max_message_size` per message and the budget in total,
//! keep as many authenticated connections (and, on a manager, threads) as it likes.
//! Over TCP, everything after the login travels in plain text.

mod auth;
mod login;

pub(crate) use auth::random_bytes;

use std::fmt;
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::connection::{Connection, Waitable};
use crate::error::{Error, ErrorKind, Result};
use crate::wire::frame::Budget;
use crate::wire::handles;
use login::Stage;

/// The limits a [`Listener`] or a manager server puts on the peers that connect to it
/// (see the [module docs](self#design-the-login-stage-and-what-an-attacker-can-still-do)).
/// Change the fields of [`Limits::default()`] and give it to
/// [`Listener::set_limits`], [`ManagerBuilder::limits`](crate::ManagerBuilder::limits)
/// or [`ManagerServer::set_limits`](crate::ManagerServer::set_limits).
///
/// | field | default | what happens past it |
/// |---|---|---|
/// | `login_timeout` | 10 s | the connection is closed (it never reaches `accept`) |
/// | `max_pending_logins` | 64 | the oldest connection still logging in is closed |
/// | `max_message_size` | 64 MiB | the message is refused at its header; the connection is closed |
/// | `frame_timeout` | 60 s | a message started and not finished in time: the connection is closed |
/// | `partial_frame_budget` | 256 MiB | the connection whose message would pass it is closed |
///
/// `Duration::MAX` and `u64::MAX` mean no limit.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use multiprocess::{Limits, Listener};
/// let l = Listener::bind("127.0.0.1:0", b"key")?;
/// let mut limits = Limits::default();
/// limits.login_timeout = Duration::from_secs(2);
/// limits.max_message_size = 1 << 20;
/// l.set_limits(limits);
/// assert_eq!(l.limits().max_pending_logins, 64);
/// # Ok::<(), multiprocess::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Limits {
    /// How long a connection may take to log in, all its bytes included.
    pub login_timeout: Duration,
    /// How many connections may be logging in at once.
    pub max_pending_logins: usize,
    /// The largest message a connection may send, in bytes.
    pub max_message_size: u64,
    /// How long the rest of a message may take once its first byte has arrived.
    pub frame_timeout: Duration,
    /// Bytes that the partly received messages of all connections may hold together.
    pub partial_frame_budget: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            login_timeout: Duration::from_secs(10),
            max_pending_logins: 64,
            max_message_size: 64 << 20,
            frame_timeout: Duration::from_secs(60),
            partial_frame_budget: 256 << 20,
        }
    }
}

/// An authentication key, or none. Build it from bytes or a string (`b"secret"`,
/// `"secret"`, a `Vec<u8>`), or pass `None` for no authentication.
///
/// # Examples
///
/// ```
/// use multiprocess::AuthKey;
/// assert!(AuthKey::from(b"secret").as_bytes().is_some());
/// assert!(AuthKey::from(None).as_bytes().is_none());
/// assert_eq!(AuthKey::from("k"), AuthKey::from(vec![b'k']));
/// ```
#[derive(Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct AuthKey(Option<Vec<u8>>);

impl AuthKey {
    /// The key's bytes, `None` when there is no key.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiprocess::AuthKey::from("ab").as_bytes(), Some(&b"ab"[..]));
    /// ```
    pub fn as_bytes(&self) -> Option<&[u8]> {
        self.0.as_deref()
    }

    /// A fresh random 32-byte key from the OS.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if the OS has no randomness to give.
    ///
    /// # Examples
    ///
    /// ```
    /// let k = multiprocess::AuthKey::random()?;
    /// assert_eq!(k.as_bytes().unwrap().len(), 32);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn random() -> Result<AuthKey> {
        Ok(AuthKey(Some(random_bytes::<32>()?.to_vec())))
    }
}

impl fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => f.write_str("AuthKey(None)"),
            Some(_) => f.write_str("AuthKey(<hidden>)"),
        }
    }
}

impl From<&[u8]> for AuthKey {
    fn from(k: &[u8]) -> Self {
        AuthKey(Some(k.to_vec()))
    }
}
impl<const N: usize> From<&[u8; N]> for AuthKey {
    fn from(k: &[u8; N]) -> Self {
        AuthKey(Some(k.to_vec()))
    }
}
impl From<&str> for AuthKey {
    fn from(k: &str) -> Self {
        AuthKey(Some(k.as_bytes().to_vec()))
    }
}
impl From<Vec<u8>> for AuthKey {
    fn from(k: Vec<u8>) -> Self {
        AuthKey(Some(k))
    }
}
impl From<Option<&[u8]>> for AuthKey {
    fn from(k: Option<&[u8]>) -> Self {
        AuthKey(k.map(<[u8]>::to_vec))
    }
}
impl From<&AuthKey> for AuthKey {
    fn from(k: &AuthKey) -> Self {
        k.clone()
    }
}

/// A parsed address (see the [module docs](self) for the syntax).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Address {
    Path(PathBuf),
    Abstract(Vec<u8>),
    Tcp(String),
}

impl Address {
    pub(crate) fn parse(s: &str) -> Result<Address> {
        if let Some(name) = s.strip_prefix('@') {
            if name.is_empty() {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "empty abstract socket name",
                ));
            }
            return Ok(Address::Abstract(name.as_bytes().to_vec()));
        }
        if !s.contains('/')
            && let Some((host, port)) = s.rsplit_once(':')
            && !host.is_empty()
            && port.parse::<u16>().is_ok()
        {
            return Ok(Address::Tcp(s.to_string()));
        }
        if s.is_empty() {
            return Err(Error::new(ErrorKind::InvalidInput, "empty address"));
        }
        Ok(Address::Path(PathBuf::from(s)))
    }

    fn unix_addr(&self) -> Result<UnixAddr> {
        let r = match self {
            Address::Path(p) => UnixAddr::from_pathname(p),
            Address::Abstract(n) => UnixAddr::from_abstract_name(n),
            Address::Tcp(_) => unreachable!("not a Unix address"),
        };
        r.map_err(|e| Error::new(ErrorKind::InvalidInput, format!("bad address: {e}")))
    }

    /// Connects a stream socket (no handshake yet); `(fd, is_unix)`.
    pub(crate) fn connect(&self, display: &str) -> Result<(OwnedFd, bool)> {
        let ctx = format!("connecting to {display}");
        match self {
            Address::Tcp(s) => {
                let mut last = None;
                for a in s
                    .to_socket_addrs()
                    .map_err(|e| Error::io(&format!("resolving {s}"), e))?
                {
                    match TcpStream::connect(a) {
                        Ok(t) => {
                            let _ = t.set_nodelay(true);
                            return Ok((t.into(), false));
                        }
                        Err(e) => last = Some(e),
                    }
                }
                Err(connect_error(
                    &ctx,
                    last.unwrap_or_else(|| std::io::Error::other("no address")),
                ))
            }
            _ => {
                let u = UnixStream::connect_addr(&self.unix_addr()?)
                    .map_err(|e| connect_error(&ctx, e))?;
                Ok((u.into(), true))
            }
        }
    }
}

fn connect_error(ctx: &str, e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => Error::new(
            ErrorKind::Disconnected,
            format!("{ctx}: nobody listens there ({e})"),
        )
        .with_source(e),
        _ => Error::io(ctx, e),
    }
}

enum Socket {
    Unix(UnixListener),
    Tcp(TcpListener),
    /// After `into_fd`.
    Gone,
}

/// A socket that accepts connections from other processes, authenticated with an
/// optional key: Python's `multiprocessing.connection.Listener`.
///
/// Clients log in on a thread of the listener's own, concurrently, and
/// [`accept`](Listener::accept) returns the next authenticated one. The listener
/// limits its peers ([`Limits`], changed with [`set_limits`](Listener::set_limits)):
/// a login must be done within 10 s, at most 64 connections may be logging in (the
/// oldest goes first), a message may be at most 64 MiB and must arrive within 60 s
/// once it started, and partly received messages of all its connections may hold at
/// most 256 MiB together. See the [module docs](self) for the design and what a peer
/// can still do.
///
/// # Examples
///
/// In process 1 (the listener) and process 2 (any process that knows the address):
///
/// ```
/// use multiprocess::{Client, Listener};
///
/// fn client(addr: String) {
///     let conn = Client::connect::<u32>(&addr, None).unwrap();
///     conn.send(&42).unwrap();
/// }
///
/// multiprocess::init();
/// let name = format!("@doc-listener-{}", std::process::id());
/// let listener = Listener::bind(&name, None)?;
/// let mut p = multiprocess::Process::new(client, name);
/// p.start()?;
/// assert_eq!(listener.accept::<u32>()?.recv()?, 42);
/// p.join()?;
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub struct Listener {
    socket: Socket,
    address: String,
    authkey: AuthKey,
    unlink: Option<PathBuf>,
    limits: Arc<Mutex<Limits>>,
    budget: Arc<Budget>,
    /// Started by the first `accept` (see the module docs).
    stage: OnceLock<Stage>,
    starting: Mutex<()>,
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("address", &self.address)
            .field("authkey", &self.authkey)
            .finish()
    }
}

impl Listener {
    /// Binds to `address` (see the [module docs](self)); with an authkey, every
    /// [`accept`](Listener::accept) authenticates the client and proves the key to it.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::AlreadyExists`] if something is bound there already (binding the same
    /// address twice); [`ErrorKind::InvalidInput`] for a malformed address;
    /// [`ErrorKind::Io`] otherwise.
    ///
    /// An address is free again once every copy of the socket is closed. A `Fork`
    /// child closes its copy before its task runs, but a child that some thread of
    /// this process is starting at the moment of the drop holds a copy of every fd
    /// until its `exec`: an abstract name (which no file removal frees) can stay bound
    /// for those few milliseconds. Prefer a fresh name to rebinding one just dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{ErrorKind, Listener};
    /// let name = format!("@doc-bind-{}", std::process::id());
    /// let first = Listener::bind(&name, b"key")?;
    /// assert_eq!(Listener::bind(&name, b"key").unwrap_err().kind(), ErrorKind::AlreadyExists);
    /// drop(first);
    /// Listener::bind(&name, b"key")?; // free again
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn bind(address: &str, authkey: impl Into<AuthKey>) -> Result<Listener> {
        let parsed = Address::parse(address)?;
        let bind_err = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                Error::new(
                    ErrorKind::AlreadyExists,
                    format!("cannot bind {address}: the address is in use"),
                )
                .with_source(e)
            } else {
                Error::io(&format!("binding {address}"), e)
            }
        };
        let (socket, shown, unlink) = match &parsed {
            Address::Tcp(s) => {
                let l = TcpListener::bind(s.as_str()).map_err(bind_err)?;
                let shown = l
                    .local_addr()
                    .map_err(|e| Error::io("getsockname", e))?
                    .to_string();
                (Socket::Tcp(l), shown, None)
            }
            Address::Path(p) => {
                let l = UnixListener::bind_addr(&parsed.unix_addr()?).map_err(bind_err)?;
                (Socket::Unix(l), address.to_string(), Some(p.clone()))
            }
            Address::Abstract(_) => {
                let l = UnixListener::bind_addr(&parsed.unix_addr()?).map_err(bind_err)?;
                (Socket::Unix(l), address.to_string(), None)
            }
        };
        Ok(Listener::new(socket, shown, authkey.into(), unlink))
    }

    /// The address clients connect to; for TCP with port `0`, the port chosen.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = multiprocess::Listener::bind("127.0.0.1:0", None)?;
    /// assert!(l.address().starts_with("127.0.0.1:"));
    /// assert!(!l.address().ends_with(":0"));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Sets the largest message the accepted connections take (default 64 MiB; the
    /// `max_message_size` of [`Limits`]); a larger frame is an [`ErrorKind::Protocol`]
    /// error on that connection only.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut l = multiprocess::Listener::bind("127.0.0.1:0", None)?;
    /// l.set_max_message_size(1 << 20);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn set_max_message_size(&mut self, bytes: u64) {
        self.limits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .max_message_size = bytes;
    }

    /// A listener on an inherited bound socket (in a manager's server process).
    pub(crate) fn from_fd(fd: OwnedFd, unix: bool, address: String, authkey: AuthKey) -> Listener {
        let socket = if unix {
            Socket::Unix(UnixListener::from(fd))
        } else {
            Socket::Tcp(TcpListener::from(fd))
        };
        let unlink = match Address::parse(&address) {
            Ok(Address::Path(p)) => Some(p),
            _ => None,
        };
        Listener::new(socket, address, authkey, unlink)
    }

    fn new(socket: Socket, address: String, authkey: AuthKey, unlink: Option<PathBuf>) -> Self {
        let limits = Limits::default();
        // A fork child closes it: a copy there would keep the address bound (and
        // connections queued, never answered) after this listener is dropped.
        handles::register(match &socket {
            Socket::Unix(l) => l.as_fd(),
            Socket::Tcp(l) => l.as_fd(),
            Socket::Gone => unreachable!("a new listener has its socket"),
        });
        Listener {
            socket,
            address,
            authkey,
            unlink,
            budget: Arc::new(Budget::new(limits.partial_frame_budget)),
            limits: Arc::new(Mutex::new(limits)),
            stage: OnceLock::new(),
            starting: Mutex::new(()),
        }
    }

    /// The login stage, started at first use.
    fn stage(&self) -> Result<&Stage> {
        if let Some(s) = self.stage.get() {
            return Ok(s);
        }
        let _g = self.starting.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = self.stage.get() {
            return Ok(s);
        }
        let key = self.authkey.as_bytes().map(<[u8]>::to_vec);
        let s = Stage::start(self.as_fd(), key, self.limits.clone())?;
        Ok(self.stage.get_or_init(|| s))
    }

    /// The next authenticated socket, waiting until `deadline`; `Ok(None)` on timeout
    /// (for servers that serve connections on threads of their own).
    pub(crate) fn next_authenticated(
        &self,
        deadline: Option<std::time::Instant>,
    ) -> Result<Option<OwnedFd>> {
        self.stage()?.next(deadline)
    }

    /// An authenticated socket if one waits now.
    pub(crate) fn try_next_authenticated(&self) -> Result<Option<OwnedFd>> {
        Ok(self.stage()?.try_next())
    }

    /// Readable while an authenticated socket waits (starts the login stage).
    pub(crate) fn ready_fd(&self) -> Result<BorrowedFd<'_>> {
        Ok(self.stage()?.bell())
    }

    /// The server's budget for partly received frames, shared by its connections.
    pub(crate) fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// The limits on the peers of this listener (see [`Limits`]).
    ///
    /// # Examples
    ///
    /// See [`Limits`].
    pub fn limits(&self) -> Limits {
        *self.limits.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the limits on the peers of this listener (see [`Limits`] for what they
    /// are and their defaults). Logins and connections accepted from now on get them.
    ///
    /// # Examples
    ///
    /// See [`Limits`].
    pub fn set_limits(&self, limits: Limits) {
        *self.limits.lock().unwrap_or_else(|e| e.into_inner()) = limits;
        self.budget.set_cap(limits.partial_frame_budget);
    }

    /// Gives up the socket (to hand it to another process); `(fd, is_unix)`. The
    /// socket file, if any, is left for the new owner to remove.
    pub(crate) fn into_fd(mut self) -> (OwnedFd, bool) {
        self.unlink = None;
        drop(self.stage.take()); // its logins and ready connections are closed
        handles::unregister(self.as_fd());
        let sock = std::mem::replace(&mut self.socket, Socket::Gone);
        match sock {
            Socket::Unix(l) => (l.into(), true),
            Socket::Tcp(l) => (l.into(), false),
            Socket::Gone => unreachable!("a listener gives up its socket once"),
        }
    }

    /// Waits for the next authenticated client: Python's `accept()`.
    ///
    /// Clients log in on the listener's login thread, concurrently, under the
    /// listener's [`Limits`] (started at the first `accept`); this returns the next
    /// one that has proved the key, while others are still logging in. A client with
    /// a wrong key, or none when one is required, or that does not finish its login
    /// within the login deadline, is told (when the protocol allows) and closed, and
    /// never returned here: Python's `accept` raises `AuthenticationError` for it
    /// instead, which lets one bad client stop a naive accept loop.
    ///
    /// A client that connected, sent and closed before this call is still accepted,
    /// and what it sent can be read. The connection returned has the listener's
    /// message limits (see [`Limits`]).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if the login thread cannot be started.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{Client, ErrorKind, Listener};
    /// let l = Listener::bind("127.0.0.1:0", b"right")?;
    /// let addr = l.address().to_string();
    /// let t = std::thread::spawn(move || {
    ///     let wrong = Client::connect::<()>(&addr, b"wrong").unwrap_err().kind();
    ///     let right = Client::connect::<u8>(&addr, b"right").unwrap();
    ///     right.send(&1).unwrap();
    ///     wrong
    /// });
    /// // The client with the wrong key never reaches `accept`.
    /// assert_eq!(l.accept::<u8>()?.recv()?, 1);
    /// assert_eq!(t.join().unwrap(), ErrorKind::Authentication);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn accept<T>(&self) -> Result<Connection<T>> {
        let fd = self.next_authenticated(None)?.expect("no deadline");
        self.connection(fd)
    }

    fn connection<T>(&self, fd: OwnedFd) -> Result<Connection<T>> {
        let limits = self.limits();
        let mut c = Connection::from_fd(fd, true, true)?;
        c.set_max_message_size(limits.max_message_size);
        c.limit_inbound(Some(limits.frame_timeout), self.budget.clone());
        Ok(c)
    }

    /// As [`accept`](Listener::accept), waiting at most `timeout` for an
    /// authenticated client.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Timeout`] if no client logged in in time; otherwise as `accept`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let l = multiprocess::Listener::bind("127.0.0.1:0", None)?;
    /// let err = l.accept_timeout::<()>(Duration::from_millis(10)).unwrap_err();
    /// assert_eq!(err.kind(), multiprocess::ErrorKind::Timeout);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn accept_timeout<T>(&self, timeout: Duration) -> Result<Connection<T>> {
        match self.next_authenticated(crate::sys::deadline_after(timeout))? {
            Some(fd) => self.connection(fd),
            None => Err(Error::timeout("accept")),
        }
    }

    /// Closes the listener (and removes its socket file); dropping it does the same.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = multiprocess::Listener::bind("127.0.0.1:0", None)?;
    /// l.close();
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn close(self) {}
}

impl Drop for Listener {
    fn drop(&mut self) {
        drop(self.stage.take()); // stops the login thread, closes its connections
        if !matches!(self.socket, Socket::Gone) {
            handles::unregister(self.as_fd());
        }
        if let Some(p) = &self.unlink {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.socket {
            Socket::Unix(l) => l.as_fd(),
            Socket::Tcp(l) => l.as_fd(),
            Socket::Gone => unreachable!("used after into_fd"),
        }
    }
}

/// A listener is ready when an authenticated client waits to be accepted (waiting
/// starts the login stage, as `accept` does).
impl Waitable for Listener {
    fn wait_fd(&self) -> Result<BorrowedFd<'_>> {
        self.ready_fd()
    }
}

/// Connects to a [`Listener`]: Python's `multiprocessing.connection.Client`.
///
/// The client's side of the login waits at most 20 s for the server's bytes (every
/// byte of the handshake counts toward it, so a server that stalls cannot hold the
/// client). A client trusts the server it chose once the server has proved the key:
/// its connection has no message limit and no frame deadline by default (set one
/// with [`Connection::set_max_message_size`]). The server's limits on the client are
/// the listener's [`Limits`]: log in within 10 s, messages of at most 64 MiB, the
/// rest of a message within 60 s once it started.
///
/// # Examples
///
/// ```
/// use multiprocess::{Client, Listener};
/// let l = Listener::bind("127.0.0.1:0", "key")?;
/// let addr = l.address().to_string();
/// let t = std::thread::spawn(move || {
///     let c = Client::connect::<String>(&addr, "key").unwrap();
///     c.send(&"hi".into()).unwrap();
/// });
/// assert_eq!(l.accept::<String>()?.recv()?, "hi");
/// t.join().unwrap();
/// # Ok::<(), multiprocess::Error>(())
/// ```
#[derive(Debug)]
pub struct Client(());

impl Client {
    /// Connects to the listener at `address` and runs the authkey handshake.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`] if nobody listens there; [`ErrorKind::Authentication`]
    /// if the keys differ (the listener is told too); [`ErrorKind::Io`] otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{Client, ErrorKind};
    /// let err = Client::connect::<()>("@surely-nobody-listens-here", None).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Disconnected);
    /// ```
    pub fn connect<T>(address: &str, authkey: impl Into<AuthKey>) -> Result<Connection<T>> {
        let authkey = authkey.into();
        let (fd, _) = Address::parse(address)?.connect(address)?;
        auth::client(fd.as_fd(), authkey.as_bytes())
            .inspect_err(|_e| trace!(warn, address, error = %_e, "login to a listener failed"))?;
        Connection::from_fd(fd, true, true)
    }
}

/// Connecting with the caller's deadline.
impl Client {
    /// [`connect`](Client::connect) with a deadline of your choice for the whole
    /// connection: Python's `Client(address, authkey)` blocks, `connect` gives up on
    /// the login after 20 s.
    ///
    /// * `None`: as Python. A listener that has not called
    ///   [`accept`](Listener::accept) yet answers the login once it does, however long
    ///   that takes: the client waits for it (blocked in `poll`, no busy loop). If
    ///   nobody listens at `address`, the connection fails at once, as Python's does.
    /// * `Some(d)`: everything within `d`. If nobody listens yet (refused, or no such
    ///   socket file), the connection is tried again after 10 ms, then 20, 40, ... up to
    ///   1 s between tries, until the deadline, so a client may start before its
    ///   server; the login then has what is left of `d`.
    ///
    /// # Errors
    ///
    /// As [`connect`](Client::connect); [`ErrorKind::Timeout`] if the deadline passed
    /// during the login; [`ErrorKind::Disconnected`] if nobody listened before it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiprocess::{Client, ErrorKind, Listener};
    /// let l = Listener::bind("127.0.0.1:0", "key")?;
    /// // Nobody calls accept: the login cannot finish, and the deadline says when to stop.
    /// let e = Client::connect_timeout::<()>(l.address(), "key", Some(Duration::from_millis(50)))
    ///     .unwrap_err();
    /// assert_eq!(e.kind(), ErrorKind::Timeout);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn connect_timeout<T>(
        address: &str,
        authkey: impl Into<AuthKey>,
        timeout: Option<Duration>,
    ) -> Result<Connection<T>> {
        let authkey = authkey.into();
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let addr = Address::parse(address)?;
        let mut backoff = Duration::from_millis(10);
        let fd = loop {
            match addr.connect(address) {
                Ok((fd, _)) => break fd,
                Err(e) if e.kind() == ErrorKind::Disconnected && timeout.is_some() => {
                    let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                    match left {
                        Some(left) if left.is_zero() => return Err(e),
                        Some(left) => std::thread::sleep(backoff.min(left)),
                        None => std::thread::sleep(backoff), // a deadline past the clock
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(e),
            }
        };
        auth::client_until(fd.as_fd(), authkey.as_bytes(), deadline, true)?;
        Connection::from_fd(fd, true, true)
    }
}

/// Connects and authenticates, returning the raw socket (for manager clients).
pub(crate) fn connect_raw(address: &str, authkey: &AuthKey) -> Result<OwnedFd> {
    let (fd, _) = Address::parse(address)?.connect(address)?;
    auth::client(fd.as_fd(), authkey.as_bytes())
        .inspect_err(|_e| trace!(warn, address, error = %_e, "login to a manager failed"))?;
    Ok(fd)
}
