//! Watches: a chunked stream of `{"type": …, "object": …}` lines, resumable from any
//! resourceVersion still in the event log, with bookmarks for clients that ask for them and
//! the initial-events protocol of streaming lists.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::format::{Format, Query, query_param, streaming};
use super::object::Stored;
use super::ops::ListOptions;
use super::resource::{ResId, ResourceType};
use super::shared::Shared;
use super::status::ApiError;
use super::table;
use super::world::{Event, EventType};

struct Watch {
    shared: Arc<Shared>,
    rt: ResourceType,
    res: ResId,
    options: ListOptions,
    format: Format,
    bookmarks: bool,
    /// The older version the client watches through, if not the stored one.
    served_as: Option<String>,
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
}

impl Watch {
    fn encode(&self, kind: &str, object: &Stored) -> Bytes {
        match self.format {
            Format::Json => raw_event_line(kind, &object.json_as(self.served_as.as_deref())),
            Format::PartialMetadata => {
                let mut object_bytes = Vec::with_capacity(object.metadata().len() + 80);
                table::write_partial_metadata(object, &mut object_bytes);
                raw_event_line(kind, &object_bytes)
            }
            Format::Table(include) => {
                let now = self.shared.clock.now();
                let table = table::table(&self.rt, [object], include, now, object.rv, None);
                raw_event_line(kind, &table)
            }
        }
    }

    fn bookmark(&self, rv: u64, initial_events_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        event_line(
            "BOOKMARK",
            &json!({"kind": self.rt.kind, "apiVersion": self.rt.api_version(), "metadata": metadata}),
        )
    }

    /// The type under which a logged change reaches this watch, if at all.
    fn translate(&self, event: &Event) -> Option<&'static str> {
        if event.res != self.res {
            return None;
        }
        let now = self.options.matches(&event.object);
        let before = event
            .previous
            .as_ref()
            .is_some_and(|p| self.options.matches(p));
        match (event.kind, before, now) {
            (EventType::Added, _, true) => Some("ADDED"),
            (EventType::Modified, true, true) => Some("MODIFIED"),
            (EventType::Modified, false, true) => Some("ADDED"),
            (EventType::Modified, true, false) => Some("DELETED"),
            (EventType::Deleted, true, _) => Some("DELETED"),
            _ => None,
        }
    }

    async fn send(&self, bytes: Bytes) -> bool {
        self.tx.send(Ok(bytes)).await.is_ok()
    }

    async fn run(
        self,
        mut cursor: u64,
        initial: Vec<Arc<Stored>>,
        initial_end: bool,
        timeout: Option<Duration>,
        mut drops: tokio::sync::watch::Receiver<u64>,
    ) {
        let mut changes = self.shared.changes.subscribe();
        for object in &initial {
            if !self.send(self.encode("ADDED", object)).await {
                return;
            }
        }
        if initial_end && self.bookmarks && !self.send(self.bookmark(cursor, true)).await {
            return;
        }
        let deadline =
            tokio::time::Instant::now() + timeout.unwrap_or(Duration::from_secs(365 * 24 * 3600));
        let mut ticker =
            tokio::time::interval(self.shared.bookmark_interval.max(Duration::from_millis(10)));
        ticker.tick().await;
        // Changes made before this watch subscribed are in the log: pull first, then wait.
        let mut bookmark_due = false;
        loop {
            let Some(events) = self.shared.read(|w| w.events_after(cursor)) else {
                let oldest = self.shared.read(|w| w.oldest_resumable());
                let error =
                    ApiError::gone(format!("too old resource version: {cursor} ({oldest})"));
                let _ = self.send(event_line("ERROR", &error.body())).await;
                return;
            };
            for event in events {
                cursor = event.rv;
                if let Some(kind) = self.translate(&event)
                    && !self.send(self.encode(kind, &event.object)).await
                {
                    return;
                }
            }
            if bookmark_due
                && self.bookmarks
                && self.format == Format::Json
                && !self.send(self.bookmark(cursor, false)).await
            {
                return;
            }
            bookmark_due = tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    false
                }
                _ = drops.changed() => return,
                () = self.shared.shutdown.cancelled() => return,
                () = tokio::time::sleep_until(deadline) => return,
                () = self.tx.closed() => return,
                _ = ticker.tick() => true,
            };
        }
    }
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object}))
        .expect("JSON values serialize");
    line.push(b'\n');
    Bytes::from(line)
}

/// An event line around an object already serialized.
fn raw_event_line(kind: &str, object: &[u8]) -> Bytes {
    let mut line = Vec::with_capacity(object.len() + 32);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(kind.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(object);
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}

/// Starts a watch and returns its streaming response.
pub(crate) fn serve(
    shared: Arc<Shared>,
    res: ResId,
    options: ListOptions,
    query: &Query,
    format: Format,
    served_as: Option<&str>,
) -> Result<Response, ApiError> {
    let bookmarks = matches!(
        query_param(query, "allowWatchBookmarks"),
        Some("true" | "1")
    );
    let send_initial = matches!(query_param(query, "sendInitialEvents"), Some("true" | "1"));
    let timeout = query_param(query, "timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    let from = match query_param(query, "resourceVersion") {
        None | Some("") | Some("0") => None,
        Some(text) => Some(
            text.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version {text:?}")))?,
        ),
    };
    let (rt, start, initial, expired) = shared.read(|w| {
        let rt = w.registry.get(res).clone();
        match from {
            Some(rv) if !send_initial => {
                let expired = (rv < w.oldest_resumable()).then(|| w.oldest_resumable());
                (rt, rv, Vec::new(), expired)
            }
            _ => (rt, w.rv, w.matching(res, &options), None),
        }
    });
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let watch = Watch {
        shared,
        rt,
        res,
        options,
        format,
        bookmarks,
        served_as: served_as.map(str::to_string),
        tx,
    };
    if let Some(oldest) = expired {
        let error = ApiError::gone(format!(
            "too old resource version: {} ({oldest})",
            from.unwrap_or_default()
        ));
        let line = event_line("ERROR", &error.body());
        tokio::spawn(async move {
            let _ = watch.send(line).await;
        });
    } else {
        // Subscribed before the client sees the response: a drop that follows it ends this watch.
        let mut drops = watch.shared.drops.subscribe();
        drops.mark_unchanged();
        tokio::spawn(watch.run(start, initial, send_initial, timeout, drops));
    }
    Ok(streaming(Body::from_stream(stream)))
}
