//! [`Served`](crate::Served): what a server registers by name (a built-in kind, or an object of your
//! own type), for [`ManagerServer::register`](crate::ManagerServer::register) and
//! [`ManagerBuilder::register`](crate::ManagerBuilder::register).

use serde::Serialize;

use super::kinds::Init;
use super::kinds::custom::SharedObject;
use super::protocol::{Item, encode_args};
use crate::error::Result;

/// An object for a server to register by name ([`ManagerServer::register`](crate::ManagerServer::register)): Python's
/// `register('get_queue', callable=lambda: queue)`.
///
/// [`ManagerServer::register`](crate::ManagerServer::register): crate::ManagerServer::register
///
/// # Examples
///
/// ```
/// use multiprocess::Served;
/// let q = Served::queue();
/// let d = Served::dict();
/// # drop((q, d));
/// ```
pub struct Served(pub(crate) ServedInner);

pub(crate) enum ServedInner {
    Builtin(Init),
    Custom(Box<dyn SharedObject>),
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            ServedInner::Builtin(i) => write!(f, "Served({i:?})"),
            ServedInner::Custom(_) => f.write_str("Served(<custom object>)"),
        }
    }
}

impl Served {
    /// An unbounded queue.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = multiprocess::Served::queue();
    /// ```
    pub fn queue() -> Served {
        Served(ServedInner::Builtin(Init::Queue {
            maxsize: None,
            joinable: false,
        }))
    }

    /// A queue of at most `maxsize` items (`0`: unbounded, as in Python).
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = multiprocess::Served::bounded_queue(10);
    /// ```
    pub fn bounded_queue(maxsize: u64) -> Served {
        Served(ServedInner::Builtin(Init::Queue {
            maxsize: (maxsize > 0).then_some(maxsize),
            joinable: false,
        }))
    }

    /// A joinable queue (`task_done`, `join`).
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = multiprocess::Served::joinable_queue();
    /// ```
    pub fn joinable_queue() -> Served {
        Served(ServedInner::Builtin(Init::Queue {
            maxsize: None,
            joinable: true,
        }))
    }

    /// An empty dict.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = multiprocess::Served::dict();
    /// ```
    pub fn dict() -> Served {
        Served(ServedInner::Builtin(Init::Dict(Vec::new())))
    }

    /// An empty list.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = multiprocess::Served::list();
    /// ```
    pub fn list() -> Served {
        Served(ServedInner::Builtin(Init::List(Vec::new())))
    }

    /// A lock.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = multiprocess::Served::lock();
    /// ```
    pub fn lock() -> Served {
        Served(ServedInner::Builtin(Init::Lock))
    }

    /// An event.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = multiprocess::Served::event();
    /// ```
    pub fn event() -> Served {
        Served(ServedInner::Builtin(Init::Event))
    }

    /// A namespace.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = multiprocess::Served::namespace();
    /// ```
    pub fn namespace() -> Served {
        Served(ServedInner::Builtin(Init::Namespace))
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
    /// let _ = multiprocess::Served::value(&0u64)?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn value<T: Serialize>(x: &T) -> Result<Served> {
        Ok(Served(ServedInner::Builtin(Init::Value(Item {
            bytes: encode_args(x)?,
            refs: Vec::new(),
        }))))
    }

    /// An object of your own type (see [`SharedObject`](crate::SharedObject)).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{Served, SharedObject};
    /// struct Nothing;
    /// impl SharedObject for Nothing {
    ///     fn methods(&self) -> &'static [&'static str] { &[] }
    ///     fn call(&mut self, _: &str, _: &[u8]) -> multiprocess::Result<Vec<u8>> { Ok(vec![]) }
    /// }
    /// let _ = Served::object(Nothing);
    /// ```
    pub fn object(obj: impl SharedObject) -> Served {
        Served(ServedInner::Custom(Box::new(obj)))
    }
}
