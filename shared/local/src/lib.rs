//! Embedded adapters of the core ports (SQLite store, durable in-process queue, encrypted file
//! vault), the wiring that runs the core services on them, and the demo.

pub mod act;
pub mod action_queue;
pub mod action_worker;
pub mod admin;
pub mod api_serve;
pub mod bench;
pub mod bench_actions;
pub mod bench_events;
pub mod cli;
pub mod demo;
pub mod events;
pub mod events_cli;
pub mod hooks_cli;
pub mod hooks_worker;
pub mod outbound;
pub mod procstat;
pub mod queue;
pub mod runtime;
pub mod serve;
pub mod sqlite;
pub mod vault;
pub mod verify;

/// A value's serialised name in words, for people (`settings_changed` -> "settings changed",
/// `{"when": "nightly", "hour_utc": 2}` -> "nightly, hour utc 2"), never Rust `Debug` text.
pub fn words<T: serde::Serialize>(value: &T) -> String {
    fn render(v: &serde_json::Value) -> String {
        match v {
            serde_json::Value::String(s) => s.replace('_', " "),
            // The tag (a string) first, then the other fields by name.
            serde_json::Value::Object(fields) => {
                let (tags, rest): (Vec<_>, Vec<_>) =
                    fields.iter().partition(|(_, v)| v.is_string());
                tags.into_iter()
                    .map(|(_, v)| render(v))
                    .chain(
                        rest.into_iter()
                            .map(|(k, v)| format!("{} {}", k.replace('_', " "), render(v))),
                    )
                    .collect::<Vec<_>>()
                    .join(", ")
            }
            other => other.to_string(),
        }
    }
    serde_json::to_value(value).map_or_else(|_| String::new(), |v| render(&v))
}

/// A run's duration for people: `850 ms`, `12.4 s`, `3 min 5 s`.
pub fn duration_words(d: chrono::TimeDelta) -> String {
    let ms = d.num_milliseconds().max(0);
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

/// One line per run for people: status (held runs say what to do, in commands `hints` points
/// at the data in use), trigger, start, end and duration, directory reads and what happened to
/// the host product's users.
pub fn run_line(run: &entra_sync_core::run::SyncRun, hints: &cli::Hints) -> String {
    use entra_sync_core::run::RunStatus;
    let status = match &run.status {
        RunStatus::Running => "running".to_owned(),
        RunStatus::Succeeded => "succeeded".to_owned(),
        RunStatus::Failed { error } => format!("failed: {error}"),
        RunStatus::Held { hold } => format!(
            "HELD by the circuit breaker: {} of {} users wait for their deactivation ({}; {} reported disabled or deleted in the directory were deactivated), {}; run `{}` or `{}`",
            hold.deactivations,
            hold.active_before,
            hold.threshold,
            hold.applied_deactivations,
            hold.describe_age(chrono::Utc::now()),
            hints.command(&format!("confirm {}", run.run_id)),
            hints.command(&format!("reject {}", run.run_id))
        ),
        RunStatus::Rejected { by, .. } => format!("rejected by {by}"),
        RunStatus::Skipped { reason } => format!("skipped: {reason}"),
    };
    let c = &run.counts;
    let p = &run.provisioning;
    let mut notes = String::new();
    if let Some(failed) = &run.continues {
        notes.push_str(&format!("; continues the round of failed run {failed}"));
    }
    for note in &run.notes {
        notes.push_str("; note: ");
        notes.push_str(note);
    }
    format!(
        "{} {} ({}, started {}{}): directory: {} pages, {} Graph requests, {} created, {} updated, {} removed; users: {} created, {} linked, {} updated, {} deactivated, {} reactivated, {} disabled in directory, {} frozen, {} skipped, {} failed{notes}",
        run.run_id,
        status,
        words(&run.trigger),
        run.started_at.format("%Y-%m-%d %H:%M:%S"),
        match run.finished_at {
            Some(end) => format!(
                ", ended {} after {}",
                end.format("%Y-%m-%d %H:%M:%S"),
                duration_words(end - run.started_at)
            ),
            None => String::new(),
        },
        c.pages_applied,
        run.graph_requests,
        c.created,
        c.updated,
        c.removed,
        p.created,
        p.linked,
        p.updated,
        p.deactivated,
        p.reactivated,
        p.disabled_in_directory,
        p.frozen,
        p.skipped,
        p.failed
    )
}

/// Print [`run_line`] on stdout.
pub fn print_run_line(run: &entra_sync_core::run::SyncRun, hints: &cli::Hints) {
    stdout_line(format_args!("{}", run_line(run, hints)));
}

/// Write one line on stdout. A closed pipe (`entra-sync runs | head -1`) ends the program
/// quietly and successfully, as `head` expects, where `println!` would panic; any other
/// write error (a full disk) ends it with a message and a failure.
#[allow(clippy::print_stderr)]
pub fn stdout_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    match writeln!(std::io::stdout().lock(), "{args}") {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("error: cannot write the output: {e}");
            std::process::exit(1);
        }
    }
}

/// `println!` through [`stdout_line`].
#[macro_export]
macro_rules! outln {
    () => {
        $crate::stdout_line(format_args!(""))
    };
    ($($t:tt)*) => {
        $crate::stdout_line(format_args!($($t)*))
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_as_people_say_them() {
        use super::duration_words;
        let ms = chrono::TimeDelta::milliseconds;
        assert_eq!(duration_words(ms(850)), "850 ms");
        assert_eq!(duration_words(ms(12_449)), "12.4 s");
        assert_eq!(duration_words(ms(185_000)), "3 min 5 s");
        assert_eq!(
            duration_words(ms(-5)),
            "0 ms",
            "a clock step back is not negative"
        );
    }

    #[test]
    fn words_are_the_serialised_names_without_debug_text() {
        use entra_sync_core::run::Trigger;
        use entra_sync_core::settings::Deprovisioning;
        assert_eq!(super::words(&Trigger::SettingsChanged), "settings changed");
        assert_eq!(super::words(&Deprovisioning::EveryRun), "every run");
        assert_eq!(
            super::words(&Deprovisioning::Nightly { hour_utc: 2 }),
            "nightly, hour utc 2"
        );
    }
}
