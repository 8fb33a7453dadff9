//! Cluster time: starts at the wall clock and runs `time_scale` times faster, so a test can let
//! a 30-second grace period pass in a third of a second while every timestamp the API shows
//! stays consistent.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};

#[derive(Debug)]
pub(crate) struct Clock {
    origin_instant: Instant,
    origin: DateTime<Utc>,
    scale: f64,
    /// Cluster time added by `advance`, in milliseconds.
    offset_ms: AtomicI64,
}

impl Clock {
    pub fn new(scale: f64) -> Self {
        Clock {
            origin_instant: Instant::now(),
            origin: Utc::now(),
            scale,
            offset_ms: AtomicI64::new(0),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        let elapsed = self.origin_instant.elapsed().as_secs_f64() * self.scale;
        let elapsed_ms = (elapsed * 1000.0) as i64 + self.offset_ms.load(Ordering::Relaxed);
        self.origin + chrono::Duration::milliseconds(elapsed_ms)
    }

    /// Cluster seconds per real second.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// The real time to wait until the cluster clock reaches `at`.
    pub fn real_wait_until(&self, at: DateTime<Utc>) -> Duration {
        let cluster_ms = (at - self.now()).num_milliseconds().max(0) as f64;
        Duration::from_secs_f64(cluster_ms / 1000.0 / self.scale)
    }

    /// Jumps the cluster clock forward.
    pub fn advance(&self, by: chrono::Duration) {
        self.offset_ms
            .fetch_add(by.num_milliseconds().max(0), Ordering::Relaxed);
    }
}

pub(crate) fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub(crate) fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// An age as kubectl prints it (`45s`, `3m20s`, `5h10m`, `12d`, `2y30d`).
pub(crate) fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        return if days == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{days}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_print_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(200), "3m20s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 600), "3h10m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86400 + 7200), "3d2h");
        assert_eq!(human_duration(100 * 86400), "100d");
        assert_eq!(human_duration(3 * 365 * 86400 + 86400 * 5), "3y5d");
    }

    #[test]
    fn scaled_clock_runs_faster_and_can_jump() {
        let clock = Clock::new(1000.0);
        let start = clock.now();
        std::thread::sleep(Duration::from_millis(20));
        assert!((clock.now() - start).num_seconds() >= 10);
        clock.advance(chrono::Duration::hours(1));
        assert!((clock.now() - start).num_seconds() >= 3600);
        assert_eq!(clock.real_wait_until(start), Duration::ZERO);
    }
}
