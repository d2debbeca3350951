//! Contexts: Python's `get_context`, `set_start_method`, `get_start_method`. A
//! [`Context`] fixes a start method; the constructors it offers for queues, locks,
//! shared values and managers sit at the top of the crate (`src/context.rs`), since
//! they gather layers above this one.

use serde::{Serialize, de::DeserializeOwned};

use super::method::{DEFAULT_START_METHOD, StartMethod};
use super::state::state;
use super::{JoinHandle, Process};
use crate::error::{Error, Result};

/// Sets the start method of the default context, once.
///
/// # Errors
///
/// [`ErrorKind::InvalidState`](crate::ErrorKind::InvalidState) if another method was already set (or fixed by
/// [`get_start_method`]), as Python's `set_start_method` without `force`.
///
/// # Examples
///
/// ```
/// use multiprocess::StartMethod;
/// multiprocess::set_start_method(StartMethod::Spawn)?;
/// assert_eq!(multiprocess::get_start_method(), StartMethod::Spawn);
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub fn set_start_method(method: StartMethod) -> Result<()> {
    let mut m = state()
        .start_method
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    match *m {
        Some(old) if old != method => Err(Error::state(format!(
            "the start method is already set to {old}; use get_context({method}) for another"
        ))),
        _ => {
            *m = Some(method);
            Ok(())
        }
    }
}

/// The default context's start method (fixing it to the default if none was set).
///
/// # Examples
///
/// ```
/// // Unless `set_start_method` chose another, the default:
/// assert_eq!(multiprocess::get_start_method(), multiprocess::DEFAULT_START_METHOD);
/// ```
pub fn get_start_method() -> StartMethod {
    *state()
        .start_method
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert(DEFAULT_START_METHOD)
}

/// A context: the start method every process made from it uses.
///
/// # Examples
///
/// ```
/// use multiprocess::{StartMethod, get_context};
///
/// fn hello(n: u32) { println!("hello {n}"); }
///
/// multiprocess::init();
/// let ctx = get_context(StartMethod::Spawn);
/// let mut p = ctx.process(hello, 1);
/// p.start()?;
/// p.join()?;
/// assert_eq!(p.exitcode(), Some(0));
/// # Ok::<(), multiprocess::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    method: Option<StartMethod>,
}

/// A context for `method`, as Python's `get_context("spawn")`.
///
/// # Examples
///
/// ```
/// use multiprocess::{StartMethod, get_context};
/// assert_eq!(get_context(StartMethod::Fork).start_method(), StartMethod::Fork);
/// ```
pub fn get_context(method: StartMethod) -> Context {
    Context {
        method: Some(method),
    }
}

/// The default context (whose start method is [`get_start_method`]'s).
///
/// # Examples
///
/// ```
/// let ctx = multiprocess::default_context();
/// assert_eq!(ctx.start_method(), multiprocess::get_start_method());
/// ```
pub fn default_context() -> Context {
    Context { method: None }
}

impl Default for Context {
    fn default() -> Self {
        default_context()
    }
}

impl Context {
    /// The start method of this context.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{StartMethod, get_context};
    /// assert_eq!(get_context(StartMethod::Spawn).start_method(), StartMethod::Spawn);
    /// ```
    pub fn start_method(&self) -> StartMethod {
        self.method.unwrap_or_else(get_start_method)
    }

    /// A [`Process`] started with this context's method.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{StartMethod, get_context};
    /// fn hello(n: u8) { println!("hello {n}"); }
    /// multiprocess::init();
    /// let mut p = get_context(StartMethod::ForkServer).process(hello, 7);
    /// p.start()?;
    /// p.join()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn process<A>(&self, target: fn(A), args: A) -> Process<A>
    where
        A: Serialize + DeserializeOwned + 'static,
    {
        Process::new(target, args).context(*self)
    }

    /// [`crate::spawn`] with this context's method.
    ///
    /// # Errors
    ///
    /// As [`crate::spawn`].
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{StartMethod, get_context};
    /// fn double(x: i64) -> i64 { 2 * x }
    /// multiprocess::init();
    /// for m in multiprocess::get_all_start_methods() {
    ///     assert_eq!(get_context(m).spawn(double, 21)?.join()?, 42);
    /// }
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn spawn<A, R>(&self, f: fn(A) -> R, args: A) -> Result<JoinHandle<R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        super::spawn_with(*self, f, args)
    }
}
