//! The authkey handshake: an HMAC-SHA256 challenge and response in both directions.
//!
//! ```text
//! server                                   client
//!                                          <- "#MP-AUTH-1#" + has-key flag
//!   nonce_s (or "#NOKEY#")                 ->
//!                                          <- HMAC(key, "server>" + nonce_s)
//!   "#WELCOME#" | "#FAILURE#"              ->
//!                                          <- nonce_c
//!   HMAC(key, "client>" + nonce_c)         ->
//!                                          <- "#WELCOME#" | "#FAILURE#"
//! ```
//!
//! As Python's `deliver_challenge` / `answer_challenge`, each side proves it knows the
//! key without sending it, with fresh 32-byte nonces from the OS (`getrandom`), and a
//! wrong key fails on *both* sides: the side that detects it says so to the other
//! before returning [`ErrorKind::Authentication`]. Two differences from Python, on
//! purpose: the client opens with a hello frame that says whether it has a key, so a
//! keyed client facing a keyless server gets a clear error instead of waiting for a
//! challenge that never comes (a keyless client does not wait for anything: it may
//! send and close before the server accepts; a keyed server closes on it, and the
//! client sees `Disconnected`); and each direction's MAC
//! is tagged with that direction, so an answer cannot be reflected back as a challenge.
//! Every handshake frame is limited to 256 bytes. The server runs its side as a state
//! machine ([`ServerLogin`]) in the listener's login stage, under the listener's login
//! deadline (see `login.rs`); the client's side blocks, with one deadline,
//! [`HANDSHAKE_TIMEOUT`], for every byte it waits for, so a silent or hostile server
//! cannot hold a client either.

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::error::{Error, ErrorKind, Result};
use crate::wire::frame;

/// How long a client's side of the handshake may take.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

const HELLO: &[u8] = b"#MP-AUTH-1#";
const WELCOME: &[u8] = b"#WELCOME#";
const FAILURE: &[u8] = b"#FAILURE#";
const NOKEY: &[u8] = b"#NOKEY#";
const NONCE: usize = 32;
const MAX_FRAME: u64 = 256;

fn auth_error(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Authentication, msg)
}

/// 32 random bytes from the OS.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    crate::sys::random_bytes().map_err(|e| Error::io("reading random bytes from the OS", e))
}

fn mac(key: &[u8], tag: &[u8], nonce: &[u8]) -> Hmac<Sha256> {
    let mut m =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(tag);
    m.update(nonce);
    m
}

fn send(fd: BorrowedFd<'_>, bytes: &[u8]) -> Result<()> {
    frame::send_parts(fd, bytes, &[])
}

/// Receives one frame of the handshake by `deadline` (`None`: wait as long as the
/// peer takes); a timeout is [`ErrorKind::Timeout`] if `caller_deadline` (the caller chose it), else
/// an authentication failure.
fn recv_until(
    fd: BorrowedFd<'_>,
    deadline: Option<Instant>,
    what: &str,
    caller_deadline: bool,
) -> Result<Vec<u8>> {
    // One deadline for every byte of the handshake, not only for each frame's start.
    let limits = frame::RecvLimits {
        until: deadline,
        ..frame::RecvLimits::trusted(MAX_FRAME)
    };
    match frame::recv_limited(fd, deadline, &limits) {
        Ok(Some(f)) => Ok(f.body),
        Ok(None) if caller_deadline => Err(Error::new(
            ErrorKind::Timeout,
            format!(
                "the server did not answer the login in time (waiting for its {what}; a \
                 listener answers once `accept` runs)"
            ),
        )),
        Ok(None) => Err(auth_error(format!(
            "authentication timed out waiting for the peer's {what}"
        ))),
        Err(e) if e.kind() == ErrorKind::Disconnected => Err(auth_error(format!(
            "the peer closed the connection instead of sending its {what} \
             (it has another authkey, or none)"
        ))),
        Err(e) => Err(e),
    }
}

/// What the server does after a frame of the handshake.
#[derive(Debug)]
pub(crate) enum Step {
    /// Send this frame, then wait for the client's next one.
    Reply(Vec<u8>),
    /// The client is authenticated.
    Done,
    /// The login failed: send `say` (if any, best effort) and close.
    Fail {
        say: Option<&'static [u8]>,
        /// Why (the stage closes the connection; tests and the `tracing` event read it).
        error: Error,
    },
}

/// The server's side as a state machine, fed one whole frame at a time: the login
/// stage (`login.rs`) does the I/O for many connections at once.
#[derive(Debug)]
pub(crate) struct ServerLogin {
    state: State,
}

#[derive(Debug)]
enum State {
    Hello,
    Answer([u8; NONCE]),
    Challenge,
    Verdict,
    Over,
}

impl ServerLogin {
    pub(crate) fn new() -> ServerLogin {
        ServerLogin {
            state: State::Hello,
        }
    }

    /// The largest frame the client may send now.
    pub(crate) fn max_frame(&self) -> u64 {
        MAX_FRAME
    }

    /// Takes the client's next frame.
    pub(crate) fn on_frame(&mut self, key: Option<&[u8]>, body: &[u8]) -> Step {
        let fail = |say, error| Step::Fail { say, error };
        match std::mem::replace(&mut self.state, State::Over) {
            State::Hello => {
                if body.len() != HELLO.len() + 1 || &body[..HELLO.len()] != HELLO {
                    return fail(
                        None,
                        Error::new(
                            ErrorKind::Protocol,
                            "the client does not speak the multiprocess connection protocol",
                        ),
                    );
                }
                match (body[HELLO.len()] == 1, key) {
                    (false, None) => Step::Done,
                    // Closing is the answer: the client's next call sees the
                    // connection gone.
                    (false, Some(_)) => fail(
                        None,
                        auth_error("the client gave no authkey and this listener requires one"),
                    ),
                    (true, None) => fail(
                        Some(NOKEY),
                        auth_error("the client has an authkey and this listener has none"),
                    ),
                    (true, Some(_)) => match random_bytes::<NONCE>() {
                        Ok(nonce) => {
                            self.state = State::Answer(nonce);
                            Step::Reply(nonce.to_vec())
                        }
                        Err(e) => fail(None, e),
                    },
                }
            }
            State::Answer(nonce) => {
                let Some(key) = key else {
                    unreachable!("a keyless login ends at the hello")
                };
                if mac(key, b"server>", &nonce).verify_slice(body).is_err() {
                    return fail(
                        Some(FAILURE),
                        auth_error("the client's answer is wrong: it has another authkey"),
                    );
                }
                self.state = State::Challenge;
                Step::Reply(WELCOME.to_vec())
            }
            State::Challenge => {
                let Some(key) = key else {
                    unreachable!("a keyless login ends at the hello")
                };
                if body.len() != NONCE {
                    return fail(None, auth_error("malformed challenge from the client"));
                }
                self.state = State::Verdict;
                Step::Reply(mac(key, b"client>", body).finalize().into_bytes().to_vec())
            }
            State::Verdict => match body {
                WELCOME => Step::Done,
                _ => fail(
                    None,
                    auth_error("the client rejected our answer: it has another authkey"),
                ),
            },
            State::Over => fail(None, auth_error("the login is over")),
        }
    }
}

/// The client's side. Without a key it only sends the hello and returns at once, so
/// a keyless client may connect, send and close before the server accepts.
pub(crate) fn client(fd: BorrowedFd<'_>, key: Option<&[u8]>) -> Result<()> {
    client_until(fd, key, Some(Instant::now() + HANDSHAKE_TIMEOUT), false)
}

/// [`client`] with the caller's deadline for the whole handshake (`None`: none, as
/// Python's `Client` waits); its passing is [`ErrorKind::Timeout`] when
/// `caller_deadline`.
pub(crate) fn client_until(
    fd: BorrowedFd<'_>,
    key: Option<&[u8]>,
    deadline: Option<Instant>,
    caller_deadline: bool,
) -> Result<()> {
    let mut hello = HELLO.to_vec();
    hello.push(u8::from(key.is_some()));
    send(fd, &hello)?;
    let Some(key) = key else {
        return Ok(());
    };
    let nonce = recv_until(fd, deadline, "challenge", caller_deadline)?;
    if nonce == NOKEY {
        return Err(auth_error(
            "the server has no authkey, so it cannot prove it knows ours",
        ));
    }
    if nonce.len() != NONCE {
        return Err(Error::new(ErrorKind::Protocol, "malformed challenge"));
    }
    send(fd, &mac(key, b"server>", &nonce).finalize().into_bytes())?;
    match recv_until(fd, deadline, "verdict", caller_deadline)?.as_slice() {
        WELCOME => {}
        _ => {
            return Err(auth_error(
                "the server rejected our answer: it has another authkey",
            ));
        }
    }
    let mine: [u8; NONCE] = random_bytes()?;
    send(fd, &mine)?;
    let answer = recv_until(fd, deadline, "answer to the challenge", caller_deadline)?;
    if mac(key, b"client>", &mine).verify_slice(&answer).is_err() {
        let _ = send(fd, FAILURE);
        return Err(auth_error(
            "the server's answer is wrong: it has another authkey",
        ));
    }
    send(fd, WELCOME)
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;
    use crate::sys;

    /// Runs the server's state machine, blocking, on one end of a socket pair.
    fn serve(fd: BorrowedFd<'_>, key: Option<&[u8]>) -> Result<()> {
        let mut login = ServerLogin::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let body = recv_until(fd, Some(deadline), "frame", false)?;
            match login.on_frame(key, &body) {
                Step::Reply(r) => send(fd, &r)?,
                Step::Done => return Ok(()),
                Step::Fail { say, error } => {
                    if let Some(say) = say {
                        let _ = send(fd, say);
                    }
                    return Err(error);
                }
            }
        }
    }

    fn login(
        server_key: Option<&'static [u8]>,
        client_key: Option<&'static [u8]>,
    ) -> (Result<()>, Result<()>) {
        let (a, b) = sys::socket::pair().unwrap();
        let t = std::thread::spawn(move || {
            let r = client(b.as_fd(), client_key);
            (r, b)
        });
        let s = serve(a.as_fd(), server_key);
        drop(a);
        let (c, _b) = t.join().unwrap();
        (s, c)
    }

    #[test]
    fn the_state_machine_speaks_the_clients_protocol() {
        let (s, c) = login(Some(b"k"), Some(b"k"));
        assert!(s.is_ok() && c.is_ok(), "{s:?} {c:?}");
        let (s, c) = login(None, None);
        assert!(s.is_ok() && c.is_ok(), "{s:?} {c:?}");
        let (s, c) = login(Some(b"k"), Some(b"other"));
        assert_eq!(s.unwrap_err().kind(), ErrorKind::Authentication);
        assert_eq!(c.unwrap_err().kind(), ErrorKind::Authentication);
        let (s, c) = login(None, Some(b"k"));
        assert_eq!(s.unwrap_err().kind(), ErrorKind::Authentication);
        assert_eq!(c.unwrap_err().kind(), ErrorKind::Authentication);
        let (s, _) = login(Some(b"k"), None);
        assert_eq!(s.unwrap_err().kind(), ErrorKind::Authentication);
    }

    #[test]
    fn garbage_instead_of_a_hello_is_a_protocol_error() {
        let mut l = ServerLogin::new();
        match l.on_frame(Some(b"k"), b"GET / HTTP/1.1") {
            Step::Fail { error, .. } => assert_eq!(error.kind(), ErrorKind::Protocol),
            other => panic!("{other:?}"),
        }
    }

    proptest::proptest! {
        /// Any frames a client without the key sends: the server's login never panics
        /// and never lets it in.
        #[test]
        fn random_frames_never_log_in_with_a_key(
            frames in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), 0..6),
            valid_hello in proptest::prelude::any::<bool>(),
        ) {
            let mut login = ServerLogin::new();
            let mut hello = HELLO.to_vec();
            hello.push(1);
            let frames = if valid_hello {
                std::iter::once(hello).chain(frames).collect()
            } else {
                frames
            };
            for f in frames {
                match login.on_frame(Some(b"the key"), &f) {
                    Step::Reply(_) => {}
                    Step::Done => proptest::prop_assert!(false, "random bytes logged in"),
                    Step::Fail { .. } => break,
                }
            }
        }

        /// Without a key, only the exact keyless hello logs in.
        #[test]
        fn random_frames_without_a_key_end_at_the_hello(first in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)) {
            let mut login = ServerLogin::new();
            let mut keyless = HELLO.to_vec();
            keyless.push(0);
            match login.on_frame(None, &first) {
                Step::Done => proptest::prop_assert_eq!(first, keyless),
                Step::Reply(_) => proptest::prop_assert!(false, "a keyless login has one frame"),
                Step::Fail { .. } => {}
            }
        }
    }
}
