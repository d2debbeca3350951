//! The manager's server: a table of objects and a thread per connection.
//!
//! # Design
//!
//! * **Bytes, not types.** The server stores every value as the bytes of its bincode
//!   encoding: a dict is an insertion-ordered map from key bytes to value bytes, a list
//!   a `Vec` of item bytes, a queue a `VecDeque` of item bytes. The server therefore
//!   needs no generic types and no registry of `K`/`V`: one server binary serves
//!   proxies of any type, from any program (a remote client may be a different binary).
//!   The price: keys compare by their encoding, so two keys are equal when their bytes
//!   are (`0.0` and `-0.0` differ, and a `HashMap` key's bytes depend on its iteration
//!   order; use `BTreeMap`/ordered types as keys). Python compares by `__eq__`/`__hash__`
//!   in the server, which needs the types there.
//! * **One thread per connection** (as Python's server): a blocking call (a queue
//!   `get`, a lock `acquire`) blocks only its own connection's thread, on the object's
//!   own mutex and condition variable. Clients keep one connection per thread and
//!   manager, so a thread blocked in `get` never holds up another thread's calls, and
//!   the connection is the identity of an owner (for `RLock` and `Condition`).
//! * **Dead clients.** While a call waits, its thread checks every 100 ms whether the
//!   client hung up, and then gives up *without* taking anything (an item is never
//!   popped for a client that is gone). When a connection ends, the locks it held are
//!   released, so a killed client does not deadlock the others (Python's manager
//!   leaves them locked).
//! * **Logins and limits.** Clients log in on the listener's login stage (one thread,
//!   concurrent handshakes with one deadline each, a cap on unauthenticated
//!   connections; see `listener`); only authenticated connections get a thread here.
//!   Each request is limited by the listener's [`Limits`](crate::Limits): a largest
//!   message (default 64 MiB), a deadline for the rest of a message once started
//!   (default 60 s), and a budget for partly received messages over all connections
//!   (default 256 MiB).
//! * **Bad input** (a malformed, oversized or stalled frame, an undecodable request)
//!   ends that connection only; the accept loop and the other connections go on.
//! * **Lifetime: reference counts with leases.** Each object counts the proxies that
//!   own it: making one (`Create`, `Lookup`) or cloning one (`IncRef`) adds one,
//!   dropping one sends `DecRef` (no reply, so a drop never waits on the server). An
//!   object with no owner is freed. A proxy *in transit* (serialized into a child's
//!   args, a queue, a connection, or another manager object) owns nothing: the sender
//!   may drop its copy before the receiver decodes it. So serializing a proxy takes a
//!   *lease* on the object ([`LEASE`] by default, renewed by every serialization), and
//!   decoding one adds an owner (`IncRef`). An object is freed once it has no owner and
//!   no lease.
//! * **Stored proxies own.** A value stored in the server (a dict value, a list or
//!   queue item, ...) that holds proxies of this manager's objects owns them while it
//!   is stored: the client sends their ids with the value (an `Item`), the server adds
//!   an owner for each, and takes it back (as a lease, for the client that receives
//!   the value) when the value is replaced, removed or taken. Freeing an object
//!   releases what it stored, so a tree of nested objects is freed as a whole.
//!   Python counts references the same way, without the lease (its decoded proxy can
//!   find its object already freed). The price here: an object serialized and then
//!   forgotten lives a lease longer; a proxy kept only in serialized form *outside*
//!   the manager longer than a lease (in a file, or a pipe nobody reads) finds its
//!   object gone ([`ErrorKind::NotFound`]). Registered objects never expire.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indexmap::IndexMap;

use super::handler::{Cx, Refs};
use super::kinds::custom::SharedObject;
use super::kinds::{Init, Object, Op};
use super::protocol::{Kind, Reply, Request, Response};
use crate::error::{Error, ErrorKind, Result};
use crate::listener::Listener;
use crate::sys;
use crate::wire::frame::{AdaptiveSpin, RecvLimits};
use crate::wire::{codec, frame};

/// How long a serialized proxy keeps its object alive without an owner, by default.
pub(crate) const LEASE: Duration = Duration::from_secs(120);

/// A factory for a custom type registered by name.
pub(crate) type Factory = fn() -> Box<dyn SharedObject>;

/// An object and who keeps it alive.
struct Entry {
    obj: Arc<Object>,
    /// Proxies that own it.
    owners: u64,
    /// Until when a serialized proxy keeps it alive.
    lease: Option<Instant>,
    /// Registered by name: never freed.
    pinned: bool,
}

impl Entry {
    fn expired(&self, now: Instant) -> bool {
        !self.pinned && self.owners == 0 && self.lease.is_none_or(|l| l <= now)
    }
}

/// The shared state of one server.
pub(crate) struct Server {
    objects: Mutex<HashMap<u64, Entry>>,
    /// Objects with no owner that a lease keeps alive (checked on later requests).
    leased: Mutex<HashSet<u64>>,
    /// Objects just freed, whose stored proxies still hold references to others
    /// (released by `bury`, outside the locks that freed them).
    graveyard: Mutex<Vec<Arc<Object>>>,
    named: Mutex<IndexMap<String, u64>>,
    types: Mutex<IndexMap<String, Factory>>,
    next_id: AtomicU64,
    next_conn: AtomicU64,
    /// Microseconds a lease lasts.
    lease_us: AtomicU64,
    stopping: AtomicBool,
    /// Rung to wake the accept loop when a client asks the server to stop.
    doorbell: OwnedFd,
}

/// One connection's view while it runs calls.
struct Conn<'a> {
    id: u64,
    fd: BorrowedFd<'a>,
    stopping: &'a AtomicBool,
    /// Objects whose lock this connection may hold (released when it ends).
    held: HashSet<u64>,
}

impl Server {
    pub(crate) fn new() -> Result<Arc<Server>> {
        // Ids start at a random point, so a stale proxy from a previous server at the
        // same address almost surely finds nothing rather than another object.
        let base = u64::from_le_bytes(crate::listener::random_bytes::<8>()?) >> 16;
        Ok(Arc::new(Server {
            objects: Mutex::new(HashMap::new()),
            leased: Mutex::new(HashSet::new()),
            graveyard: Mutex::new(Vec::new()),
            named: Mutex::new(IndexMap::new()),
            types: Mutex::new(IndexMap::new()),
            next_id: AtomicU64::new(base.max(1)),
            next_conn: AtomicU64::new(1),
            lease_us: AtomicU64::new(LEASE.as_micros() as u64),
            stopping: AtomicBool::new(false),
            doorbell: sys::poll::eventfd().map_err(|e| Error::io("eventfd", e))?,
        }))
    }

    /// Adds `obj` with one owner (the proxy about to be made).
    pub(crate) fn insert(&self, obj: Object) -> (u64, Kind) {
        self.insert_entry(obj, false)
    }

    fn insert_entry(&self, obj: Object, pinned: bool) -> (u64, Kind) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let kind = obj.kind();
        self.objects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                id,
                Entry {
                    obj: Arc::new(obj),
                    owners: u64::from(!pinned),
                    lease: None,
                    pinned,
                },
            );
        (id, kind)
    }

    pub(crate) fn register(&self, name: &str, obj: Object) {
        let (id, _) = self.insert_entry(obj, true);
        self.named
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), id);
    }

    fn not_found(id: u64) -> Error {
        Error::new(
            ErrorKind::NotFound,
            format!(
                "the manager has no object #{id} (every proxy of it was dropped, the \
                 proxy outlived its manager, or it belongs to another one)"
            ),
        )
    }

    /// Applies `f` to the entry of `id`, then frees it if nothing keeps it alive.
    fn with_entry<R>(&self, id: u64, f: impl FnOnce(&mut Entry) -> R) -> Result<R> {
        let now = Instant::now();
        let mut objects = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        let e = objects.get_mut(&id).ok_or_else(|| Server::not_found(id))?;
        let r = f(e);
        let (expired, leased) = (e.expired(now), e.owners == 0 && !e.pinned);
        let mut waiting = self.leased.lock().unwrap_or_else(|e| e.into_inner());
        if expired {
            if let Some(e) = objects.remove(&id) {
                self.graveyard
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(e.obj);
            }
            waiting.remove(&id);
        } else if leased {
            waiting.insert(id);
        } else {
            waiting.remove(&id);
        }
        Ok(r)
    }

    /// Frees the unowned objects whose lease ran out.
    fn sweep(&self) {
        let now = Instant::now();
        let mut objects = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        let mut waiting = self.leased.lock().unwrap_or_else(|e| e.into_inner());
        waiting.retain(|id| match objects.get(id) {
            Some(e) if e.expired(now) => {
                if let Some(e) = objects.remove(id) {
                    self.graveyard
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(e.obj);
                }
                false
            }
            Some(e) => e.owners == 0,
            None => false,
        });
    }

    /// The number of live objects (registered ones included).
    fn count(&self) -> usize {
        self.objects.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Releases what freed objects stored (which may free more).
    fn bury(&self) {
        loop {
            let next = self
                .graveyard
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop();
            let Some(obj) = next else { return };
            let refs = obj.refs();
            self.unpin(&refs);
        }
    }

    pub(crate) fn register_type(&self, typeid: &str, f: Factory) {
        self.types
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(typeid.to_string(), f);
    }

    pub(crate) fn set_lease(&self, d: Duration) {
        self.lease_us.store(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn lease_until(&self) -> Instant {
        let d = Duration::from_micros(self.lease_us.load(Ordering::Relaxed));
        let now = Instant::now();
        now.checked_add(d).unwrap_or(now + LEASE)
    }

    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        sys::poll::ring(self.doorbell.as_fd());
    }

    fn object(&self, id: u64) -> Result<Arc<Object>> {
        self.objects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .map(|e| e.obj.clone())
            .ok_or_else(|| Server::not_found(id))
    }

    /// Serves the connections that log in on `listener` (its login stage, see
    /// `listener`) until [`stop`](Server::stop), or until `owner` (a pidfd) ends; each
    /// authenticated connection runs on its own thread, under the listener's limits.
    ///
    /// Watching the owner's pidfd here does not rely on `PR_SET_PDEATHSIG` alone
    /// (which a fork-server grandchild only gets indirectly, racing with the owner's
    /// exit): a manager never outlives the process that started it.
    pub(crate) fn serve(
        self: &Arc<Server>,
        listener: &Listener,
        owner: Option<BorrowedFd<'_>>,
    ) -> Result<()> {
        use std::os::fd::AsRawFd;
        let mut fds = vec![listener.ready_fd()?.as_raw_fd(), self.doorbell.as_raw_fd()];
        if let Some(o) = owner {
            fds.push(o.as_raw_fd());
        }
        trace!(info, address = %listener.address(), "manager serving");
        while !self.stopping.load(Ordering::SeqCst) {
            // Wake now and then to free objects whose lease ran out.
            let tick = Instant::now() + Duration::from_secs(1);
            let ready = sys::poll::wait_any(&fds, Some(tick)).map_err(|e| Error::io("poll", e))?;
            self.sweep();
            self.bury();
            if self.stopping.load(Ordering::SeqCst) || ready.contains(&2) {
                break;
            }
            if !ready.contains(&0) {
                continue;
            }
            let Some(fd) = listener.try_next_authenticated()? else {
                continue;
            };
            let me = self.clone();
            let limits = listener.limits();
            let budget = listener.budget().clone();
            let spawned = std::thread::Builder::new()
                .name("manager-conn".into())
                .spawn(move || {
                    let limits = RecvLimits {
                        max_len: limits.max_message_size,
                        rest: Some(limits.frame_timeout),
                        until: None,
                        budget: Some(&budget),
                    };
                    me.serve_connection(fd, &limits)
                });
            if spawned.is_err() {
                // No thread for it: the connection is dropped, the server goes on.
                trace!(warn, "manager connection dropped: no thread for it");
                continue;
            }
        }
        Ok(())
    }

    fn serve_connection(&self, fd: OwnedFd, limits: &RecvLimits<'_>) {
        let mut conn = Conn {
            id: self.next_conn.fetch_add(1, Ordering::Relaxed),
            fd: fd.as_fd(),
            stopping: &self.stopping,
            held: HashSet::new(),
        };
        let _span = trace_span!(DEBUG, "manager_connection", id = conn.id);
        trace!(debug, "manager connection opened");
        let mut spin = AdaptiveSpin::new();
        loop {
            let f = match spin
                .recv_limited(conn.fd, None, limits)
                .map(|f| f.expect("no deadline"))
            {
                Ok(f) => f,
                Err(_) => break, // closed, malformed or oversized: end this connection
            };
            if self.stopping.load(Ordering::SeqCst) {
                break; // a stopped server answers nobody: the client sees it gone
            }
            let req = match codec::decode::<Request<Init, Op>>(&f.body, Vec::new()) {
                Ok(r) => r,
                Err(e) => {
                    let resp: Response = Err((&e).into());
                    let _ = send_response(conn.fd, &resp);
                    break;
                }
            };
            let shutdown = matches!(req, Request::Shutdown);
            let silent = matches!(req, Request::DecRef(_));
            let resp: Response = self.handle(&mut conn, req).map_err(|e| (&e).into());
            if silent {
                self.bury();
                continue; // a drop does not wait for an answer
            }
            let sent = send_response(conn.fd, &resp);
            self.bury();
            if sent.is_err() {
                break;
            }
            if shutdown {
                self.stop();
            }
        }
        self.release_held(&conn);
        trace!(debug, "manager connection closed");
    }

    fn release_held(&self, conn: &Conn<'_>) {
        for id in &conn.held {
            if let Ok(obj) = self.object(*id) {
                obj.abandon(conn.id);
            }
        }
    }

    fn handle(&self, conn: &mut Conn<'_>, req: Request<Init, Op>) -> Result<Reply> {
        match req {
            Request::Create(init) => {
                self.sweep();
                let obj = Object::new(init);
                let refs = obj.refs();
                self.pin(&refs);
                let (id, kind) = self.insert(obj);
                Ok(Reply::Created(id, kind))
            }
            Request::Lookup(name) => {
                let id = self
                    .named
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&name)
                    .copied();
                let Some(id) = id else {
                    let known: Vec<String> = self
                        .named
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .keys()
                        .cloned()
                        .collect();
                    return Err(Error::new(
                        ErrorKind::NotFound,
                        format!("no object registered as {name:?} (registered: {known:?})"),
                    ));
                };
                // The proxy made from this reply owns a reference.
                let kind = self.with_entry(id, |e| {
                    e.owners += 1;
                    e.obj.kind()
                })?;
                Ok(Reply::Created(id, kind))
            }
            Request::IncRef(id) => {
                self.with_entry(id, |e| e.owners += 1)?;
                Ok(Reply::Unit)
            }
            Request::Lease(id) => {
                let until = self.lease_until();
                self.with_entry(id, |e| {
                    e.lease = Some(e.lease.map_or(until, |l| l.max(until)))
                })?;
                Ok(Reply::Unit)
            }
            Request::DecRef(id) => {
                let _ = self.with_entry(id, |e| e.owners = e.owners.saturating_sub(1));
                Ok(Reply::Unit)
            }
            Request::Count => {
                self.sweep();
                self.bury();
                Ok(Reply::U64(self.count() as u64))
            }
            Request::CreateCustom(typeid) => {
                let f = self
                    .types
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&typeid)
                    .copied();
                let Some(f) = f else {
                    return Err(Error::new(
                        ErrorKind::NotFound,
                        format!("no type registered as {typeid:?}"),
                    ));
                };
                let (id, kind) = self.insert(Object::custom(f()));
                Ok(Reply::Created(id, kind))
            }
            Request::Registered => {
                let mut v: Vec<String> = self
                    .named
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .keys()
                    .cloned()
                    .collect();
                v.extend(
                    self.types
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .keys()
                        .cloned(),
                );
                Ok(Reply::Strings(v))
            }
            Request::Shutdown => Ok(Reply::Unit),
            Request::Call(id, op) => {
                let obj = self.object(id)?;
                // Has the client hung up (or, against the protocol, sent something
                // while it waits for a reply), or is the server stopping?
                let (fd, stopping) = (conn.fd, conn.stopping);
                let gone = move || {
                    stopping.load(Ordering::SeqCst) || sys::poll::is_readable(fd).unwrap_or(true)
                };
                let mut cx = Cx {
                    me: conn.id,
                    id,
                    held: &mut conn.held,
                    gone: &gone,
                    refs: self,
                };
                obj.apply(op, &mut cx)
            }
        }
    }
}

/// The references of stored values are counted in the object table.
impl Refs for Server {
    fn pin(&self, refs: &[u64]) {
        for &r in refs {
            let _ = self.with_entry(r, |e| e.owners += 1);
        }
    }

    fn unpin(&self, refs: &[u64]) {
        for &r in refs {
            let _ = self.with_entry(r, |e| e.owners = e.owners.saturating_sub(1));
        }
    }

    fn hand_over(&self, refs: &[u64]) {
        let until = self.lease_until();
        for &r in refs {
            let _ = self.with_entry(r, |e| {
                e.owners = e.owners.saturating_sub(1);
                e.lease = Some(e.lease.map_or(until, |l| l.max(until)));
            });
        }
    }
}

fn send_response(fd: BorrowedFd<'_>, resp: &Response) -> Result<()> {
    let mut enc = codec::encode_with_prefix(resp, frame::HEADER)?;
    frame::send(fd, &mut enc.bytes, &[])
}
