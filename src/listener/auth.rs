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
//! Every handshake frame is limited to 256 bytes and the whole exchange to
//! [`HANDSHAKE_TIMEOUT`], so a silent or hostile peer cannot hold the server.

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, ErrorKind, Result};
use crate::wire::frame;

/// How long a handshake may take before the connection is dropped.
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
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| {
        Error::io(
            "reading random bytes from the OS",
            std::io::Error::other(e.to_string()),
        )
    })?;
    Ok(b)
}

fn mac(key: &[u8], tag: &[u8], nonce: &[u8]) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(tag);
    m.update(nonce);
    m
}

fn send(fd: BorrowedFd<'_>, bytes: &[u8]) -> Result<()> {
    frame::send_parts(fd, bytes, &[])
}

fn recv(fd: BorrowedFd<'_>, deadline: Instant, what: &str) -> Result<Vec<u8>> {
    match frame::recv(fd, Some(deadline), MAX_FRAME) {
        Ok(Some(f)) => Ok(f.body),
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

/// The server's side.
pub(crate) fn server(fd: BorrowedFd<'_>, key: Option<&[u8]>) -> Result<()> {
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let hello = recv(fd, deadline, "hello")?;
    if hello.len() != HELLO.len() + 1 || &hello[..HELLO.len()] != HELLO {
        return Err(Error::new(
            ErrorKind::Protocol,
            "the client does not speak the multiprocess connection protocol",
        ));
    }
    let key = match (hello[HELLO.len()] == 1, key) {
        (false, None) => return Ok(()),
        (false, Some(_)) => {
            // Closing is the answer: the client's next call sees the connection gone.
            return Err(auth_error(
                "the client gave no authkey and this listener requires one",
            ));
        }
        (true, None) => {
            let _ = send(fd, NOKEY);
            return Err(auth_error(
                "the client has an authkey and this listener has none",
            ));
        }
        (true, Some(k)) => k,
    };
    let nonce: [u8; NONCE] = random_bytes()?;
    send(fd, &nonce)?;
    let answer = recv(fd, deadline, "answer to the challenge")?;
    if mac(key, b"server>", &nonce).verify_slice(&answer).is_err() {
        let _ = send(fd, FAILURE);
        return Err(auth_error(
            "the client's answer is wrong: it has another authkey",
        ));
    }
    send(fd, WELCOME)?;
    let challenge = recv(fd, deadline, "challenge")?;
    if challenge.len() != NONCE {
        return Err(auth_error("malformed challenge from the client"));
    }
    send(
        fd,
        &mac(key, b"client>", &challenge).finalize().into_bytes(),
    )?;
    match recv(fd, deadline, "verdict")?.as_slice() {
        WELCOME => Ok(()),
        _ => Err(auth_error(
            "the client rejected our answer: it has another authkey",
        )),
    }
}

/// The client's side. Without a key it only sends the hello and returns at once, so
/// a keyless client may connect, send and close before the server accepts.
pub(crate) fn client(fd: BorrowedFd<'_>, key: Option<&[u8]>) -> Result<()> {
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let mut hello = HELLO.to_vec();
    hello.push(u8::from(key.is_some()));
    send(fd, &hello)?;
    let Some(key) = key else {
        return Ok(());
    };
    let nonce = recv(fd, deadline, "challenge")?;
    if nonce == NOKEY {
        return Err(auth_error(
            "the server has no authkey, so it cannot prove it knows ours",
        ));
    }
    if nonce.len() != NONCE {
        return Err(Error::new(ErrorKind::Protocol, "malformed challenge"));
    }
    send(fd, &mac(key, b"server>", &nonce).finalize().into_bytes())?;
    match recv(fd, deadline, "verdict")?.as_slice() {
        WELCOME => {}
        _ => {
            return Err(auth_error(
                "the server rejected our answer: it has another authkey",
            ));
        }
    }
    let mine: [u8; NONCE] = random_bytes()?;
    send(fd, &mine)?;
    let answer = recv(fd, deadline, "answer to the challenge")?;
    if mac(key, b"client>", &mine).verify_slice(&answer).is_err() {
        let _ = send(fd, FAILURE);
        return Err(auth_error(
            "the server's answer is wrong: it has another authkey",
        ));
    }
    send(fd, WELCOME)
}
