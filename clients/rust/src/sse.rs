//! Server-Sent Events, as the WHATWG HTML standard defines their parsing
//! (written here rather than taken from a crate because the ones on
//! crates.io, eventsource-stream among them, buffer an event without bound):
//! lines end in CRLF, LF or CR; a blank line dispatches the event; `:`
//! starts a comment (keep-alives); `data:` lines accumulate, joined by
//! newlines; one space after the colon is dropped. Bytes arrive in chunks of
//! any size, so a line (even a CRLF pair) may be split across two.

use std::collections::VecDeque;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

/// Largest event (or unterminated line) kept in memory. A job's `state` event
/// carries the whole job, input and result included, and an input may be up
/// to the API's 16 MiB JSON body; anything larger is a broken or hostile
/// stream, and buffering it without end would exhaust the client's memory.
pub const MAX_EVENT_BYTES: usize = 32 * 1024 * 1024;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; `message` when the event named none.
    pub event: String,
    /// The `data:` lines, joined by `\n`.
    pub data: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("an event of the stream is over {MAX_EVENT_BYTES} bytes")]
pub struct EventTooLarge;

/// An incremental parser: feed it chunks, take the events they complete.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the line not yet ended.
    line: Vec<u8>,
    /// The previous chunk ended in CR: a LF starting this one ends no new line.
    after_cr: bool,
    /// A line has been read (a byte-order mark before the first is dropped).
    started: bool,
    event: Option<String>,
    data: String,
    /// Whether any `data` field was seen (an event with `data:` alone has empty data, but is an event).
    has_data: bool,
}

impl SseParser {
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// Parse a chunk; returns the events it completes, in order.
    pub fn push(&mut self, mut chunk: &[u8]) -> Result<Vec<SseEvent>, EventTooLarge> {
        let mut events = Vec::new();
        if self.after_cr && !chunk.is_empty() {
            self.after_cr = false;
            chunk = chunk.strip_prefix(b"\n").unwrap_or(chunk);
        }
        while let Some(end) = chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&chunk[..end]);
            let line = std::mem::take(&mut self.line);
            self.line(&line, &mut events)?;
            let crlf = chunk[end] == b'\r';
            chunk = &chunk[end + 1..];
            if crlf {
                match chunk.first() {
                    Some(b'\n') => chunk = &chunk[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        self.line.extend_from_slice(chunk);
        if self.line.len() + self.data.len() > MAX_EVENT_BYTES {
            return Err(EventTooLarge);
        }
        Ok(events)
    }

    /// One complete line (without its end).
    fn line(&mut self, mut line: &[u8], events: &mut Vec<SseEvent>) -> Result<(), EventTooLarge> {
        if !self.started {
            self.started = true;
            line = line.strip_prefix("\u{feff}".as_bytes()).unwrap_or(line);
        }
        if line.is_empty() {
            // The blank line: dispatch. Without data there is no event, and
            // the name is forgotten (as the standard says).
            let event = self.event.take();
            if std::mem::take(&mut self.has_data) {
                let mut data = std::mem::take(&mut self.data);
                if data.ends_with('\n') {
                    data.pop();
                }
                events.push(SseEvent {
                    event: event.unwrap_or_else(|| "message".into()),
                    data,
                });
            }
            return Ok(());
        }
        if line.starts_with(b":") {
            return Ok(()); // a comment: keep-alive
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => {
                if self.data.len() + value.len() > MAX_EVENT_BYTES {
                    return Err(EventTooLarge);
                }
                self.has_data = true;
                self.data.push_str(value);
                self.data.push('\n');
            }
            // `id` and `retry` matter to a reconnecting browser; the client
            // reconnects by reading the job's state, which the stream always
            // sends first. Unknown fields are ignored, as the standard says.
            _ => {}
        }
        Ok(())
    }
}

/// Why reading events stopped.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("{0}")]
    TooLarge(#[from] EventTooLarge),
    #[error("{0}")]
    Body(#[from] reqwest::Error),
}

type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, reqwest::Error>> + Send>>;

/// The events of a response body, read as they arrive.
pub struct EventStream {
    body: ByteStream,
    parser: SseParser,
    ready: VecDeque<SseEvent>,
}

impl EventStream {
    pub fn new(response: reqwest::Response) -> EventStream {
        EventStream {
            body: Box::pin(response.bytes_stream()),
            parser: SseParser::new(),
            ready: VecDeque::new(),
        }
    }

    /// The next event; `None` when the body ends (an event not closed by a
    /// blank line is dropped, as the standard says).
    pub async fn next(&mut self) -> Result<Option<SseEvent>, StreamError> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(Some(event));
            }
            match self.body.next().await {
                Some(chunk) => self.ready.extend(self.parser.push(&chunk?)?),
                None => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, data: &str) -> SseEvent {
        SseEvent {
            event: name.into(),
            data: data.into(),
        }
    }

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        chunks
            .iter()
            .flat_map(|c| parser.push(c).expect("within the size limit"))
            .collect()
    }

    /// Every way of cutting `text` in two gives the same events as the whole.
    fn same_however_split(text: &str, expected: &[SseEvent]) {
        let bytes = text.as_bytes();
        assert_eq!(parse_all(&[bytes]), expected, "whole");
        for cut in 0..=bytes.len() {
            assert_eq!(
                parse_all(&[&bytes[..cut], &bytes[cut..]]),
                expected,
                "split at {cut}"
            );
        }
        let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(parse_all(&one_by_one), expected, "byte by byte");
    }

    #[test]
    fn named_events_and_their_data() {
        same_however_split(
            "event: state\ndata: {\"state\":\"running\"}\n\nevent: progress\ndata: {\"percent\":50}\n\n",
            &[
                event("state", r#"{"state":"running"}"#),
                event("progress", r#"{"percent":50}"#),
            ],
        );
    }

    #[test]
    fn crlf_and_cr_line_ends() {
        let expected = [event("state", "a"), event("state", "b")];
        same_however_split(
            "event: state\r\ndata: a\r\n\r\nevent: state\r\ndata: b\r\n\r\n",
            &expected,
        );
        same_however_split(
            "event: state\rdata: a\r\revent: state\rdata: b\r\r",
            &expected,
        );
        // An empty chunk between the CR and the LF of one line end.
        assert_eq!(
            parse_all(&[b"data: a\r", b"", b"\n\r\n"]),
            [event("message", "a")]
        );
    }

    #[test]
    fn data_lines_join_with_newlines() {
        same_however_split(
            "data: first\ndata:second\ndata:  third\n\n",
            &[event("message", "first\nsecond\n third")],
        );
    }

    #[test]
    fn comments_and_unknown_fields_are_ignored() {
        same_however_split(
            ": keep-alive\n\nid: 7\nretry: 1000\nevent: state\nfoo: bar\n:comment\ndata: x\n\n:\n\n",
            &[event("state", "x")],
        );
    }

    #[test]
    fn a_blank_line_without_data_dispatches_nothing_and_forgets_the_name() {
        same_however_split("event: progress\n\ndata: y\n\n", &[event("message", "y")]);
    }

    #[test]
    fn empty_data_is_still_an_event() {
        same_however_split("event: ping\ndata\n\n", &[event("ping", "")]);
    }

    #[test]
    fn an_unfinished_event_is_not_dispatched() {
        assert!(parse_all(&[b"event: state\ndata: {}\n"]).is_empty());
    }

    #[test]
    fn a_leading_byte_order_mark_is_dropped() {
        same_however_split("\u{feff}data: z\n\n", &[event("message", "z")]);
    }

    #[test]
    fn invalid_utf8_does_not_stop_the_stream() {
        let events = parse_all(&[b"data: \xff\n\n", b"data: ok\n\n"]);
        assert_eq!(events[0].data, "\u{fffd}");
        assert_eq!(events[1], event("message", "ok"));
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut parser = SseParser::new();
        let chunk = vec![b'a'; 1024 * 1024];
        let refused = (0..=MAX_EVENT_BYTES / chunk.len()).any(|_| parser.push(&chunk).is_err());
        assert!(refused);
    }

    #[test]
    fn endless_data_is_refused() {
        let mut parser = SseParser::new();
        let line = format!("data: {}\n", "a".repeat(1024 * 1024));
        let refused =
            (0..=MAX_EVENT_BYTES / line.len()).any(|_| parser.push(line.as_bytes()).is_err());
        assert!(refused);
    }
}
