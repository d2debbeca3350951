//! The progress bar of `map` and `imap` (feature `progress`): a label, the bar, done
//! out of total, the rate in items per second and the elapsed time.
//!
//! Both figures are whole-run averages written by us, not indicatif's moving
//! estimates, so that a job of a few hundred milliseconds reads sensibly: its time in
//! hundredths of a second (`0.42s`, not `00:00:00`) and a rate from all its items,
//! where a moving estimate has not settled yet. When the job ends the bar is replaced
//! by one summary line (`squares: 2000 items in 0.42s (4.8k/s)`), so a job that was
//! over before the first redraw still says what it did. Drawn only when stderr is a
//! terminal; elsewhere the bar is hidden and prints nothing.

use std::fmt::Write as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressState, ProgressStyle};

/// A bar for `len` items (`0`: unknown, a spinner and a count) named `label`.
pub(crate) fn bar(len: u64, label: &str) -> ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = if len > 0 {
        ProgressBar::new(len)
    } else {
        ProgressBar::no_length()
    };
    bar.set_style(style(len > 0));
    bar.set_prefix(label.to_string());
    bar
}

fn template(known_len: bool) -> &'static str {
    if known_len {
        "{prefix} {bar:30} {pos}/{len} {rate} {secs} (eta {eta})"
    } else {
        "{prefix} {spinner} {pos} {rate} {secs}"
    }
}

fn style(known_len: bool) -> ProgressStyle {
    ProgressStyle::with_template(template(known_len))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&rate(s.pos(), s.elapsed()));
        })
        .with_key("secs", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&secs(s.elapsed()));
        })
}

/// Ends the bar with one summary line (nothing if hidden).
pub(crate) fn finish(bar: &ProgressBar) {
    if bar.is_hidden() {
        return;
    }
    let (n, took) = (bar.position(), bar.elapsed());
    let mut line = format!("{}: {n} items in {}", bar.prefix(), secs(took));
    let _ = write!(line, " ({})", rate(n, took));
    bar.set_style(ProgressStyle::with_template("{msg}").expect("a valid template"));
    bar.finish_with_message(line);
}

/// `n` items over `took` as a rate: `850/s`, `4.8k/s`, `1.2M/s`; `-` before any time.
fn rate(n: u64, took: Duration) -> String {
    let s = took.as_secs_f64();
    if s <= 0.0 || n == 0 {
        return "-/s".into();
    }
    let r = n as f64 / s;
    match r {
        r if r >= 1e6 => format!("{:.1}M/s", r / 1e6),
        r if r >= 1e4 => format!("{:.0}k/s", r / 1e3),
        r if r >= 1e3 => format!("{:.1}k/s", r / 1e3),
        r if r >= 10.0 => format!("{r:.0}/s"),
        r => format!("{r:.2}/s"),
    }
}

/// Elapsed time: hundredths under 10 s (`0.42s`), then seconds, then minutes.
fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 10.0 {
        format!("{s:.2}s")
    } else if s < 60.0 {
        format!("{s:.0}s")
    } else {
        let m = d.as_secs() / 60;
        format!("{m}m{:02}s", d.as_secs() % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_well_from_slow_to_fast() {
        let sec = Duration::from_secs(1);
        assert_eq!(rate(0, sec), "-/s");
        assert_eq!(rate(5, Duration::ZERO), "-/s");
        assert_eq!(rate(3, sec * 2), "1.50/s");
        assert_eq!(rate(850, sec), "850/s");
        assert_eq!(rate(2000, Duration::from_millis(420)), "4.8k/s");
        assert_eq!(rate(50_000, sec), "50k/s");
        assert_eq!(rate(1_200_000, sec), "1.2M/s");
    }

    #[test]
    fn sub_second_jobs_show_hundredths() {
        assert_eq!(secs(Duration::from_millis(420)), "0.42s");
        assert_eq!(secs(Duration::from_millis(9_999)), "10.00s");
        assert_eq!(secs(Duration::from_secs(42)), "42s");
        assert_eq!(secs(Duration::from_secs(83)), "1m23s");
    }

    #[test]
    fn both_templates_parse() {
        for known in [true, false] {
            assert!(ProgressStyle::with_template(template(known)).is_ok());
        }
        let hidden = bar(10, "x"); // stderr is not a terminal under the test harness
        hidden.inc(3);
        finish(&hidden);
    }
}
