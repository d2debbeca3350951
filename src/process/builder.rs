//! [`Builder`]: [`spawn`](crate::spawn) with settings, as `std::thread::Builder` is
//! `std::thread::spawn` with settings.

use std::ffi::OsStr;
use std::process::{ChildStderr, ChildStdin, ChildStdout};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::join::{JoinHandle, spawn_configured};
use super::options::{ChildOptions, Stdio};
use super::{Context, default_context};
use crate::error::Result;

/// Settings for a [`spawn`](crate::spawn)ed child: its name, start method, environment
/// and standard streams (`std::process::Command`'s `env`, `env_remove`, `env_clear`,
/// `stdin`, `stdout`, `stderr`).
///
/// # Examples
///
/// ```
/// use std::io::Read;
/// use multiprocess::{Builder, Stdio};
/// fn level(_: ()) -> String {
///     println!("working");
///     std::env::var("LEVEL").unwrap()
/// }
/// multiprocess::init();
/// let mut h = Builder::new()
///     .name("worker")
///     .env("LEVEL", "3")
///     .stdout(Stdio::piped())
///     .spawn(level, ())?;
/// let mut out = String::new();
/// h.take_stdout().unwrap().read_to_string(&mut out)?;
/// assert_eq!((h.join()?, out.as_str()), ("3".to_string(), "working\n"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct Builder {
    name: Option<String>,
    ctx: Option<Context>,
    opts: ChildOptions,
}

impl Builder {
    /// No settings: [`spawn`](Builder::spawn) then behaves as [`crate::spawn`].
    ///
    /// # Examples
    ///
    /// ```
    /// fn id(x: u8) -> u8 { x }
    /// multiprocess::init();
    /// assert_eq!(multiprocess::Builder::new().spawn(id, 4)?.join()?, 4);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn new() -> Self {
        Builder::default()
    }

    /// The child's name (`current_process().name()` in it).
    ///
    /// # Examples
    ///
    /// ```
    /// fn my_name(_: ()) -> String { multiprocess::current_process().name().to_string() }
    /// multiprocess::init();
    /// let h = multiprocess::Builder::new().name("w1").spawn(my_name, ())?;
    /// assert_eq!(h.join()?, "w1");
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Uses `ctx`'s start method instead of the default.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{Builder, StartMethod, get_context};
    /// fn id(x: u8) -> u8 { x }
    /// multiprocess::init();
    /// let h = Builder::new().context(get_context(StartMethod::Spawn)).spawn(id, 1)?;
    /// assert_eq!(h.join()?, 1);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn context(mut self, ctx: Context) -> Self {
        self.ctx = Some(ctx);
        self
    }

    /// Sets a variable in the child's environment (see
    /// [`Process::env`](crate::Process::env)).
    ///
    /// # Examples
    ///
    /// See [`Builder`].
    pub fn env(mut self, key: impl AsRef<OsStr>, val: impl AsRef<OsStr>) -> Self {
        self.opts.env(key.as_ref(), val.as_ref());
        self
    }

    /// Sets several variables (see [`env`](Builder::env)).
    ///
    /// # Examples
    ///
    /// ```
    /// fn sum(_: ()) -> u32 {
    ///     ["A", "B"].iter().map(|k| std::env::var(k).unwrap().parse::<u32>().unwrap()).sum()
    /// }
    /// multiprocess::init();
    /// let h = multiprocess::Builder::new().envs([("A", "1"), ("B", "2")]).spawn(sum, ())?;
    /// assert_eq!(h.join()?, 3);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn envs<K, V>(mut self, vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (k, v) in vars {
            self.opts.env(k.as_ref(), v.as_ref());
        }
        self
    }

    /// Removes a variable from the child's environment.
    ///
    /// # Examples
    ///
    /// ```
    /// fn home(_: ()) -> bool { std::env::var_os("HOME").is_some() }
    /// multiprocess::init();
    /// assert!(!multiprocess::Builder::new().env_remove("HOME").spawn(home, ())?.join()?);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.opts.env_remove(key.as_ref());
        self
    }

    /// Starts from an empty environment.
    ///
    /// # Examples
    ///
    /// ```
    /// fn count(_: ()) -> usize { std::env::vars_os().count() }
    /// multiprocess::init();
    /// assert_eq!(multiprocess::Builder::new().env_clear().spawn(count, ())?.join()?, 0);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn env_clear(mut self) -> Self {
        self.opts.env_clear();
        self
    }

    /// The child's standard input (see [`Stdio`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{Builder, Stdio};
    /// fn read_all(_: ()) -> usize {
    ///     std::io::read_to_string(std::io::stdin()).unwrap().len()
    /// }
    /// multiprocess::init();
    /// assert_eq!(Builder::new().stdin(Stdio::null()).spawn(read_all, ())?.join()?, 0);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn stdin(mut self, s: impl Into<Stdio>) -> Self {
        self.opts.set_stdio(0, s.into());
        self
    }

    /// The child's standard output (see [`Stdio`]).
    ///
    /// # Examples
    ///
    /// See [`Builder`].
    pub fn stdout(mut self, s: impl Into<Stdio>) -> Self {
        self.opts.set_stdio(1, s.into());
        self
    }

    /// The child's standard error (see [`Stdio`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{Builder, Stdio};
    /// fn quiet(_: ()) { eprintln!("not shown"); }
    /// multiprocess::init();
    /// Builder::new().stderr(Stdio::null()).spawn(quiet, ())?.join()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn stderr(mut self, s: impl Into<Stdio>) -> Self {
        self.opts.set_stdio(2, s.into());
        self
    }

    /// Starts `f(args)` in a child with these settings.
    ///
    /// # Errors
    ///
    /// As [`crate::spawn`]; [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput)
    /// for an invalid environment variable (see
    /// [`Process::env`](crate::Process::env)).
    ///
    /// # Examples
    ///
    /// See [`Builder`].
    pub fn spawn<A, R>(self, f: fn(A) -> R, args: A) -> Result<JoinHandle<R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        let ctx = self.ctx.unwrap_or_else(default_context);
        spawn_configured(ctx, f, args, self.name, self.opts)
    }
}

/// The pipe ends of a child started by a [`Builder`] with piped streams.
impl<R> JoinHandle<R> {
    /// Takes our end of the child's piped standard input.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// use multiprocess::{Builder, Stdio};
    /// fn read_all(_: ()) -> String { std::io::read_to_string(std::io::stdin()).unwrap() }
    /// multiprocess::init();
    /// let mut h = Builder::new().stdin(Stdio::piped()).spawn(read_all, ())?;
    /// let mut input = h.take_stdin().unwrap();
    /// input.write_all(b"abc")?;
    /// drop(input); // end of file for the child
    /// assert_eq!(h.join()?, "abc");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.stdio.stdin.take()
    }

    /// Takes our end of the child's piped standard output.
    ///
    /// # Examples
    ///
    /// See [`Builder`].
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.stdio.stdout.take()
    }

    /// Takes our end of the child's piped standard error.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Read;
    /// use multiprocess::{Builder, Stdio};
    /// fn warn(_: ()) { eprintln!("careful"); }
    /// multiprocess::init();
    /// let mut h = Builder::new().stderr(Stdio::piped()).spawn(warn, ())?;
    /// let mut err = String::new();
    /// h.take_stderr().unwrap().read_to_string(&mut err)?;
    /// h.join()?;
    /// assert_eq!(err, "careful\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.stdio.stderr.take()
    }
}
