//! Redis as a broker between hosts (feature `redis`): what the cluster pool and the
//! Redis manager share.
//!
//! Python users who outgrow one machine put a broker between the submitter and the
//! workers (Celery, RQ), or move shared state into Redis. This layer is the little both
//! of our Redis backends need, and nothing more:
//!
//! - `connect`: a synchronous connection (`RedisConn`, in `conn.rs`) with a bound on
//!   every step (connect, write, each whole reply), so that a Redis that vanished is
//!   an error within a bounded time, never a hang; it spins briefly for a reply before
//!   it sleeps, which makes a round trip 2-3x faster on a VM (see `conn.rs`); its
//!   errors map onto [`ErrorKind`]s (`redis_error`).
//! - [`Seal`]: HMAC-SHA256 over every entry one side writes and the other reads, so
//!   that write access to Redis alone can neither run a task nor forge a value.
//! - [`RedisServer`]: a private `redis-server` on a Unix socket in a temporary folder,
//!   for tests, examples, the tour and the benchmark harness.
//!
//! We do not write a Redis client or a broker: the `redis` crate speaks the protocol
//! (packs commands, parses replies), `conn.rs` only owns the socket, and
//! `redis-server` is the broker.

mod conn;
mod seal;
mod server;

pub(crate) use conn::RedisConn;
pub use seal::Seal;
pub use server::RedisServer;

use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};

/// How long a connection attempt, and then each read or write, may take by default.
#[allow(dead_code)] // used by the cluster pool and the Redis manager
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens a connection to `url` (`redis://host:port/db`, `redis+unix:///path.sock`),
/// bounding the connect, every write and every whole reply by `timeout`.
///
/// An unreachable server is [`ErrorKind::Disconnected`]; a malformed URL is
/// [`ErrorKind::InvalidInput`].
pub(crate) fn connect(url: &str, timeout: Duration) -> Result<RedisConn> {
    let info = ::redis::IntoConnectionInfo::into_connection_info(url).map_err(|e| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("not a Redis URL: {url:?} ({e})"),
        )
    })?;
    RedisConn::open(&info, timeout)
        .map_err(|e| redis_error(&format!("connecting to Redis at {url}"), e))
}

/// Maps a Redis client error onto the crate's kinds, keeping it as the source.
///
/// Lost or refused connections are [`ErrorKind::Disconnected`], a read or write past
/// its bound is [`ErrorKind::Timeout`], a reply of the wrong type is
/// [`ErrorKind::Protocol`]; the rest is [`ErrorKind::Io`].
pub(crate) fn redis_error(context: &str, e: ::redis::RedisError) -> Error {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_connection_dropped() || e.is_connection_refusal() || e.is_io_error() {
        ErrorKind::Disconnected
    } else if e.kind() == ::redis::ErrorKind::UnexpectedReturnType {
        ErrorKind::Protocol
    } else {
        ErrorKind::Io
    };
    Error::new(kind, format!("{context}: {e}")).with_source(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_url_is_invalid_input() {
        let e = connect("http://nowhere/", Duration::from_millis(100))
            .err()
            .unwrap();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    }

    #[test]
    fn nobody_listening_is_disconnected_at_once() {
        let dir = std::env::temp_dir().join(format!("mp-broker-none-{}", std::process::id()));
        let url = format!("redis+unix://{}", dir.join("absent.sock").display());
        let t = std::time::Instant::now();
        let e = connect(&url, Duration::from_secs(2)).err().unwrap();
        assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_private_server_answers_and_its_folder_goes_with_it() {
        let server = RedisServer::start().unwrap();
        let dir = server.dir().to_path_buf();
        let mut c = connect(server.url(), IO_TIMEOUT).unwrap();
        let pong: String = ::redis::cmd("PING").query(&mut c).unwrap();
        assert_eq!(pong, "PONG");
        drop(c);
        drop(server);
        assert!(!dir.exists(), "{} left behind", dir.display());
    }

    #[test]
    fn a_killed_server_is_disconnected_within_the_bound() {
        let mut server = RedisServer::start().unwrap();
        let mut c = connect(server.url(), Duration::from_secs(2)).unwrap();
        server.kill();
        let t = std::time::Instant::now();
        let e = ::redis::cmd("PING")
            .query::<String>(&mut c)
            .map_err(|e| redis_error("ping", e))
            .unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::Disconnected | ErrorKind::Timeout),
            "{e}"
        );
        assert!(t.elapsed() < Duration::from_secs(3));
        server.restart().unwrap();
        let mut c = connect(server.url(), Duration::from_secs(2)).unwrap();
        let pong: String = ::redis::cmd("PING").query(&mut c).unwrap();
        assert_eq!(pong, "PONG");
    }
}
