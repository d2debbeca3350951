//! Unix sockets that carry file descriptors beside the bytes (`SCM_RIGHTS`): stream
//! sockets, and sequenced-packet ones (`SOCK_SEQPACKET`, which keep record boundaries;
//! see `wire::packet`).
//!
//! Every send uses `MSG_NOSIGNAL`, so a closed peer is an `EPIPE` error, never a
//! `SIGPIPE` that kills the sender. Received fds are close-on-exec (`MSG_CMSG_CLOEXEC`).

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};

use super::retry;

/// The kernel's limit on fds in one `SCM_RIGHTS` message (`SCM_MAX_FD`).
pub(crate) const MAX_FDS: usize = 253;

/// A connected pair of close-on-exec Unix stream sockets.
pub(crate) fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    retry(|| {
        rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
    })
}

/// A connected pair of close-on-exec Unix sequenced-packet sockets (each send is one
/// record, received whole by one receive).
pub(crate) fn pair_packets() -> io::Result<(OwnedFd, OwnedFd)> {
    retry(|| {
        rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
    })
    .inspect(|(a, b)| {
        // Best effort: the kernel caps the size at `net.core.wmem_max` (4 MiB here,
        // 208 KiB on a default Linux), and the default buffer still works.
        let _ = rustix::net::sockopt::set_socket_send_buffer_size(a, PACKET_SNDBUF);
        let _ = rustix::net::sockopt::set_socket_send_buffer_size(b, PACKET_SNDBUF);
    })
}

/// The send buffer asked for on each end of a sequenced-packet pair (the kernel
/// doubles it for its bookkeeping). 1 MiB frames, pinned to one CPU and to two, 3
/// runs each: 4.7-5.5 GB/s with the default (208 KiB), 5.7-7.1 with 1 MiB (the sender
/// waits for room less often); over a stream socket 5.0-6.6 in the same runs. A
/// receiver that does not read lets its sender queue up to twice this much before the
/// sender blocks.
const PACKET_SNDBUF: usize = 1 << 20;

/// Is `fd` a sequenced-packet socket?
pub(crate) fn is_packets(fd: BorrowedFd<'_>) -> bool {
    rustix::net::sockopt::socket_type(fd).is_ok_and(|t| t == SocketType::SEQPACKET)
}

/// Has the peer of `fd` closed (or shut down its sending side)? On a sequenced-packet
/// socket a receive of 0 bytes is either that or an empty record, which a peer can
/// send; this tells them apart (`POLLRDHUP`, without waiting).
pub(crate) fn peer_closed(fd: BorrowedFd<'_>) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid `pollfd`, no wait.
    let r = unsafe { libc::poll(&mut p, 1, 0) };
    r == 1 && p.revents & (libc::POLLRDHUP | libc::POLLHUP) != 0
}

/// Sends one record of a sequenced-packet socket: `parts` gathered, with `fds`. Such a
/// send is whole or nothing (`EMSGSIZE` past the socket buffer).
pub(crate) fn send_record(
    fd: BorrowedFd<'_>,
    parts: &[IoSlice<'_>],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    if let ([block], []) = (parts, fds) {
        retry(|| rustix::net::send(fd, block, SendFlags::NOSIGNAL))?;
        return Ok(());
    }
    if fds.len() > MAX_FDS {
        return Err(too_many_fds(fds.len()));
    }
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other("control buffer too small for the fds"));
    }
    retry(|| rustix::net::sendmsg(fd, parts, &mut control, SendFlags::NOSIGNAL))?;
    Ok(())
}

fn too_many_fds(n: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("a message can carry at most {MAX_FDS} handles, not {n}"),
    )
}

/// Sends all of `parts` (gathered), with `fds` attached to the first byte.
pub(crate) fn send_all(
    fd: BorrowedFd<'_>,
    parts: &[&[u8]],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(too_many_fds(fds.len()));
    }
    let total: usize = parts.iter().map(|p| p.len()).sum();
    // The common case, one block and no fds: `send`, which skips the message header
    // `sendmsg` copies in (a round trip on a shared CPU is a handful of system calls).
    if let ([block], []) = (parts, fds)
        && !block.is_empty()
    {
        let mut rest = *block;
        while !rest.is_empty() {
            let n = retry(|| rustix::net::send(fd, rest, SendFlags::NOSIGNAL))?;
            rest = &rest[n..];
        }
        return Ok(());
    }
    let mut sent = 0usize;
    let mut first = true;
    while sent < total || first {
        // Build the iovec of what is left.
        let mut skip = sent;
        let mut iov: Vec<IoSlice<'_>> = Vec::with_capacity(parts.len());
        for p in parts {
            if skip >= p.len() {
                skip -= p.len();
                continue;
            }
            iov.push(IoSlice::new(&p[skip..]));
            skip = 0;
        }
        let n = if first && !fds.is_empty() {
            let mut space =
                vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            if !control.push(SendAncillaryMessage::ScmRights(fds)) {
                return Err(io::Error::other("control buffer too small for the fds"));
            }
            retry(|| rustix::net::sendmsg(fd, &iov, &mut control, SendFlags::NOSIGNAL))?
        } else {
            retry(|| {
                rustix::net::sendmsg(
                    fd,
                    &iov,
                    &mut SendAncillaryBuffer::default(),
                    SendFlags::NOSIGNAL,
                )
            })?
        };
        first = false;
        sent += n;
        if total == 0 {
            break;
        }
    }
    Ok(())
}

/// Receives up to `buf.len()` bytes; fds that arrive are appended to `fds`.
/// Returns 0 at end of stream. With `nonblocking`, `WouldBlock` when nothing waits.
pub(crate) fn recv_some(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    nonblocking: bool,
) -> io::Result<usize> {
    recv_vectored(fd, &mut [IoSliceMut::new(buf)], fds, nonblocking)
}

/// As [`recv_some`], filling `bufs` in order (one system call).
pub(crate) fn recv_vectored(
    fd: BorrowedFd<'_>,
    bufs: &mut [IoSliceMut<'_>],
    fds: &mut Vec<OwnedFd>,
    nonblocking: bool,
) -> io::Result<usize> {
    recv_record(fd, bufs, fds, nonblocking).map(|(n, _)| n)
}

/// As [`recv_vectored`], also saying whether the record was longer than `bufs` (its
/// rest is then lost: `MSG_TRUNC`, on a sequenced-packet socket).
pub(crate) fn recv_record(
    fd: BorrowedFd<'_>,
    bufs: &mut [IoSliceMut<'_>],
    fds: &mut Vec<OwnedFd>,
    nonblocking: bool,
) -> io::Result<(usize, bool)> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut flags = RecvFlags::CMSG_CLOEXEC;
    if nonblocking {
        flags |= RecvFlags::DONTWAIT;
    }
    let msg = retry(|| rustix::net::recvmsg(fd, bufs, &mut control, flags))?;
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = m {
            fds.extend(received);
        }
    }
    if msg.flags.contains(rustix::net::ReturnFlags::CTRUNC) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "handles were dropped by the kernel (control message truncated)",
        ));
    }
    let truncated = msg.flags.contains(rustix::net::ReturnFlags::TRUNC);
    Ok((msg.bytes, truncated))
}

/// The most records that one [`send_batch`] or [`recv_batch`] system call moves.
pub(crate) const BATCH: usize = 32;

/// Sends each of `records` (its parts gathered) as one record of a sequenced-packet
/// socket, in order, without fds: `sendmmsg`, up to [`BATCH`] records per system
/// call. On a blocking socket the call sleeps inside whenever the socket buffer is
/// full, so a large frame costs a few system calls, not one per record. (Linux and
/// FreeBSD have `sendmmsg` and `recvmmsg`; a port to macOS would loop over `sendmsg`.)
pub(crate) fn send_batch(fd: BorrowedFd<'_>, records: &[&[IoSlice<'_>]]) -> io::Result<()> {
    let mut rest = records;
    while !rest.is_empty() {
        let now = &rest[..rest.len().min(BATCH)];
        // SAFETY: an all-zero `mmsghdr` is a valid empty one.
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (m, parts) in msgs.iter_mut().zip(now) {
            // `IoSlice` is ABI-compatible with `iovec` (std documents it), and the
            // kernel only reads through this pointer.
            m.msg_hdr.msg_iov = parts.as_ptr() as *mut libc::iovec;
            m.msg_hdr.msg_iovlen = parts.len() as _;
        }
        let n = loop {
            // SAFETY: `msgs[..now.len()]` point at live iovecs borrowed for this call.
            let r = unsafe {
                libc::sendmmsg(
                    fd.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    now.len() as libc::c_uint,
                    libc::MSG_NOSIGNAL,
                )
            };
            match super::cvt(r) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r? as usize,
            }
        };
        if n == 0 {
            return Err(io::Error::other("sendmmsg sent nothing"));
        }
        rest = &rest[n..];
    }
    Ok(())
}

/// One record taken by [`recv_batch`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Record {
    /// Its length in bytes (0: the peer closed).
    pub(crate) len: usize,
    /// Whether it did not arrive whole: longer than its buffers (`MSG_TRUNC`) or with
    /// handles, which the kernel closed (`MSG_CTRUNC`: no control buffer is given).
    pub(crate) cut: bool,
}

/// Receives up to `bufs.len()` (at most [`BATCH`]) records of a sequenced-packet
/// socket, record `i` into `bufs[i]`, and describes them in `got`; returns how many
/// arrived. It waits for the first only (`MSG_WAITFORONE`; with `nonblocking`, not
/// even for that: `WouldBlock`), and takes what is already queued after it.
pub(crate) fn recv_batch(
    fd: BorrowedFd<'_>,
    bufs: &mut [[IoSliceMut<'_>; 2]],
    got: &mut [Record],
    nonblocking: bool,
) -> io::Result<usize> {
    let n = bufs.len().min(got.len()).min(BATCH);
    // SAFETY: an all-zero `mmsghdr` is a valid empty one.
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for (m, parts) in msgs.iter_mut().zip(bufs.iter_mut()).take(n) {
        // `IoSliceMut` is ABI-compatible with `iovec`.
        m.msg_hdr.msg_iov = parts.as_mut_ptr() as *mut libc::iovec;
        m.msg_hdr.msg_iovlen = parts.len() as _;
    }
    let flags = libc::MSG_CMSG_CLOEXEC
        | if nonblocking {
            libc::MSG_DONTWAIT
        } else {
            libc::MSG_WAITFORONE
        };
    let m = loop {
        // SAFETY: `msgs[..n]` point at live, exclusively borrowed buffers; no timeout.
        let r = unsafe {
            libc::recvmmsg(
                fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                n as libc::c_uint,
                flags,
                std::ptr::null_mut(),
            )
        };
        match super::cvt(r) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => break r? as usize,
        }
    };
    for (g, m) in got.iter_mut().zip(&msgs[..m]) {
        *g = Record {
            len: m.msg_len as usize,
            cut: m.msg_hdr.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0,
        };
    }
    Ok(m)
}

/// Copies up to `buf.len()` of the bytes waiting on `fd` without consuming them
/// (`MSG_PEEK`); fds riding on them stay queued too (the kernel drops only the copies
/// it would have made for us). Unless `nonblocking`, waits for the first byte (on a
/// socket in blocking mode). Returns 0 at end of stream.
pub(crate) fn peek(fd: BorrowedFd<'_>, buf: &mut [u8], nonblocking: bool) -> io::Result<usize> {
    let mut flags = RecvFlags::PEEK;
    if nonblocking {
        flags |= RecvFlags::DONTWAIT;
    }
    // `recv`, not `recvmsg`: a peek takes no fds, and skips the message header.
    retry(|| rustix::net::recv(fd, &mut *buf, flags).map(|(n, _)| n))
}

/// Takes the next record of a sequenced-packet socket and drops it (with any fds on it,
/// which the kernel closes), without waiting.
pub(crate) fn discard_record(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut buf = [0u8; 16];
    retry(|| rustix::net::recv(fd, &mut buf, RecvFlags::DONTWAIT)).map(|_| ())
}

/// Receives up to `buf.len()` bytes from any connected socket (TCP too), without
/// waiting when `nonblocking`: `WouldBlock` when nothing waits. Returns 0 at end of
/// stream. No fds are taken (`recv`, not `recvmsg`). (The broker's connections use
/// it.)
#[cfg(feature = "redis")]
pub(crate) fn recv_bytes(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    nonblocking: bool,
) -> io::Result<usize> {
    let flags = if nonblocking {
        RecvFlags::DONTWAIT
    } else {
        RecvFlags::empty()
    };
    retry(|| rustix::net::recv(fd, &mut *buf, flags).map(|(n, _)| n))
}

/// A close-on-exec duplicate of `fd`.
pub(crate) fn dup(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    retry(|| rustix::io::fcntl_dupfd_cloexec(fd, 0))
}

/// Is `fd` a Unix-domain socket (one that can carry fds)?
pub(crate) fn is_unix(fd: BorrowedFd<'_>) -> bool {
    rustix::net::sockopt::socket_domain(fd).is_ok_and(|d| d == AddressFamily::UNIX)
}

/// Marks `fd` close-on-exec (an fd inherited across an exec is not).
pub(crate) fn set_cloexec(fd: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC)?)
}

/// Shuts down one direction of the socket behind `fd` (for every process holding it):
/// `write` ends what this side sends (the peer reads to end of file), otherwise what it
/// receives (the peer's sends fail with `EPIPE`).
pub(crate) fn shutdown(fd: BorrowedFd<'_>, write: bool) -> io::Result<()> {
    let how = if write {
        rustix::net::Shutdown::Write
    } else {
        rustix::net::Shutdown::Read
    };
    match rustix::net::shutdown(fd, how) {
        // Already disconnected: nothing more to shut.
        Err(rustix::io::Errno::NOTCONN) => Ok(()),
        r => Ok(r?),
    }
}

/// Accepts a connection waiting on the listening socket `fd`, without blocking: the
/// new socket is close-on-exec and non-blocking (see [`set_nonblocking`]). Errors as
/// `accept4(2)`: `WouldBlock` when nobody waits, `EMFILE`/`ENFILE` when out of fds.
pub(crate) fn accept_nonblocking(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let s = retry(|| rustix::net::accept_with(fd, SocketFlags::CLOEXEC | SocketFlags::NONBLOCK))?;
    if rustix::net::sockopt::socket_domain(&s).is_ok_and(|d| d != AddressFamily::UNIX) {
        // TCP: small frames go out at once (best effort, as for connected sockets).
        let _ = rustix::net::sockopt::set_tcp_nodelay(&s, true);
    }
    Ok(s)
}

/// Makes `fd`'s file description non-blocking, or blocking again.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let mut flags = retry(|| rustix::fs::fcntl_getfl(fd))?;
    flags.set(rustix::fs::OFlags::NONBLOCK, on);
    retry(|| rustix::fs::fcntl_setfl(fd, flags))
}

/// Is this error "out of file descriptors" (`EMFILE`, `ENFILE`), or of kernel memory
/// for sockets (`ENOBUFS`, `ENOMEM`)? An accept loop backs off on these.
pub(crate) fn is_resource_shortage(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}
