//! Custom shared objects, and the values a server registers by name.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::protocol::{Init, Item};
use crate::error::{Error, ErrorKind, Result};
use crate::wire::codec;

/// An object of your own type that lives in a manager's server and is called by
/// method name: Python's `BaseManager.register(typeid, callable, exposed=...)`.
///
/// [`methods`](SharedObject::methods) names what clients may call (Python's
/// `exposed`); [`call`](SharedObject::call) gets the method's name and its encoded
/// arguments and returns the encoded result. [`invoke`] does the decoding and encoding
/// for you. Clients call it through an [`ObjectProxy`](crate::ObjectProxy).
///
/// # Examples
///
/// ```
/// use multiprocess::{SharedObject, invoke};
///
/// #[derive(Default)]
/// struct Counter { n: u64 }
///
/// impl SharedObject for Counter {
///     fn methods(&self) -> &'static [&'static str] { &["add", "get"] }
///     fn call(&mut self, method: &str, args: &[u8]) -> multiprocess::Result<Vec<u8>> {
///         match method {
///             "add" => invoke(args, |by: u64| { self.n += by; self.n }),
///             _ => invoke(args, |(): ()| self.n),
///         }
///     }
/// }
///
/// let mut c = Counter::default();
/// let out = c.call("add", &multiprocess::encode_args(&5u64)?)?;
/// # let _ = out;
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub trait SharedObject: Send + 'static {
    /// The methods clients may call; a call to another name is an
    /// [`ErrorKind::NotFound`] error that lists these.
    fn methods(&self) -> &'static [&'static str];

    /// Runs `method` with the encoded `args`; returns the encoded result.
    ///
    /// # Errors
    ///
    /// Whatever the method reports; it reaches the caller with its kind and message.
    fn call(&mut self, method: &str, args: &[u8]) -> Result<Vec<u8>>;
}

/// Decodes `args` as an `A`, runs `f` and encodes its result: the body of a
/// [`SharedObject::call`] arm.
///
/// # Errors
///
/// [`ErrorKind::Deserialize`] if the caller's arguments are not an `A`;
/// [`ErrorKind::Serialize`] if the result cannot be encoded.
///
/// # Examples
///
/// ```
/// let args = multiprocess::encode_args(&(2u32, 3u32))?;
/// let out = multiprocess::invoke(&args, |(a, b): (u32, u32)| a * b)?;
/// assert_eq!(out, multiprocess::encode_args(&6u32)?);
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub fn invoke<A: DeserializeOwned, R: Serialize>(
    args: &[u8],
    f: impl FnOnce(A) -> R,
) -> Result<Vec<u8>> {
    let a = codec::decode::<A>(args, Vec::new())?;
    encode_args(&f(a))
}

/// Encodes a value as the manager does (postcard); for calling
/// [`SharedObject::call`] directly, as in tests.
///
/// # Errors
///
/// [`ErrorKind::Serialize`] if it cannot be encoded, or if it holds a handle (a
/// connection, queue, lock, ...): handles cannot be stored in a manager; pass proxies.
///
/// # Examples
///
/// ```
/// assert_eq!(multiprocess::encode_args(&1u8)?, vec![1]);
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub fn encode_args<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let enc = codec::encode(value)?;
    if !enc.fds.is_empty() {
        return Err(Error::new(
            ErrorKind::Serialize,
            "a value stored in a manager cannot hold handles (connections, queues, \
             locks, shared memory): store plain data, or a manager proxy",
        ));
    }
    Ok(enc.bytes)
}

/// An object for a server to register by name ([`ManagerServer::register`]): Python's
/// `register('get_queue', callable=lambda: queue)`.
///
/// [`ManagerServer::register`]: crate::ManagerServer::register
///
/// # Examples
///
/// ```
/// use multiprocess::Shared;
/// let q = Shared::queue();
/// let d = Shared::dict();
/// # drop((q, d));
/// ```
pub struct Shared(pub(crate) SharedInner);

pub(crate) enum SharedInner {
    Builtin(Init),
    Custom(Box<dyn SharedObject>),
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            SharedInner::Builtin(i) => write!(f, "Shared({i:?})"),
            SharedInner::Custom(_) => f.write_str("Shared(<custom object>)"),
        }
    }
}

impl Shared {
    /// An unbounded queue.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = multiprocess::Shared::queue();
    /// ```
    pub fn queue() -> Shared {
        Shared(SharedInner::Builtin(Init::Queue {
            maxsize: None,
            joinable: false,
        }))
    }

    /// A queue of at most `maxsize` items (`0`: unbounded, as in Python).
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = multiprocess::Shared::bounded_queue(10);
    /// ```
    pub fn bounded_queue(maxsize: u64) -> Shared {
        Shared(SharedInner::Builtin(Init::Queue {
            maxsize: (maxsize > 0).then_some(maxsize),
            joinable: false,
        }))
    }

    /// A joinable queue (`task_done`, `join`).
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = multiprocess::Shared::joinable_queue();
    /// ```
    pub fn joinable_queue() -> Shared {
        Shared(SharedInner::Builtin(Init::Queue {
            maxsize: None,
            joinable: true,
        }))
    }

    /// An empty dict.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = multiprocess::Shared::dict();
    /// ```
    pub fn dict() -> Shared {
        Shared(SharedInner::Builtin(Init::Dict(Vec::new())))
    }

    /// An empty list.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = multiprocess::Shared::list();
    /// ```
    pub fn list() -> Shared {
        Shared(SharedInner::Builtin(Init::List(Vec::new())))
    }

    /// A lock.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = multiprocess::Shared::lock();
    /// ```
    pub fn lock() -> Shared {
        Shared(SharedInner::Builtin(Init::Lock))
    }

    /// An event.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = multiprocess::Shared::event();
    /// ```
    pub fn event() -> Shared {
        Shared(SharedInner::Builtin(Init::Event))
    }

    /// A namespace.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = multiprocess::Shared::namespace();
    /// ```
    pub fn namespace() -> Shared {
        Shared(SharedInner::Builtin(Init::Namespace))
    }

    /// A value holding `x`.
    ///
    /// # Errors
    ///
    /// As [`encode_args`].
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = multiprocess::Shared::value(&0u64)?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn value<T: Serialize>(x: &T) -> Result<Shared> {
        Ok(Shared(SharedInner::Builtin(Init::Value(Item {
            bytes: encode_args(x)?,
            refs: Vec::new(),
        }))))
    }

    /// An object of your own type (see [`SharedObject`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{Shared, SharedObject};
    /// struct Nothing;
    /// impl SharedObject for Nothing {
    ///     fn methods(&self) -> &'static [&'static str] { &[] }
    ///     fn call(&mut self, _: &str, _: &[u8]) -> multiprocess::Result<Vec<u8>> { Ok(vec![]) }
    /// }
    /// let _ = Shared::object(Nothing);
    /// ```
    pub fn object(obj: impl SharedObject) -> Shared {
        Shared(SharedInner::Custom(Box::new(obj)))
    }
}
