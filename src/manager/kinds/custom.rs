//! Objects of your own types in a manager: the [`SharedObject`](crate::SharedObject) trait they implement,
//! [`ObjectProxy`](crate::ObjectProxy) that calls their methods by name, and how the server applies a call.

use serde::Deserialize;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind, Result};
use crate::manager::handler::{Cell, Cx};
use crate::manager::protocol::{Bytes, Family, Ops, Reply, encode_args};
use crate::manager::proxy::{proxy_type, value};
use crate::process::payload_text;
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
    /// [`ErrorKind::NotFound`](crate::ErrorKind::NotFound) error that lists these.
    fn methods(&self) -> &'static [&'static str];

    /// Runs `method` with the encoded `args`; returns the encoded result.
    ///
    /// # Errors
    ///
    /// Whatever the method reports; it reaches the caller with its kind and message.
    fn call(&mut self, method: &str, args: &[u8]) -> Result<Vec<u8>>;
}

/// Decodes `args` as an `A`, runs `f` and encodes its result: the body of a
/// [`SharedObject::call`](crate::SharedObject::call) arm.
///
/// # Errors
///
/// [`ErrorKind::Deserialize`](crate::ErrorKind::Deserialize) if the caller's arguments are not an `A`;
/// [`ErrorKind::Serialize`](crate::ErrorKind::Serialize) if the result cannot be encoded.
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

proxy_type!(
    /// A custom object in a manager (see [`SharedObject`](crate::SharedObject)):
    /// methods are called by name with serialized arguments.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{Manager, SharedObject, invoke};
    ///
    /// #[derive(Default)]
    /// struct Counter { n: u64 }
    /// impl SharedObject for Counter {
    ///     fn methods(&self) -> &'static [&'static str] { &["add"] }
    ///     fn call(&mut self, _m: &str, args: &[u8]) -> multiprocess::Result<Vec<u8>> {
    ///         invoke(args, |by: u64| { self.n += by; self.n })
    ///     }
    /// }
    /// fn counter() -> Box<dyn SharedObject> { Box::new(Counter::default()) }
    ///
    /// multiprocess::init();
    /// let m = Manager::builder().register_type("Counter", counter).start()?;
    /// let c = m.create("Counter")?;
    /// assert_eq!(c.call::<_, u64>("add", &2u64)?, 2);
    /// assert_eq!(c.call::<_, u64>("add", &3u64)?, 5);
    /// assert!(c.call::<_, u64>("sub", &1u64).is_err());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    ObjectProxy[], "Custom"
);

impl ObjectProxy {
    /// Calls `method` with `args`; decodes the result as an `R`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] for a method the object does not expose; whatever the
    /// method returns; [`ErrorKind::Panicked`], with its message, if it panics (the
    /// object stays served); otherwise as [`DictProxy::get`](crate::DictProxy::get).
    ///
    /// # Examples
    ///
    /// See [`ObjectProxy`](crate::ObjectProxy).
    pub fn call<A: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: &str,
        args: &A,
    ) -> Result<R> {
        value(
            self.home
                .call(&Op::Method(method.to_string(), encode_args(args)?))?,
        )
    }
}

/// A custom object's one operation: a method by name, with its encoded arguments.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Op {
    Method(String, Bytes),
}

impl Ops for Op {
    const FAMILY: Family = Family::Custom;
}

/// A custom object in the server.
pub(crate) type State = Box<dyn SharedObject>;

/// Applies `op` to the object.
pub(crate) fn apply(cell: &Cell<State>, op: Op, _cx: &mut Cx<'_>) -> Result<Reply> {
    let mut o = cell.lock();
    let Op::Method(name, args) = op;
    if !o.methods().contains(&name.as_str()) {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!(
                "method {name:?} is not exposed (exposed: {:?})",
                o.methods()
            ),
        ));
    }
    // A method that panics fails this call with its message, as a Python method's
    // exception reaches its caller; the connection, and the locks it holds, live on.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| o.call(&name, &args))) {
        Ok(r) => Ok(Reply::Bytes(r?)),
        Err(p) => Err(Error::new(
            ErrorKind::Panicked,
            format!("method {name:?} panicked: {}", payload_text(&*p)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    struct Adder(u64);
    impl SharedObject for Adder {
        fn methods(&self) -> &'static [&'static str] {
            &["add"]
        }
        fn call(&mut self, _: &str, args: &[u8]) -> Result<Vec<u8>> {
            invoke(args, |by: u64| {
                self.0 += by;
                self.0
            })
        }
    }

    #[test]
    fn only_exposed_methods_run() {
        let o: Cell<State> = Cell::new(Box::new(Adder(1)));
        let mut held = HashSet::new();
        Cx::detached(1, &mut held, |cx| {
            let add = |cx: &mut Cx<'_>, by: u64| {
                apply(&o, Op::Method("add".into(), encode_args(&by).unwrap()), cx)
            };
            assert_eq!(
                add(cx, 2).unwrap(),
                Reply::Bytes(encode_args(&3u64).unwrap())
            );
            let e = apply(&o, Op::Method("sub".into(), vec![]), cx).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotFound);
            assert!(e.to_string().contains("add"), "{e}");
            // Arguments of the wrong type are the method's error, not a panic.
            let e = apply(&o, Op::Method("add".into(), vec![1]), cx).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Deserialize);
        });
    }
}
