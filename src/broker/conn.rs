//! One synchronous Redis connection that spins briefly for its reply before it sleeps.
//!
//! # Why not `redis::Connection`
//!
//! The `redis` crate's blocking connection sleeps in `read` for every reply. A reply
//! then costs two wake-ups, the server's and ours, and on a VM a wake-up is tens of
//! microseconds. Measured on the 2-core VM of BENCH.md, one `HGET` over a Unix socket
//! (20,000 in a row, 3 runs): 71-82 us when the client sleeps in `read`, 21-31 us
//! when it spins on a non-blocking `recv` until the reply is there. redis-py and
//! `redis-benchmark` sleep (13,000 requests/s with one client). Every Redis manager
//! operation and every cluster round trip waits for such a reply.
//!
//! So [`RedisConn`] owns the socket and waits as this crate's pipes do: it spins for
//! [`SPIN`] (longer, up to half a millisecond, while replies take longer but still
//! come within the spin), then sleeps in `poll`, and the spin adapts to how fast
//! replies come ([`AdaptiveSpin`]): a server that is far away
//! or a CPU that is busy turns spinning off after one miss, and it is tried again
//! after a while. A command that waits inside Redis by design (`BLPOP`, `BLMOVE`,
//! `XREADGROUP ... BLOCK`, `WAIT`) never spins and teaches the spin nothing.
//!
//! The protocol is still the `redis` crate's: commands are packed by `redis::Cmd`,
//! replies parsed by [`redis::Parser`], and [`RedisConn`] is a
//! [`ConnectionLike`], so `query`, `Script::invoke` and pipelines work on it
//! unchanged. What this file adds is the socket: connect (TCP or Unix, from the same
//! URLs), the handshake (`AUTH`, `SELECT`), a bounded write, and the reader.
//!
//! # Bounds
//!
//! Everything from the server is treated as hostile input:
//!
//! * a whole reply (all the replies of a pipeline) must arrive within the
//!   connection's timeout; a server that drips bytes cannot hold a caller longer
//!   (the `redis` crate's own bound is per `read`);
//! * a reply may not exceed [`MAX_REPLY`] bytes (Redis's own largest string is
//!   512 MiB): past it the read fails with `InvalidData`;
//! * a reply that does not parse is an error, the connection is then closed
//!   ([`is_open`](ConnectionLike::is_open) is false) and callers make a new one.
//!
//! Only RESP2 is spoken (a `protocol=resp3` in the URL is ignored), and TLS URLs
//! (`rediss://`) are refused: the crate is built without TLS.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use ::redis::{
    ConnectionAddr, ConnectionInfo, ConnectionLike, Parser, RedisError, RedisResult, Value,
};

use crate::sys;
use crate::wire::frame::AdaptiveSpin;

/// The shortest spin for a reply before the caller sleeps, while replies come within
/// the spin (see the module docs and [`AdaptiveSpin`]).
pub(crate) const SPIN: Duration = Duration::from_micros(200);

/// The most bytes one request's replies may take (Redis's largest string, 512 MiB,
/// plus room for its framing).
pub(crate) const MAX_REPLY: u64 = 513 << 20;

/// A connection to one Redis server (see the module docs).
pub(crate) struct RedisConn {
    sock: Sock,
    parser: Parser,
    db: i64,
    timeout: Duration,
    spin: AdaptiveSpin,
    open: bool,
    /// [`MAX_REPLY`], smaller in tests.
    max_reply: u64,
}

enum Sock {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Sock {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Sock::Unix(s) => s.as_fd(),
            Sock::Tcp(s) => s.as_fd(),
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Sock::Unix(s) => s.write_all(bytes),
            Sock::Tcp(s) => s.write_all(bytes),
        }
    }
}

impl RedisConn {
    /// Connects to the server of `info` (parsed from a URL such as
    /// `redis://[user:password@]host:port/db` or `redis+unix:///path.sock`), bounding
    /// the connect, every write and every reply by `timeout`, and logs in as it says.
    pub(crate) fn open(info: &ConnectionInfo, timeout: Duration) -> RedisResult<RedisConn> {
        let sock = match info.addr() {
            ConnectionAddr::Unix(path) => {
                let s = UnixStream::connect(path)?;
                s.set_write_timeout(Some(timeout))?;
                Sock::Unix(s)
            }
            ConnectionAddr::Tcp(host, port) => {
                let s = connect_tcp(host, *port, timeout)?;
                s.set_nodelay(true)?;
                s.set_write_timeout(Some(timeout))?;
                Sock::Tcp(s)
            }
            other => {
                return Err(RedisError::from(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("{other}: TLS connections are not supported (no TLS built in)"),
                )));
            }
        };
        let settings = info.redis_settings();
        let mut conn = RedisConn {
            sock,
            parser: Parser::new(),
            db: settings.db(),
            timeout,
            spin: AdaptiveSpin::with_spin(SPIN),
            open: true,
            max_reply: MAX_REPLY,
        };
        if let Some(password) = settings.password() {
            let mut auth = ::redis::cmd("AUTH");
            if let Some(user) = settings.username() {
                auth.arg(user);
            }
            auth.arg(password).exec(&mut conn)?;
        }
        if conn.db != 0 {
            ::redis::cmd("SELECT").arg(conn.db).exec(&mut conn)?;
        }
        Ok(conn)
    }

    /// Sends `cmd` (packed commands) and reads `count` replies, all within the bound.
    fn request(&mut self, cmd: &[u8], count: usize) -> RedisResult<Vec<Value>> {
        if !self.open {
            return Err(RedisError::from(io::Error::from(
                io::ErrorKind::NotConnected,
            )));
        }
        let result = self.exchange(cmd, count);
        if result.is_err() {
            // Mid-reply, a reply that does not parse, or the peer is gone: what comes
            // next cannot be trusted. (A server's refusal is a value, not an error.)
            self.open = false;
        }
        result
    }

    fn exchange(&mut self, cmd: &[u8], count: usize) -> RedisResult<Vec<Value>> {
        self.sock.write_all(cmd)?;
        let deadline = Instant::now() + self.timeout;
        let Self {
            sock,
            parser,
            spin,
            max_reply,
            ..
        } = self;
        let fd = sock.fd();
        let mut read = |spin: Duration| -> RedisResult<Vec<Value>> {
            let mut reader = Reader {
                fd,
                waiter: sys::poll::Waiter::new(Some(deadline), spin),
                left: *max_reply,
                max: *max_reply,
            };
            let mut values = Vec::with_capacity(count);
            for _ in 0..count {
                values.push(parser.parse_value(&mut reader)?);
            }
            Ok(values)
        };
        if waits_in_redis(cmd) {
            read(Duration::ZERO)
        } else {
            spin.timed(read)
        }
    }
}

/// Connects to the first address of `host:port` that answers within `timeout`.
fn connect_tcp(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = None;
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host}:{port} has no address"),
        )
    }))
}

/// Does the first command of `packed` wait inside Redis by design (so that spinning
/// for its reply would only burn a CPU)?
fn waits_in_redis(packed: &[u8]) -> bool {
    // `*<n>\r\n$<len>\r\n<NAME>\r\n...`: the name is the first bulk string.
    let name = packed
        .splitn(4, |&b| b == b'\n')
        .nth(2)
        .map(|n| n.strip_suffix(b"\r").unwrap_or(n))
        .unwrap_or_default();
    let starts = |p: &[u8]| {
        name.get(..p.len())
            .is_some_and(|n| n.eq_ignore_ascii_case(p))
    };
    (name.len() > 2 && (starts(b"BL") || starts(b"BR") || starts(b"BZ")))
        || starts(b"XREAD")
        || starts(b"WAIT")
}

/// Reads one request's replies: spins for the first bytes (see
/// [`Waiter`](sys::poll::Waiter)), then sleeps in `poll`; fails past the request's
/// deadline or past its byte budget.
struct Reader<'a> {
    fd: BorrowedFd<'a>,
    waiter: sys::poll::Waiter,
    left: u64,
    max: u64,
}

impl Read for Reader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a Redis reply longer than {} bytes", self.max),
            ));
        }
        let cap = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let buf = &mut buf[..cap];
        let fd = self.fd;
        match self.waiter.wait(fd, |nonblocking| {
            sys::socket::recv_bytes(fd, buf, nonblocking)
        })? {
            Some(n) => {
                self.left -= n as u64;
                Ok(n)
            }
            None => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no whole reply from Redis within the connection's bound",
            )),
        }
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        let mut values = self.request(cmd, 1)?;
        Ok(values.pop().unwrap_or(Value::Nil))
    }

    /// As `redis::Connection` does: the replies after the first `offset` ones (those
    /// of a transaction's `MULTI` and queued commands); a queued command that the
    /// server refused fails the whole request.
    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        let mut values = self.request(cmd, offset + count)?;
        let refused = values[..offset].iter().find_map(|v| match v {
            Value::ServerError(e) => Some(e.clone()),
            _ => None,
        });
        if let Some(e) = refused {
            return Err(e.into());
        }
        Ok(values.split_off(offset))
    }

    fn get_db(&self) -> i64 {
        self.db
    }

    fn check_connection(&mut self) -> bool {
        ::redis::cmd("PING").query::<String>(self).is_ok()
    }

    fn is_open(&self) -> bool {
        self.open
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread::JoinHandle;

    use ::redis::IntoConnectionInfo;
    use proptest::prelude::*;

    use crate::broker::RedisServer;

    /// A one-connection fake server on a Unix socket: reads the first command,
    /// then hands the stream to `answer`. Returns its folder (removed by the caller
    /// through `Fake`'s drop) and URL.
    struct Fake {
        dir: PathBuf,
        url: String,
        thread: Option<JoinHandle<()>>,
    }

    impl Drop for Fake {
        fn drop(&mut self) {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn fake(answer: impl FnOnce(UnixStream) + Send + 'static) -> Fake {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mp-redisconn-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let thread = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf);
            answer(s);
        });
        Fake {
            url: format!("redis+unix://{}", path.display()),
            dir,
            thread: Some(thread),
        }
    }

    fn conn(f: &Fake, timeout: Duration) -> RedisConn {
        let info = f.url.as_str().into_connection_info().unwrap();
        RedisConn::open(&info, timeout).unwrap()
    }

    fn get(c: &mut RedisConn) -> RedisResult<Option<Vec<u8>>> {
        ::redis::cmd("GET").arg("k").query(c)
    }

    #[test]
    fn a_reply_that_comes_a_byte_at_a_time_is_read_whole() {
        let f = fake(|mut s| {
            for b in b"$5\r\nhello\r\n" {
                s.write_all(&[*b]).unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let mut c = conn(&f, Duration::from_secs(5));
        assert_eq!(get(&mut c).unwrap().as_deref(), Some(&b"hello"[..]));
        assert!(c.is_open());
    }

    #[test]
    fn a_server_that_drips_forever_is_a_timeout_within_the_bound() {
        let f = fake(|mut s| {
            let _ = s.write_all(b"$100000\r\n");
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(3) && s.write_all(b"x").is_ok() {
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let mut c = conn(&f, Duration::from_millis(300));
        let t = Instant::now();
        let e = get(&mut c).unwrap_err();
        assert!(e.is_timeout(), "{e}");
        assert!(
            t.elapsed() < Duration::from_millis(1500),
            "{:?}",
            t.elapsed()
        );
        assert!(!c.is_open(), "a connection mid-reply must not be reused");
        drop(c); // the dripping writer sees the close and ends
    }

    #[test]
    fn a_silent_server_is_a_timeout_and_a_closing_one_a_drop() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let f = fake(move |_s| {
            let _ = rx.recv_timeout(Duration::from_secs(5));
        });
        let mut c = conn(&f, Duration::from_millis(200));
        let t = Instant::now();
        let e = get(&mut c).unwrap_err();
        assert!(e.is_timeout(), "{e}");
        assert!(t.elapsed() >= Duration::from_millis(200));
        tx.send(()).unwrap();
        drop(f);

        let f = fake(drop);
        let mut c = conn(&f, Duration::from_secs(5));
        let e = get(&mut c).unwrap_err();
        assert!(e.is_connection_dropped(), "{e}");
        assert!(!c.is_open());
        let e = get(&mut c).unwrap_err();
        assert!(
            e.is_connection_dropped(),
            "a closed connection says so again: {e}"
        );
    }

    #[test]
    fn a_reply_past_the_limit_is_refused_not_buffered() {
        let f = fake(|mut s| {
            let _ = s.write_all(b"$4096\r\n");
            let _ = s.write_all(&[b'x'; 4096]);
            let _ = s.write_all(b"\r\n");
        });
        let mut c = conn(&f, Duration::from_secs(5));
        c.max_reply = 1024;
        let e = get(&mut c).unwrap_err();
        assert!(e.to_string().contains("longer than 1024 bytes"), "{e}");
        assert!(!c.is_open());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Whatever a server answers, then closing: a value or an error, at once,
        /// never a panic or a hang; after an error the connection is closed.
        #[test]
        fn random_replies_end_cleanly(
            reply in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..300),
                // Replies that start as RESP does, with random lengths and counts.
                (prop_oneof![Just(b'$'), Just(b'*'), Just(b'+'), Just(b'-'), Just(b':')],
                 any::<i64>(), proptest::collection::vec(any::<u8>(), 0..64))
                    .prop_map(|(t, n, rest)| {
                        let mut v = vec![t];
                        v.extend_from_slice(n.to_string().as_bytes());
                        v.extend_from_slice(b"\r\n");
                        v.extend_from_slice(&rest);
                        v
                    }),
            ],
        ) {
            let f = fake(move |mut s| {
                let _ = s.write_all(&reply);
            });
            let mut c = conn(&f, Duration::from_secs(5));
            let t = Instant::now();
            let r = ::redis::cmd("GET").arg("k").query::<::redis::Value>(&mut c);
            prop_assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
            if r.is_err() {
                prop_assert!(!c.is_open() || matches!(r, Err(ref e) if e.code().is_some()));
            }
        }
    }

    #[test]
    fn a_real_server_selects_the_database_and_runs_transactions() {
        let server = RedisServer::start().unwrap();
        let url = |db: u32| format!("{}?db={db}", server.url());
        let open = |u: &str| {
            RedisConn::open(&u.into_connection_info().unwrap(), Duration::from_secs(5)).unwrap()
        };
        let mut three = open(&url(3));
        assert_eq!(three.get_db(), 3);
        let () = ::redis::cmd("SET")
            .arg("k")
            .arg("v3")
            .query(&mut three)
            .unwrap();
        let mut zero = open(&url(0));
        assert_eq!(get(&mut zero).unwrap(), None, "SELECT was not sent");
        assert_eq!(get(&mut three).unwrap().as_deref(), Some(&b"v3"[..]));

        let (a, b): (i64, i64) = ::redis::pipe()
            .atomic()
            .incr("n", 1)
            .incr("n", 2)
            .query(&mut zero)
            .unwrap();
        assert_eq!((a, b), (1, 3));
        // A queued command the server refuses fails the transaction, and the
        // connection goes on.
        let e = ::redis::pipe()
            .atomic()
            .incr("n", 1)
            .cmd("NO-SUCH-COMMAND")
            .query::<::redis::Value>(&mut zero)
            .unwrap_err();
        assert!(
            e.to_string().contains("NO-SUCH-COMMAND") || e.code().is_some(),
            "{e}"
        );
        assert!(zero.is_open());
        assert!(zero.check_connection());
        let n: i64 = ::redis::cmd("GET").arg("n").query(&mut zero).unwrap();
        assert_eq!(n, 3, "nothing of the refused transaction ran");

        // A password the server does not have is an error, not a hang.
        let with_password = format!("{}?pass=secret", server.url());
        let e = with_password
            .as_str()
            .into_connection_info()
            .and_then(|i| RedisConn::open(&i, Duration::from_secs(5)))
            .err();
        assert!(e.is_some(), "AUTH to a server without a password must fail");
    }

    #[test]
    fn commands_that_wait_in_redis_are_known_by_name() {
        let packed = |args: &[&str]| {
            let mut c = ::redis::cmd(args[0]);
            for a in &args[1..] {
                c.arg(*a);
            }
            c.get_packed_command()
        };
        for waits in [
            &["BLPOP", "k", "1"][..],
            &["blmove", "a", "b", "LEFT", "RIGHT", "1"],
            &["BZPOPMIN", "z", "0"],
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "BLOCK",
                "10",
                "STREAMS",
                "s",
                ">",
            ],
            &["WAIT", "1", "0"],
        ] {
            assert!(waits_in_redis(&packed(waits)), "{waits:?}");
        }
        for quick in [
            &["GET", "k"][..],
            &["BITCOUNT", "k"],
            &["EVALSHA", "abc", "0"],
            &["LMOVE", "a", "b", "LEFT", "RIGHT"],
            &["B"],
        ] {
            assert!(!waits_in_redis(&packed(quick)), "{quick:?}");
        }
        assert!(!waits_in_redis(b""));
        assert!(!waits_in_redis(b"*1\r\n"));
    }
}
