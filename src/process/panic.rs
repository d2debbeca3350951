//! Panics in a child: reported as Python reports an exception in a process (with the
//! process's name), kept for the caller (`spawn`'s `join`, a pool task's error), and
//! cut down to the task's own frames of a backtrace.

use std::panic;
use std::sync::Mutex;

use super::state;

static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

/// In a pool worker, panics are caught and sent back to the caller, who reports them;
/// the worker does not print them too.
static QUIET_PANICS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Stop printing panics in this (child) process; they are still recorded for
/// [`take_panic`].
pub(crate) fn quiet_panics() {
    QUIET_PANICS.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// The last panic's "message at location" (set by the child's panic hook).
pub(crate) fn take_panic() -> Option<String> {
    LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()).take()
}

/// The message a panic carries (`panic!("...")`'s text), or `Box<dyn Any>` for a
/// payload of another type, as std's own report says.
pub(crate) fn payload_text(p: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = p.downcast_ref::<&str>() {
        s
    } else if let Some(s) = p.downcast_ref::<String>() {
        s
    } else {
        "Box<dyn Any>"
    }
}

/// In a child: report panics as Python reports an exception in a process, with the
/// process's name, and remember the message for `spawn`'s caller.
#[allow(unsafe_code)] // the section only groups code: "Child text" in process::bootstrap
#[unsafe(link_section = "multiprocess_child_text")]
pub(crate) fn install_panic_hook() {
    panic::set_hook(Box::new(|info| {
        let msg = payload_text(info.payload()).to_string();
        let loc = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
        let st = state::state();
        let mut text = match &loc {
            Some(l) => format!(
                "Process {} (pid {}) panicked at {l}:\n{msg}",
                st.name, st.pid
            ),
            None => format!("Process {} (pid {}) panicked:\n{msg}", st.name, st.pid),
        };
        let bt = std::backtrace::Backtrace::capture();
        let bt = (bt.status() == std::backtrace::BacktraceStatus::Captured)
            .then(|| user_frames(&bt.to_string()));
        if let Some(bt) = &bt {
            text.push_str(&format!("\nstack backtrace:\n{bt}"));
        }
        if !QUIET_PANICS.load(std::sync::atomic::Ordering::Relaxed) {
            report!("{text}");
        }
        let short = match loc {
            Some(l) => format!("{msg} (at {l})"),
            None => msg,
        };
        let short = match &bt {
            Some(bt) => format!("{short}\nstack backtrace:\n{bt}"),
            None => short,
        };
        *LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()) = Some(short);
    }));
}

/// The frames of a backtrace that belong to the task: without the panic machinery
/// above them (the hook, `rust_begin_unwind`, `core::panicking`) and without the
/// child's start-up below them (from the first frame of this crate or of
/// `catch_unwind` on). Falls back to the whole text if it finds no such frames.
pub(crate) fn user_frames(bt: &str) -> String {
    // A frame is a line "  N: symbol", followed by its "at file:line" lines.
    let mut frames: Vec<(String, Vec<&str>)> = Vec::new();
    for line in bt.lines() {
        let t = line.trim_start();
        match t.split_once(": ") {
            Some((n, sym)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                frames.push((sym.to_string(), vec![line]));
            }
            _ => {
                if let Some(f) = frames.last_mut() {
                    f.1.push(line);
                }
            }
        }
    }
    // The panic machinery ends at `rust_begin_unwind`, then `core::panicking::*`
    // frames (panic_fmt, panic, expect_failed, ...) lead to the task's own code.
    let start = match frames
        .iter()
        .position(|(s, _)| s.contains("rust_begin_unwind"))
    {
        Some(i) => {
            let mut j = i + 1;
            while j < frames.len() && frames[j].0.starts_with("core::") {
                j += 1;
            }
            j
        }
        None => 0,
    };
    let end = frames[start..]
        .iter()
        .position(|(s, _)| {
            s.starts_with("multiprocess::")
                || s.starts_with("std::panicking::catch_unwind")
                || s.starts_with("std::panic::catch_unwind")
                || s.starts_with("<core::panic::unwind_safe")
        })
        .map_or(frames.len(), |i| start + i);
    if start >= end {
        return bt.to_string();
    }
    frames[start..end]
        .iter()
        .flat_map(|(_, lines)| lines.iter().copied())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::user_frames;

    const BT: &str = "   0: std::backtrace::Backtrace::capture
             at /rustc/library/std/src/backtrace.rs:296:9
   1: multiprocess::process::panic::install_panic_hook::{{closure}}
   2: std::panicking::rust_panic_with_hook
   3: rust_begin_unwind
   4: core::panicking::panic_fmt
   5: core::panicking::panic
   6: my_app::divide
             at src/main.rs:10:5
   7: my_app::task
             at src/main.rs:20:5
   8: multiprocess::pool::run_chunk
   9: std::panicking::catch_unwind
  10: main";

    #[test]
    fn keeps_only_the_tasks_own_frames() {
        let got = user_frames(BT);
        assert_eq!(
            got,
            "   6: my_app::divide\n             at src/main.rs:10:5\n   7: my_app::task\n             at src/main.rs:20:5"
        );
    }

    #[test]
    fn without_panic_machinery_starts_at_the_top() {
        let bt = "   0: my_app::f\n   1: multiprocess::x\n   2: main";
        assert_eq!(user_frames(bt), "   0: my_app::f");
    }

    #[test]
    fn falls_back_to_the_whole_text() {
        let bt = "   0: multiprocess::x\n   1: main";
        assert_eq!(user_frames(bt), bt);
        assert_eq!(user_frames("not a backtrace"), "not a backtrace");
    }
}
