//! What a stuck or failing program shows: `Pool::stats` names the task each worker
//! runs and since when; with the `tracing` feature, events for worker exits, timeouts,
//! respawns, redispatch, manager connections and failed logins, and
//! `log_to_stderr` handing its level to spawned children.

multiprocess::test_support!();

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use multiprocess::{ErrorKind, Options, Pool};

use common::LONG;

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[test]
fn stats_name_the_running_task_and_since_when() {
    let _g = common::shared();
    for timeout in [None, Some(LONG)] {
        let pool = Pool::new(1).unwrap();
        let before = Instant::now();
        let opts = match timeout {
            Some(t) => Options::new().timeout(t),
            None => Options::new(),
        };
        let r = pool.apply_async_with(sleep_ms, 60_000, opts).unwrap();
        let mut seen = None;
        assert!(
            common::eventually(LONG, || {
                seen = pool.stats().pop();
                seen.as_ref().is_some_and(|s| s.task.is_some())
            }),
            "no current task in {seen:?}"
        );
        let s = seen.unwrap();
        assert!(s.task.as_deref().unwrap().starts_with("task "), "{s:?}");
        let since = s.since.expect("a running task has a start");
        assert!(
            since >= before && since <= Instant::now(),
            "{s:?} {timeout:?}"
        );
        pool.terminate();
        assert_eq!(r.get().unwrap_err().kind(), ErrorKind::Cancelled);
        // Idle workers run nothing.
        let pool = Pool::new(1).unwrap();
        assert_eq!(pool.apply(sleep_ms, 0).unwrap(), 0);
        // `stats()` asks the pool thread for a fresh snapshot: current at once.
        let idle = pool.stats();
        assert!(
            idle.iter()
                .all(|s| s.tasks_done == 1 && s.task.is_none() && s.since.is_none()),
            "{idle:?}"
        );
    }
}

#[cfg(feature = "tracing")]
mod traced {
    use std::sync::{Mutex, OnceLock};

    use multiprocess::{
        Client, ErrorKind, Listener, Manager, ManagerServer, Options, Pool, StartMethod,
        get_context,
    };
    use tracing::field::{Field, Visit};
    use tracing_subscriber::layer::{Context, SubscriberExt};

    use super::{LONG, common, sleep_ms};

    /// Every event of this process, as `message field=value ...` lines.
    fn events() -> &'static Mutex<Vec<String>> {
        static EVENTS: OnceLock<&'static Mutex<Vec<String>>> = OnceLock::new();
        EVENTS.get_or_init(|| {
            let events: &'static Mutex<Vec<String>> = Box::leak(Box::default());
            let sub = tracing_subscriber::registry().with(Record(events));
            tracing::subscriber::set_global_default(sub).expect("the only subscriber");
            events
        })
    }

    struct Record(&'static Mutex<Vec<String>>);

    struct Line(String);

    impl Visit for Line {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                self.0.insert_str(0, &format!("{value:?}"));
            } else {
                self.0.push_str(&format!(" {}={value:?}", field.name()));
            }
        }
    }

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Record {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            let mut line = Line(String::new());
            event.record(&mut line);
            line.0.push(' '); // so that " pid=1 " never matches pid=12
            self.0.lock().unwrap().push(line.0);
        }
    }

    /// Waits until an event line contains every one of `parts`.
    fn expect_event(parts: &[&str]) -> String {
        let mut found = None;
        let ok = common::eventually(LONG, || {
            found = events()
                .lock()
                .unwrap()
                .iter()
                .find(|l| parts.iter().all(|p| l.contains(p)))
                .cloned();
            found.is_some()
        });
        assert!(
            ok,
            "no event with {parts:?} in {:#?}",
            events().lock().unwrap()
        );
        found.unwrap()
    }

    /// Item 0 crashes, after long enough for the next chunk to be queued behind it
    /// (chunks of more than one item get two places in a worker, even behind a long
    /// one).
    fn crash_on_zero(x: u64) -> u64 {
        if x == 0 {
            std::thread::sleep(std::time::Duration::from_millis(500));
            std::process::abort()
        }
        x
    }

    #[test]
    fn pool_events_tell_timeouts_deaths_respawns_and_redispatch() {
        let _g = common::shared();
        events();
        let pool = Pool::builder().processes(1).build().unwrap();
        let first = pool.stats().remove(0);
        let (first, first_pid) = (first.name, format!(" pid={} ", first.pid));
        // A stuck call with tasks queued behind it on the same worker.
        let slow = Options::new().timeout(std::time::Duration::from_millis(300));
        let stuck = pool.apply_async_with(sleep_ms, 60_000, slow).unwrap();
        let behind = pool.apply_async(sleep_ms, 1).unwrap();
        assert_eq!(stuck.get().unwrap_err().kind(), ErrorKind::Timeout);
        assert_eq!(behind.get_timeout(LONG).unwrap(), 1);
        expect_event(&["task timed out", &first_pid]);
        expect_event(&["ended while running a task", &first_pid]);
        let second = pool.stats().remove(0);
        let second_pid = format!(" pid={} ", second.pid);
        expect_event(&["pool worker started", &second_pid]);
        expect_event(&["respawned", &second_pid, &format!("replaces={first}")]);
        // A crash with the next chunk of its map queued behind it on the same
        // worker: the cause is in the event, and the queued chunk goes elsewhere.
        let pairs = Options::new().chunk_size(2);
        let e = pool.map_with(crash_on_zero, 0..8, pairs).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ProcessDied);
        expect_event(&["ended while running a task", &second_pid, "SIGABRT"]);
        expect_event(&[
            "redispatching the tasks queued behind an ended worker",
            &format!("worker={}", second.name),
        ]);
    }

    #[test]
    fn failed_logins_are_events_on_both_sides() {
        let _g = common::shared();
        events();
        let name = format!("@mp-test-observability-{}", std::process::id());
        let l = Listener::bind(&name, b"right key").unwrap();
        let addr = name.clone();
        let t = std::thread::spawn(move || Client::connect::<u8>(&addr, b"wrong key"));
        assert!(
            l.accept_timeout::<u8>(std::time::Duration::from_millis(500))
                .is_err()
        );
        let e = t.join().unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Authentication);
        expect_event(&["a client failed to log in"]);
        expect_event(&["login to a listener failed", &name]);
    }

    #[test]
    fn manager_connections_are_events() {
        let _g = common::shared();
        events();
        let server = ManagerServer::bind("127.0.0.1:0", b"key").unwrap();
        let addr = server.address().to_string();
        let t = std::thread::spawn(move || server.serve_forever());
        let m = Manager::connect(&addr, b"key").unwrap();
        let d = m.dict::<String, u32>().unwrap();
        d.insert("a".into(), 1).unwrap();
        expect_event(&["manager serving", &addr]);
        expect_event(&["manager connection opened"]);
        m.shutdown().unwrap();
        drop((d, m));
        t.join().unwrap().unwrap();
        expect_event(&["manager connection closed"]);
    }

    fn log_env(_: ()) -> Option<String> {
        std::env::var("MULTIPROCESS_LOG").ok()
    }

    #[test]
    fn log_to_stderr_hands_its_level_to_spawned_children() {
        let _g = common::shared();
        events(); // our subscriber is installed: log_to_stderr leaves it in place
        assert!(!multiprocess::log_to_stderr_at(tracing::Level::DEBUG));
        for method in [StartMethod::Spawn, StartMethod::ForkServer] {
            let level = get_context(method)
                .spawn(log_env, ())
                .unwrap()
                .join()
                .unwrap();
            // A fork server started before the call has the environment it had then.
            if method == StartMethod::Spawn || level.is_some() {
                assert_eq!(level.as_deref(), Some("DEBUG"), "{method:?}");
            }
        }
    }
}
