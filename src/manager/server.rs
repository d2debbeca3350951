//! The manager's server: a table of objects and a thread per connection.
//!
//! # Design
//!
//! * **Bytes, not types.** The server stores every value as the bytes of its postcard
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
//! * **Bad input** (a malformed or oversized frame, an undecodable request) ends that
//!   connection only; the accept loop and the other connections go on.
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

use std::collections::{HashMap, HashSet, VecDeque};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use indexmap::IndexMap;

use super::protocol::{Bytes, Init, Item, Kind, Op, Reply, Request, Response, Wait};
use super::shared::SharedObject;
use crate::error::{Error, ErrorKind, Result};
use crate::listener::{AuthKey, Listener, authenticate_server};
use crate::sys;
use crate::wire::frame::AdaptiveSpin;
use crate::wire::{codec, frame};

/// The largest request a manager accepts (1 GiB); a larger frame closes that
/// connection.
pub(crate) const MAX_REQUEST: u64 = 1 << 30;

/// How long a serialized proxy keeps its object alive without an owner, by default.
pub(crate) const LEASE: Duration = Duration::from_secs(120);

/// How often a waiting call checks that its client is still there.
const CHECK: Duration = Duration::from_millis(100);

/// A factory for a custom type registered by name.
pub(crate) type Factory = fn() -> Box<dyn SharedObject>;

pub(crate) struct Object {
    kind: Kind,
    state: Mutex<State>,
    cv: Condvar,
}

enum State {
    Dict(IndexMap<Bytes, Item>),
    List(Vec<Item>),
    Queue {
        items: VecDeque<Item>,
        maxsize: Option<u64>,
        unfinished: u64,
    },
    Lock(Option<u64>),
    RLock {
        owner: Option<u64>,
        count: u64,
    },
    Semaphore {
        value: u64,
        bound: Option<u64>,
    },
    Condition {
        owner: Option<u64>,
        count: u64,
        waiters: VecDeque<u64>,
        notified: HashSet<u64>,
        next_ticket: u64,
    },
    Event(bool),
    Barrier {
        parties: u32,
        count: u32,
        generation: u64,
        broken: bool,
        reset_generations: HashSet<u64>,
    },
    Namespace(IndexMap<String, Item>),
    Value(Item),
    Array(Vec<Item>),
    Custom(Box<dyn SharedObject>),
}

impl State {
    /// The objects that proxies stored in this object refer to.
    fn refs(&self) -> Vec<u64> {
        let items: Box<dyn Iterator<Item = &Item>> = match self {
            State::Dict(m) => Box::new(m.values()),
            State::List(v) | State::Array(v) => Box::new(v.iter()),
            State::Queue { items, .. } => Box::new(items.iter()),
            State::Namespace(m) => Box::new(m.values()),
            State::Value(i) => Box::new(std::iter::once(i)),
            _ => Box::new(std::iter::empty()),
        };
        items.flat_map(|i| i.refs.iter().copied()).collect()
    }
}

impl Object {
    fn new(init: Init) -> Object {
        let (kind, state) = match init {
            Init::Dict(items) => (Kind::Dict, State::Dict(items.into_iter().collect())),
            Init::List(v) => (Kind::List, State::List(v)),
            Init::Queue { maxsize, joinable } => (
                if joinable {
                    Kind::JoinableQueue
                } else {
                    Kind::Queue
                },
                State::Queue {
                    items: VecDeque::new(),
                    maxsize,
                    unfinished: 0,
                },
            ),
            Init::Lock => (Kind::Lock, State::Lock(None)),
            Init::RLock => (
                Kind::RLock,
                State::RLock {
                    owner: None,
                    count: 0,
                },
            ),
            Init::Semaphore { value, bounded } => (
                if bounded {
                    Kind::BoundedSemaphore
                } else {
                    Kind::Semaphore
                },
                State::Semaphore {
                    value,
                    bound: bounded.then_some(value),
                },
            ),
            Init::Condition => (
                Kind::Condition,
                State::Condition {
                    owner: None,
                    count: 0,
                    waiters: VecDeque::new(),
                    notified: HashSet::new(),
                    next_ticket: 0,
                },
            ),
            Init::Event => (Kind::Event, State::Event(false)),
            Init::Barrier(parties) => (
                Kind::Barrier,
                State::Barrier {
                    parties,
                    count: 0,
                    generation: 0,
                    broken: false,
                    reset_generations: HashSet::new(),
                },
            ),
            Init::Namespace => (Kind::Namespace, State::Namespace(IndexMap::new())),
            Init::Value(b) => (Kind::Value, State::Value(b)),
            Init::Array(v) => (Kind::Array, State::Array(v)),
        };
        Object::with_state(kind, state)
    }

    fn with_state(kind: Kind, state: State) -> Object {
        Object {
            kind,
            state: Mutex::new(state),
            cv: Condvar::new(),
        }
    }

    pub(crate) fn custom(obj: Box<dyn SharedObject>) -> Object {
        Object::with_state(Kind::Custom, State::Custom(obj))
    }

    pub(crate) fn from_init(init: Init) -> Object {
        Object::new(init)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

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

impl Conn<'_> {
    /// Has the client hung up (or, against the protocol, sent something while it
    /// waits for a reply), or is the server stopping?
    fn gone(&self) -> bool {
        self.stopping.load(Ordering::SeqCst) || sys::poll::is_readable(self.fd).unwrap_or(true)
    }
}

fn bad_op(kind: Kind, op: &Op) -> Error {
    let name = format!("{op:?}");
    let name = name.split('(').next().unwrap_or("?").to_string();
    Error::new(
        ErrorKind::InvalidInput,
        format!("a {kind:?} has no operation {name}"),
    )
}

/// Resolves a Python-style index (negative counts from the end).
fn index(i: i64, len: usize) -> Result<usize> {
    let j = if i < 0 { len as i64 + i } else { i };
    if j < 0 || j as usize >= len {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("index {i} out of range for length {len}"),
        ));
    }
    Ok(j as usize)
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
        let kind = obj.kind;
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

    /// A stored value holds proxies of `refs`: they stay alive while it is stored.
    fn pin(&self, refs: &[u64]) {
        for &r in refs {
            let _ = self.with_entry(r, |e| e.owners += 1);
        }
    }

    /// A stored value is gone: dropped by the server (replaced, cleared, or its
    /// container freed).
    fn unpin(&self, refs: &[u64]) {
        for &r in refs {
            let _ = self.with_entry(r, |e| e.owners = e.owners.saturating_sub(1));
        }
    }

    /// A stored value was taken by a client (`get` of a queue, `pop`, `remove`): its
    /// references become a lease, for the client to decode them and own its own.
    fn hand_over(&self, refs: &[u64]) {
        let until = self.lease_until();
        for &r in refs {
            let _ = self.with_entry(r, |e| {
                e.owners = e.owners.saturating_sub(1);
                e.lease = Some(e.lease.map_or(until, |l| l.max(until)));
            });
        }
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
            let refs = obj.lock().refs();
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

    /// Accepts connections until [`stop`](Server::stop), or until `owner` (a pidfd)
    /// ends; each connection runs on its own thread.
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
        let mut fds = vec![listener.as_fd().as_raw_fd(), self.doorbell.as_raw_fd()];
        if let Some(o) = owner {
            fds.push(o.as_raw_fd());
        }
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
            let (fd, _) = match listener.accept_raw() {
                Ok(x) => x,
                // Out of fds and the like: wait a little and go on serving.
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            let me = self.clone();
            let key = listener.authkey().clone();
            let spawned = std::thread::Builder::new()
                .name("manager-conn".into())
                .spawn(move || me.serve_connection(fd, &key));
            if spawned.is_err() {
                // No thread for it: the connection is dropped, the server goes on.
                continue;
            }
        }
        Ok(())
    }

    fn serve_connection(&self, fd: OwnedFd, key: &AuthKey) {
        if authenticate_server(fd.as_fd(), key).is_err() {
            return;
        }
        let mut conn = Conn {
            id: self.next_conn.fetch_add(1, Ordering::Relaxed),
            fd: fd.as_fd(),
            stopping: &self.stopping,
            held: HashSet::new(),
        };
        let mut spin = AdaptiveSpin::new();
        loop {
            let f = match spin
                .recv(conn.fd, None, MAX_REQUEST)
                .map(|f| f.expect("no deadline"))
            {
                Ok(f) => f,
                Err(_) => break, // closed, malformed or oversized: end this connection
            };
            if self.stopping.load(Ordering::SeqCst) {
                break; // a stopped server answers nobody: the client sees it gone
            }
            let req = match codec::decode::<Request>(&f.body, Vec::new()) {
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
    }

    fn release_held(&self, conn: &Conn<'_>) {
        for id in &conn.held {
            let Ok(obj) = self.object(*id) else { continue };
            let mut g = obj.lock();
            match &mut *g {
                State::Lock(holder) if *holder == Some(conn.id) => *holder = None,
                State::RLock { owner, count } | State::Condition { owner, count, .. }
                    if *owner == Some(conn.id) =>
                {
                    *owner = None;
                    *count = 0;
                }
                _ => continue,
            }
            drop(g);
            obj.cv.notify_all();
        }
    }

    fn handle(&self, conn: &mut Conn<'_>, req: Request) -> Result<Reply> {
        match req {
            Request::Create(init) => {
                self.sweep();
                let obj = Object::new(init);
                let refs = obj.lock().refs();
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
                    e.obj.kind
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
                call(self, &obj, id, conn, op)
            }
        }
    }
}

fn send_response(fd: BorrowedFd<'_>, resp: &Response) -> Result<()> {
    let mut enc = codec::encode_with_prefix(resp, frame::HEADER)?;
    frame::send(fd, &mut enc.bytes, &[])
}

/// Waits on `obj`'s condition variable until `ready` or the deadline; `Ok(false)` on
/// timeout; `Disconnected` if the client hung up meanwhile.
fn wait_until<'a>(
    obj: &'a Object,
    mut g: MutexGuard<'a, State>,
    conn: &Conn<'_>,
    wait: Wait,
    mut ready: impl FnMut(&mut State) -> bool,
) -> Result<(MutexGuard<'a, State>, bool)> {
    let deadline = wait.deadline();
    loop {
        if ready(&mut g) {
            return Ok((g, true));
        }
        let now = Instant::now();
        let slice = match deadline {
            Some(d) if now >= d => return Ok((g, false)),
            Some(d) => (d - now).min(CHECK),
            None => CHECK,
        };
        g = obj
            .cv
            .wait_timeout(g, slice)
            .unwrap_or_else(|e| e.into_inner())
            .0;
        if conn.gone() {
            return Err(Error::disconnected());
        }
    }
}

fn not_owner(what: &str) -> Error {
    Error::new(
        ErrorKind::InvalidState,
        format!("cannot release an un-acquired {what}"),
    )
}

/// Runs one operation on one object.
fn call(server: &Server, obj: &Object, id: u64, conn: &mut Conn<'_>, op: Op) -> Result<Reply> {
    let kind = obj.kind;
    let me = conn.id;
    let mut g = obj.lock();
    // Operations that wait are handled first; they need the guard by value.
    match (&mut *g, &op) {
        (State::Queue { .. }, Op::Put(_, w)) => {
            let w = *w;
            let Op::Put(item, _) = op else { unreachable!() };
            let (mut g, ok) = wait_until(obj, g, conn, w, |s| match s {
                State::Queue { items, maxsize, .. } => {
                    maxsize.is_none_or(|m| (items.len() as u64) < m)
                }
                _ => true,
            })?;
            if !ok {
                return Err(Error::new(ErrorKind::Full, "the queue is full"));
            }
            if let State::Queue {
                items, unfinished, ..
            } = &mut *g
            {
                server.pin(&item.refs);
                items.push_back(item);
                *unfinished += 1;
            }
            drop(g);
            obj.cv.notify_all();
            return Ok(Reply::Unit);
        }
        (State::Queue { .. }, Op::Get(w)) => {
            let (mut g, ok) = wait_until(obj, g, conn, *w, |s| match s {
                State::Queue { items, .. } => !items.is_empty(),
                _ => true,
            })?;
            if !ok {
                return Err(Error::new(ErrorKind::Empty, "the queue is empty"));
            }
            let item = match &mut *g {
                State::Queue { items, .. } => items.pop_front().unwrap_or_default(),
                _ => unreachable!(),
            };
            drop(g);
            obj.cv.notify_all();
            server.hand_over(&item.refs);
            return Ok(Reply::Bytes(item.bytes));
        }
        (State::Queue { .. }, Op::Join(w)) if kind == Kind::JoinableQueue => {
            let (_g, ok) = wait_until(obj, g, conn, *w, |s| match s {
                State::Queue { unfinished, .. } => *unfinished == 0,
                _ => true,
            })?;
            return Ok(Reply::Bool(ok));
        }
        (State::Lock(_), Op::Acquire(w)) => {
            let (mut g, ok) = wait_until(obj, g, conn, *w, |s| matches!(s, State::Lock(None)))?;
            if ok {
                *g = State::Lock(Some(me));
                conn.held.insert(id);
            }
            return Ok(Reply::Bool(ok));
        }
        (State::RLock { .. } | State::Condition { .. }, Op::Acquire(w)) => {
            let (mut g, ok) = wait_until(obj, g, conn, *w, |s| match s {
                State::RLock { owner, .. } | State::Condition { owner, .. } => {
                    owner.is_none_or(|o| o == me)
                }
                _ => true,
            })?;
            if ok {
                if let State::RLock { owner, count } | State::Condition { owner, count, .. } =
                    &mut *g
                {
                    *owner = Some(me);
                    *count += 1;
                }
                conn.held.insert(id);
            }
            return Ok(Reply::Bool(ok));
        }
        (State::Semaphore { .. }, Op::Acquire(w)) => {
            let (mut g, ok) = wait_until(obj, g, conn, *w, |s| match s {
                State::Semaphore { value, .. } => *value > 0,
                _ => true,
            })?;
            if ok && let State::Semaphore { value, .. } = &mut *g {
                *value -= 1;
            }
            return Ok(Reply::Bool(ok));
        }
        (State::Condition { owner, count, .. }, Op::CondWait(w)) => {
            if *owner != Some(me) {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    "cannot wait on an un-acquired condition",
                ));
            }
            let w = *w;
            let saved = *count;
            let ticket = match &mut *g {
                State::Condition {
                    owner,
                    count,
                    waiters,
                    next_ticket,
                    ..
                } => {
                    *owner = None;
                    *count = 0;
                    let t = *next_ticket;
                    *next_ticket += 1;
                    waiters.push_back(t);
                    t
                }
                _ => unreachable!(),
            };
            obj.cv.notify_all();
            let res = wait_until(obj, g, conn, w, |s| match s {
                State::Condition { notified, .. } => notified.contains(&ticket),
                _ => true,
            });
            let (g, woken) = match res {
                Ok(x) => x,
                Err(e) => {
                    let mut g = obj.lock();
                    if let State::Condition {
                        waiters, notified, ..
                    } = &mut *g
                    {
                        waiters.retain(|t| *t != ticket);
                        notified.remove(&ticket);
                    }
                    conn.held.remove(&id);
                    return Err(e);
                }
            };
            let mut g = g;
            if let State::Condition {
                waiters, notified, ..
            } = &mut *g
            {
                waiters.retain(|t| *t != ticket);
                notified.remove(&ticket);
            }
            // Take the lock back, however long that takes (as Python does).
            let (mut g, _) = wait_until(obj, g, conn, Wait::Block, |s| match s {
                State::Condition { owner, .. } => owner.is_none(),
                _ => true,
            })?;
            if let State::Condition { owner, count, .. } = &mut *g {
                *owner = Some(me);
                *count = saved;
            }
            return Ok(Reply::Bool(woken));
        }
        (State::Event(_), Op::EventWait(w)) => {
            let (_g, ok) = wait_until(obj, g, conn, *w, |s| matches!(s, State::Event(true)))?;
            return Ok(Reply::Bool(ok));
        }
        (State::Barrier { .. }, Op::BarrierWait(w)) => {
            let w = *w;
            let (index, gen_) = match &mut *g {
                State::Barrier {
                    parties,
                    count,
                    generation,
                    broken,
                    ..
                } => {
                    if *broken {
                        return Err(broken_barrier());
                    }
                    let index = *count;
                    *count += 1;
                    if *count == *parties {
                        *count = 0;
                        *generation += 1;
                        drop(g);
                        obj.cv.notify_all();
                        return Ok(Reply::U64(u64::from(index)));
                    }
                    (index, *generation)
                }
                _ => unreachable!(),
            };
            let (mut g, ok) = wait_until(obj, g, conn, w, |s| match s {
                State::Barrier {
                    generation, broken, ..
                } => *broken || *generation != gen_,
                _ => true,
            })?;
            let State::Barrier {
                generation,
                broken,
                reset_generations,
                count,
                ..
            } = &mut *g
            else {
                unreachable!()
            };
            if !ok {
                // A party that times out breaks the barrier for everyone.
                *broken = true;
                *count = 0;
                drop(g);
                obj.cv.notify_all();
                return Err(broken_barrier());
            }
            if *generation != gen_ && !reset_generations.contains(&gen_) {
                return Ok(Reply::U64(u64::from(index)));
            }
            return Err(broken_barrier());
        }
        _ => {}
    }
    let reply = match (&mut *g, op) {
        (State::Dict(m), Op::DictGet(k)) => Reply::MaybeBytes(m.get(&k).map(|i| i.bytes.clone())),
        (State::Dict(m), Op::DictInsert(k, v)) => {
            server.pin(&v.refs);
            Reply::MaybeBytes(m.insert(k, v).map(|old| gone(server, old)))
        }
        (State::Dict(m), Op::DictRemove(k)) => {
            Reply::MaybeBytes(m.shift_remove(&k).map(|old| gone(server, old)))
        }
        (State::Dict(m), Op::DictContains(k)) => Reply::Bool(m.contains_key(&k)),
        (State::Dict(m), Op::Len) => Reply::U64(m.len() as u64),
        (State::Dict(m), Op::DictKeys) => Reply::List(m.keys().cloned().collect()),
        (State::Dict(m), Op::DictValues) => {
            Reply::List(m.values().map(|i| i.bytes.clone()).collect())
        }
        (State::Dict(m), Op::DictItems) => Reply::Pairs(
            m.iter()
                .map(|(k, v)| (k.clone(), v.bytes.clone()))
                .collect(),
        ),
        (State::Dict(m), Op::Clear) => {
            for (_, old) in m.drain(..) {
                server.unpin(&old.refs);
            }
            Reply::Unit
        }
        (State::Dict(m), Op::DictUpdate(items)) => {
            for (k, v) in items {
                server.pin(&v.refs);
                if let Some(old) = m.insert(k, v) {
                    server.unpin(&old.refs);
                }
            }
            Reply::Unit
        }
        (State::Dict(m), Op::DictPopItem) => {
            Reply::MaybePair(m.pop().map(|(k, v)| (k, gone(server, v))))
        }
        (State::Dict(m), Op::DictSetDefault(k, v)) => {
            let e = m.entry(k).or_insert_with(|| {
                server.pin(&v.refs);
                v
            });
            Reply::Bytes(e.bytes.clone())
        }
        (State::List(v) | State::Array(v), Op::Len) => Reply::U64(v.len() as u64),
        (State::List(v) | State::Array(v), Op::ListGet(i)) => {
            Reply::Bytes(v[index(i, v.len())?].bytes.clone())
        }
        (State::List(v) | State::Array(v), Op::ListSet(i, x)) => {
            let i = index(i, v.len())?;
            server.pin(&x.refs);
            let old = std::mem::replace(&mut v[i], x);
            server.unpin(&old.refs);
            Reply::Unit
        }
        (State::List(v) | State::Array(v), Op::ToVec) => {
            Reply::List(v.iter().map(|i| i.bytes.clone()).collect())
        }
        (State::List(v), Op::ListPush(x)) => {
            server.pin(&x.refs);
            v.push(x);
            Reply::Unit
        }
        (State::List(v), Op::ListPop) => Reply::MaybeBytes(v.pop().map(|old| gone(server, old))),
        (State::List(v), Op::ListInsert(i, x)) => {
            // Python's list.insert clamps the index.
            let len = v.len() as i64;
            let j = if i < 0 { (len + i).max(0) } else { i.min(len) };
            server.pin(&x.refs);
            v.insert(j as usize, x);
            Reply::Unit
        }
        (State::List(v), Op::ListRemove(x)) => match v.iter().position(|y| y.bytes == x) {
            Some(i) => {
                let old = v.remove(i);
                server.unpin(&old.refs);
                Reply::Unit
            }
            None => {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    "list.remove(x): x not in list",
                ));
            }
        },
        (State::List(v), Op::ListExtend(xs)) => {
            for x in &xs {
                server.pin(&x.refs);
            }
            v.extend(xs);
            Reply::Unit
        }
        (State::List(v), Op::ListReverse) => {
            v.reverse();
            Reply::Unit
        }
        (State::List(v), Op::Clear) => {
            for old in v.drain(..) {
                server.unpin(&old.refs);
            }
            Reply::Unit
        }
        (State::Queue { items, .. }, Op::Len) => Reply::U64(items.len() as u64),
        (State::Queue { items, maxsize, .. }, Op::IsFull) => {
            Reply::Bool(maxsize.is_some_and(|m| items.len() as u64 >= m))
        }
        (State::Queue { unfinished, .. }, Op::TaskDone) if kind == Kind::JoinableQueue => {
            if *unfinished == 0 {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    "task_done() called more times than there were items",
                ));
            }
            *unfinished -= 1;
            if *unfinished == 0 {
                obj.cv.notify_all();
            }
            Reply::Unit
        }
        (State::Lock(holder), Op::Release) => {
            if holder.is_none() {
                return Err(not_owner("lock"));
            }
            // Like Python's Lock, any process may release it.
            *holder = None;
            conn.held.remove(&id);
            obj.cv.notify_all();
            Reply::Unit
        }
        (State::RLock { owner, count } | State::Condition { owner, count, .. }, Op::Release) => {
            if *owner != Some(me) {
                return Err(not_owner(if kind == Kind::RLock {
                    "rlock (or one owned by another thread or process)"
                } else {
                    "condition"
                }));
            }
            *count -= 1;
            if *count == 0 {
                *owner = None;
                conn.held.remove(&id);
                obj.cv.notify_all();
            }
            Reply::Unit
        }
        (State::Semaphore { value, bound }, Op::Release) => {
            if bound.is_some_and(|b| *value >= b) {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    "bounded semaphore released too many times",
                ));
            }
            *value += 1;
            obj.cv.notify_all();
            Reply::Unit
        }
        (State::Semaphore { value, .. }, Op::GetValue) => Reply::U64(*value),
        (
            State::Condition {
                owner,
                waiters,
                notified,
                ..
            },
            Op::Notify(n),
        ) => {
            if *owner != Some(me) {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    "cannot notify on an un-acquired condition",
                ));
            }
            let mut woken = 0u64;
            for t in waiters.iter() {
                if woken == u64::from(n) {
                    break;
                }
                if notified.insert(*t) {
                    woken += 1;
                }
            }
            obj.cv.notify_all();
            Reply::U64(woken)
        }
        (
            State::Condition {
                owner,
                waiters,
                notified,
                ..
            },
            Op::NotifyAll,
        ) => {
            if *owner != Some(me) {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    "cannot notify on an un-acquired condition",
                ));
            }
            notified.extend(waiters.iter().copied());
            obj.cv.notify_all();
            Reply::Unit
        }
        (State::Event(f), Op::EventSet) => {
            *f = true;
            obj.cv.notify_all();
            Reply::Unit
        }
        (State::Event(f), Op::EventClear) => {
            *f = false;
            Reply::Unit
        }
        (State::Event(f), Op::EventIsSet) => Reply::Bool(*f),
        (State::Barrier { broken, count, .. }, Op::BarrierAbort) => {
            *broken = true;
            *count = 0;
            obj.cv.notify_all();
            Reply::Unit
        }
        (
            State::Barrier {
                broken,
                count,
                generation,
                reset_generations,
                ..
            },
            Op::BarrierReset,
        ) => {
            if *count > 0 {
                reset_generations.insert(*generation);
            }
            *generation += 1;
            *count = 0;
            *broken = false;
            obj.cv.notify_all();
            Reply::Unit
        }
        (State::Barrier { broken, .. }, Op::BarrierIsBroken) => Reply::Bool(*broken),
        (State::Barrier { count, .. }, Op::BarrierWaiting) => Reply::U64(u64::from(*count)),
        (State::Barrier { parties, .. }, Op::BarrierParties) => Reply::U64(u64::from(*parties)),
        (State::Namespace(m), Op::NsGet(k)) => {
            Reply::MaybeBytes(m.get(&k).map(|i| i.bytes.clone()))
        }
        (State::Namespace(m), Op::NsSet(k, v)) => {
            server.pin(&v.refs);
            if let Some(old) = m.insert(k, v) {
                server.unpin(&old.refs);
            }
            Reply::Unit
        }
        (State::Namespace(m), Op::NsRemove(k)) => {
            Reply::MaybeBytes(m.shift_remove(&k).map(|old| gone(server, old)))
        }
        (State::Namespace(m), Op::NsNames) => Reply::Strings(m.keys().cloned().collect()),
        (State::Value(v), Op::ValueGet) => Reply::Bytes(v.bytes.clone()),
        (State::Value(v), Op::ValueSet(x)) => {
            server.pin(&x.refs);
            let old = std::mem::replace(v, x);
            server.unpin(&old.refs);
            Reply::Unit
        }
        (State::Custom(o), Op::Method(name, args)) => {
            if !o.methods().contains(&name.as_str()) {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "method {name:?} is not exposed (exposed: {:?})",
                        o.methods()
                    ),
                ));
            }
            Reply::Bytes(o.call(&name, &args)?)
        }
        (_, op) => return Err(bad_op(kind, &op)),
    };
    Ok(reply)
}

/// A stored value leaves the server: its references become a lease, and its bytes go
/// to the client.
fn gone(server: &Server, item: Item) -> Bytes {
    server.hand_over(&item.refs);
    item.bytes
}

fn broken_barrier() -> Error {
    Error::new(ErrorKind::BrokenBarrier, "the barrier is broken")
}
