//! One error type for the whole crate: [`Error`] with a [`kind()`](Error::kind).

use std::fmt;

/// What went wrong, broadly. Match on this rather than on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
///
/// # Examples
///
/// ```
/// use multiprocess::ErrorKind;
/// multiprocess::init();
/// let (a, b) = multiprocess::pipe::<u8>()?;
/// drop(a);
/// match b.recv() {
///     Err(e) if e.kind() == ErrorKind::Disconnected => println!("peer gone"),
///     other => panic!("unexpected {other:?}"),
/// }
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub enum ErrorKind {
    /// An operating-system call failed; [`Error::source`](std::error::Error::source)
    /// holds the [`std::io::Error`].
    Io,
    /// The other end of a connection is closed (the peer closed it, exited or was
    /// killed).
    Disconnected,
    /// A `*_timeout` call ran out of time.
    Timeout,
    /// A value could not be serialized (for example a map with non-string keys in a
    /// format that needs them, or a handle serialized outside `multiprocess`).
    Serialize,
    /// Received bytes did not decode as the expected type: the peer sent another
    /// type, or bytes that are malformed or hostile (a length longer than the message,
    /// nesting deeper than 128 levels, bytes left over after the value). Decoding never
    /// reserves more than a small multiple of the bytes received, whatever they claim;
    /// the message is dropped and the connection, queue or server goes on with the
    /// next one.
    Deserialize,
    /// A malformed, truncated or oversized frame arrived.
    Protocol,
    /// The object is in the wrong state for the call (a process started twice, joined
    /// before start, used after `close()`, ...).
    InvalidState,
    /// The call is not allowed here (sending on a read-only connection, a daemonic
    /// process starting children, ...).
    NotPermitted,
    /// A buffer given to [`recv_bytes_into`](crate::Connection::recv_bytes_into) was too
    /// short; [`Error::message`] holds the whole message.
    BufferTooShort,
    /// A child process panicked; the message says what and where.
    Panicked,
    /// A child process ended without a result: killed by a signal or exited early.
    ProcessDied,
    /// A queue had no item within the time allowed (`try_get`, `get_timeout`):
    /// Python's `queue.Empty`.
    Empty,
    /// A bounded queue had no room within the time allowed (`try_put`,
    /// `put_timeout`): Python's `queue.Full`.
    Full,
    /// A [`Barrier`](crate::Barrier) is broken: aborted, reset while parties waited,
    /// a party timed out, or its action panicked (Python's `BrokenBarrierError`).
    BrokenBarrier,
    /// The requested feature or start method is not available on this platform.
    Unsupported,
    /// An argument was out of range.
    InvalidInput,
    /// A named object already exists (`SharedMemory::create` of a taken name).
    AlreadyExists,
    /// A named object does not exist (`SharedMemory::open` of a missing name, or
    /// `unlink` of one already unlinked).
    NotFound,
    /// A pool or executor cannot run tasks any more: its initializer failed in a
    /// worker (Python's `BrokenProcessPool`), or it was shut down.
    BrokenPool,
    /// A task or future was cancelled before it ran, or was still pending or running
    /// when its pool was terminated (Python's `CancelledError`).
    Cancelled,
    /// An authkey challenge failed: the peer used another key, or none
    /// (Python's `AuthenticationError`).
    Authentication,
}

impl ErrorKind {
    /// Every kind, in a fixed order: a kind's index here is its number on the wire
    /// (results from worker hosts, errors from a manager server). New kinds go last.
    const ALL: [ErrorKind; 21] = [
        ErrorKind::Io,
        ErrorKind::Disconnected,
        ErrorKind::Timeout,
        ErrorKind::Serialize,
        ErrorKind::Deserialize,
        ErrorKind::Protocol,
        ErrorKind::InvalidState,
        ErrorKind::NotPermitted,
        ErrorKind::BufferTooShort,
        ErrorKind::Panicked,
        ErrorKind::ProcessDied,
        ErrorKind::Empty,
        ErrorKind::Full,
        ErrorKind::BrokenBarrier,
        ErrorKind::Unsupported,
        ErrorKind::InvalidInput,
        ErrorKind::AlreadyExists,
        ErrorKind::NotFound,
        ErrorKind::BrokenPool,
        ErrorKind::Cancelled,
        ErrorKind::Authentication,
    ];

    /// This kind's number on the wire.
    #[allow(dead_code)] // without the `redis` feature only the manager uses it
    pub(crate) fn code(self) -> u8 {
        Self::ALL.iter().position(|&k| k == self).unwrap_or(0) as u8
    }

    /// The kind numbered `code` on the wire; `None` for a number no kind has (input
    /// from another process: the caller picks the kind that says so).
    pub(crate) fn from_code(code: u8) -> Option<ErrorKind> {
        Self::ALL.get(usize::from(code)).copied()
    }

    /// Every kind, for tests that go through all of them.
    #[cfg(test)]
    pub(crate) fn all() -> &'static [ErrorKind] {
        &Self::ALL
    }
}

/// The error type of every fallible call in this crate.
///
/// # Examples
///
/// ```
/// use multiprocess::ErrorKind;
/// # multiprocess::init();
/// let (a, b) = multiprocess::pipe::<u32>()?;
/// drop(b);
/// let err = a.recv().unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Disconnected);
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub struct Error {
    kind: ErrorKind,
    msg: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    message: Option<Vec<u8>>,
    exitcode: Option<i32>,
}

impl Error {
    /// A new error of `kind` with a message.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{Error, ErrorKind};
    /// let e = Error::new(ErrorKind::Timeout, "took too long");
    /// assert_eq!((e.kind(), e.to_string()), (ErrorKind::Timeout, "took too long".to_string()));
    /// ```
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> Self {
        Error {
            kind,
            msg: msg.into(),
            source: None,
            message: None,
            exitcode: None,
        }
    }

    pub(crate) fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        self.source = Some(source.into());
        self
    }

    pub(crate) fn with_message(mut self, bytes: Vec<u8>) -> Self {
        self.message = Some(bytes);
        self
    }

    pub(crate) fn with_exitcode(mut self, code: i32) -> Self {
        self.exitcode = Some(code);
        self
    }

    /// The broad category of this error.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::ErrorKind;
    /// multiprocess::init();
    /// let (a, _b) = multiprocess::pipe_simplex::<u8>()?;
    /// assert_eq!(a.send(&1).unwrap_err().kind(), ErrorKind::NotPermitted);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// For [`ErrorKind::BufferTooShort`]: the whole message that did not fit.
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let (a, b) = multiprocess::pipe::<()>()?;
    /// a.send_bytes(b"0123456789")?;
    /// let err = b.recv_bytes_into(&mut [0u8; 4], 0).unwrap_err();
    /// assert_eq!(err.message(), Some(&b"0123456789"[..]));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn message(&self) -> Option<&[u8]> {
        self.message.as_deref()
    }

    /// For [`ErrorKind::Panicked`] and [`ErrorKind::ProcessDied`]: the child's exit code
    /// in Python's convention (`-N` for signal `N`).
    ///
    /// # Examples
    ///
    /// ```
    /// fn bail(code: i32) -> u8 { std::process::exit(code) }
    /// multiprocess::init();
    /// let err = multiprocess::spawn(bail, 4)?.join().unwrap_err();
    /// assert_eq!(err.exitcode(), Some(4));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn exitcode(&self) -> Option<i32> {
        self.exitcode
    }

    pub(crate) fn io(context: &str, e: std::io::Error) -> Self {
        match e.raw_os_error() {
            Some(libc::EPIPE) | Some(libc::ECONNRESET) => Error::new(
                ErrorKind::Disconnected,
                format!("{context}: the peer closed the connection"),
            )
            .with_source(e),
            // Our own refusals of a caller's input (no OS error behind them), such as
            // more handles than one message can carry, are the caller's to fix.
            None if e.kind() == std::io::ErrorKind::InvalidInput => {
                Error::new(ErrorKind::InvalidInput, format!("{context}: {e}")).with_source(e)
            }
            _ => Error::new(ErrorKind::Io, format!("{context}: {e}")).with_source(e),
        }
    }

    /// A copy of this error for a second receiver (the source is kept as text).
    pub(crate) fn duplicate(&self) -> Self {
        let mut e = Error::new(self.kind, self.msg.clone());
        e.message = self.message.clone();
        e.exitcode = self.exitcode;
        if let Some(s) = &self.source {
            e.source = Some(s.to_string().into());
        }
        e
    }

    pub(crate) fn state(msg: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidState, msg)
    }

    pub(crate) fn disconnected() -> Self {
        Error::new(
            ErrorKind::Disconnected,
            "the other end of the connection is closed",
        )
    }

    pub(crate) fn timeout(what: &str) -> Self {
        Error::new(ErrorKind::Timeout, format!("{what} timed out"))
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("msg", &self.msg);
        if let Some(s) = &self.source {
            d.field("source", s);
        }
        if let Some(c) = self.exitcode {
            d.field("exitcode", &c);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|s| &**s as &(dyn std::error::Error + 'static))
    }
}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        let kind = match e.kind {
            ErrorKind::Disconnected => std::io::ErrorKind::BrokenPipe,
            ErrorKind::Timeout => std::io::ErrorKind::TimedOut,
            ErrorKind::InvalidInput => std::io::ErrorKind::InvalidInput,
            ErrorKind::AlreadyExists => std::io::ErrorKind::AlreadyExists,
            ErrorKind::NotFound => std::io::ErrorKind::NotFound,
            ErrorKind::Deserialize | ErrorKind::Protocol => std::io::ErrorKind::InvalidData,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, e)
    }
}

/// Lets `?` turn a [`std::io::Error`] into an [`Error`] in functions that return
/// [`multiprocess::Result`](Result).
///
/// An `io::Error` made from a `multiprocess::Error` (by the conversion the other way)
/// gives that error back whole. Otherwise the kind follows the `io::Error`'s:
/// `BrokenPipe`, `ConnectionReset` and `UnexpectedEof` become
/// [`ErrorKind::Disconnected`], `TimedOut` [`ErrorKind::Timeout`], `InvalidInput`,
/// `AlreadyExists` and `NotFound` their namesakes, anything else [`ErrorKind::Io`];
/// the `io::Error` is kept as the [`source`](std::error::Error::source).
///
/// # Examples
///
/// ```
/// use multiprocess::ErrorKind;
///
/// fn config_len(path: &str) -> multiprocess::Result<usize> {
///     Ok(std::fs::read(path)?.len()) // io::Error -> multiprocess::Error
/// }
///
/// assert_eq!(config_len("/no/such/file").unwrap_err().kind(), ErrorKind::NotFound);
/// ```
impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind as Io;
        if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            let inner = e.into_inner().expect("checked above");
            return *inner.downcast::<Error>().expect("checked above");
        }
        let kind = match e.kind() {
            Io::BrokenPipe | Io::ConnectionReset | Io::UnexpectedEof => ErrorKind::Disconnected,
            Io::TimedOut => ErrorKind::Timeout,
            Io::InvalidInput => ErrorKind::InvalidInput,
            Io::AlreadyExists => ErrorKind::AlreadyExists,
            Io::NotFound => ErrorKind::NotFound,
            _ => ErrorKind::Io,
        };
        Error::new(kind, e.to_string()).with_source(e)
    }
}

/// `Result<T, multiprocess::Error>`.
///
/// # Examples
///
/// ```
/// fn first_message(c: &multiprocess::Connection<u8>) -> multiprocess::Result<u8> {
///     c.recv()
/// }
/// # multiprocess::init();
/// # let (a, b) = multiprocess::pipe()?; a.send(&3)?; assert_eq!(first_message(&b)?, 3);
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_code() {
        // A new kind fails to compile here until it is in `ErrorKind::ALL`.
        let listed = |k: ErrorKind| match k {
            ErrorKind::Io
            | ErrorKind::Disconnected
            | ErrorKind::Timeout
            | ErrorKind::Serialize
            | ErrorKind::Deserialize
            | ErrorKind::Protocol
            | ErrorKind::InvalidState
            | ErrorKind::NotPermitted
            | ErrorKind::BufferTooShort
            | ErrorKind::Panicked
            | ErrorKind::ProcessDied
            | ErrorKind::Empty
            | ErrorKind::Full
            | ErrorKind::BrokenBarrier
            | ErrorKind::Unsupported
            | ErrorKind::InvalidInput
            | ErrorKind::AlreadyExists
            | ErrorKind::NotFound
            | ErrorKind::BrokenPool
            | ErrorKind::Cancelled
            | ErrorKind::Authentication => k,
        };
        for (i, &k) in ErrorKind::all().iter().enumerate() {
            assert_eq!(listed(k).code() as usize, i);
            assert_eq!(ErrorKind::from_code(k.code()), Some(k));
        }
        assert_eq!(ErrorKind::from_code(ErrorKind::all().len() as u8), None);
    }

    #[test]
    fn io_errors_convert_with_their_kind_and_source() {
        let cases = [
            (std::io::ErrorKind::BrokenPipe, ErrorKind::Disconnected),
            (std::io::ErrorKind::UnexpectedEof, ErrorKind::Disconnected),
            (std::io::ErrorKind::TimedOut, ErrorKind::Timeout),
            (std::io::ErrorKind::NotFound, ErrorKind::NotFound),
            (std::io::ErrorKind::PermissionDenied, ErrorKind::Io),
        ];
        for (io, kind) in cases {
            let e = Error::from(std::io::Error::new(io, "x"));
            assert_eq!(e.kind(), kind, "{io:?}");
            assert!(std::error::Error::source(&e).is_some());
        }
    }

    #[test]
    fn a_round_trip_through_io_error_keeps_the_error() {
        let original = Error::new(ErrorKind::BrokenBarrier, "the barrier broke");
        let back = Error::from(std::io::Error::from(original));
        assert_eq!(back.kind(), ErrorKind::BrokenBarrier);
        assert_eq!(back.to_string(), "the barrier broke");
    }
}
