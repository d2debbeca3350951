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

mod auth;

pub(crate) use auth::random_bytes;

use std::fmt;
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::connection::{Connection, Waitable};
use crate::error::{Error, ErrorKind, Result};

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
    max_len: u64,
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
        Ok(Listener {
            socket,
            address: shown,
            authkey: authkey.into(),
            unlink,
            max_len: u64::MAX,
        })
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

    /// Sets the largest message the accepted connections take (default: no limit
    /// beyond memory); a larger frame is an [`ErrorKind::Protocol`] error on that
    /// connection only.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut l = multiprocess::Listener::bind("127.0.0.1:0", None)?;
    /// l.set_max_message_size(1 << 20);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn set_max_message_size(&mut self, bytes: u64) {
        self.max_len = bytes;
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
        Listener {
            socket,
            address,
            authkey,
            unlink,
            max_len: u64::MAX,
        }
    }

    /// Gives up the socket (to hand it to another process); `(fd, is_unix)`. The
    /// socket file, if any, is left for the new owner to remove.
    pub(crate) fn into_fd(mut self) -> (OwnedFd, bool) {
        self.unlink = None;
        let sock = std::mem::replace(&mut self.socket, Socket::Gone);
        match sock {
            Socket::Unix(l) => (l.into(), true),
            Socket::Tcp(l) => (l.into(), false),
            Socket::Gone => unreachable!("a listener gives up its socket once"),
        }
    }

    /// Accepts a socket without the handshake (for servers that authenticate on
    /// another thread).
    pub(crate) fn accept_raw(&self) -> Result<(OwnedFd, bool)> {
        loop {
            let r = match &self.socket {
                Socket::Unix(l) => l.accept().map(|(s, _)| (OwnedFd::from(s), true)),
                Socket::Tcp(l) => l.accept().map(|(s, _)| {
                    let _ = s.set_nodelay(true);
                    (OwnedFd::from(s), false)
                }),
                Socket::Gone => unreachable!("used after into_fd"),
            };
            match r {
                Ok(x) => return Ok(x),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionAborted => continue,
                Err(e) => return Err(Error::io("accept", e)),
            }
        }
    }

    pub(crate) fn authkey(&self) -> &AuthKey {
        &self.authkey
    }

    /// Waits for the next client and authenticates it: Python's `accept()`.
    ///
    /// A client that connected, sent and closed before this call is still accepted,
    /// and what it sent can be read.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Authentication`] if the client has another key (or none); the
    /// client is told too, and the listener goes on: call `accept` again.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{Client, ErrorKind, Listener};
    /// let l = Listener::bind("127.0.0.1:0", b"right")?;
    /// let addr = l.address().to_string();
    /// let t = std::thread::spawn(move || {
    ///     Client::connect::<()>(&addr, b"wrong").unwrap_err().kind()
    /// });
    /// assert_eq!(l.accept::<()>().unwrap_err().kind(), ErrorKind::Authentication);
    /// assert_eq!(t.join().unwrap(), ErrorKind::Authentication);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn accept<T>(&self) -> Result<Connection<T>> {
        let (fd, unix) = self.accept_raw()?;
        auth::server(fd.as_fd(), self.authkey.as_bytes())?;
        let mut c = Connection::from_fd(fd, true, true)?;
        c.set_max_message_size(self.max_len);
        let _ = unix;
        Ok(c)
    }

    /// As [`accept`](Listener::accept), waiting at most `timeout` for a client.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Timeout`] if no client came; otherwise as `accept`.
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
        let deadline = Instant::now() + timeout;
        if !crate::sys::poll::wait_readable(self.as_fd(), Some(deadline))
            .map_err(|e| Error::io("poll", e))?
        {
            return Err(Error::timeout("accept"));
        }
        self.accept()
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

/// A listener is ready when a client waits to be accepted.
impl Waitable for Listener {
    fn wait_fd(&self) -> Result<BorrowedFd<'_>> {
        Ok(self.as_fd())
    }
}

/// Connects to a [`Listener`]: Python's `multiprocessing.connection.Client`.
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
        auth::client(fd.as_fd(), authkey.as_bytes())?;
        Connection::from_fd(fd, true, true)
    }
}

/// Connects and authenticates, returning the raw socket (for manager clients).
pub(crate) fn connect_raw(address: &str, authkey: &AuthKey) -> Result<OwnedFd> {
    let (fd, _) = Address::parse(address)?.connect(address)?;
    auth::client(fd.as_fd(), authkey.as_bytes())?;
    Ok(fd)
}

/// The server side of the handshake on an accepted socket.
pub(crate) fn authenticate_server(fd: BorrowedFd<'_>, authkey: &AuthKey) -> Result<()> {
    auth::server(fd, authkey.as_bytes())
}
