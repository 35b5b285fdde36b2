//! Cutting a TCP byte stream into SIP messages (RFC 3261 §18.3) and spotting RFC 5626 §4.4.1
//! keep-alives between them.
//!
//! On a stream, the end of the header section is the first blank line and the body is exactly
//! Content-Length bytes, so Content-Length is mandatory; a message without one, or with several
//! that disagree (RFC 4475 §3.3.9 `mcl01`), leaves the stream unframeable and the connection
//! must be closed. Buffering is bounded: a header section or a declared message larger than the
//! configured maximum is an error, never a reason to keep reading.

/// The default maximum size of one framed message, headers and body.
pub const DEFAULT_MAX_MESSAGE: usize = 64 * 1024;

/// One thing taken off the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The bytes of one complete message (header section and exactly Content-Length bytes of
    /// body), ready for [`crate::parse::parse_message`].
    Message(Vec<u8>),
    /// A double-CRLF keep-alive "ping" (RFC 5626 §4.4.1): answer with a single CRLF.
    Ping,
    /// A single CRLF between messages: a keep-alive "pong" answering our ping (nothing to send).
    Pong,
}

/// Why the stream cannot be framed any further. After any of these the framer returns nothing
/// more and ignores further input; the connection should be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("message without Content-Length on a stream")]
    MissingContentLength,
    #[error("malformed Content-Length")]
    BadContentLength,
    #[error("conflicting Content-Length values")]
    ConflictingContentLength,
    #[error("message larger than {max} bytes")]
    TooLarge { max: usize },
}

/// Reassembles SIP messages from the reads of one stream connection.
///
/// Feed every read to [`push`](Self::push), then call [`next_message`](Self::next_message)
/// until it returns `None`.
#[derive(Debug)]
pub struct StreamFramer {
    buf: Vec<u8>,
    max_message: usize,
    /// Where the search for the blank line ending the current header section resumes, so that
    /// a header section trickling in byte by byte is not rescanned from the start each time.
    scanned: usize,
    failed: bool,
}

impl Default for StreamFramer {
    fn default() -> Self {
        StreamFramer::new(DEFAULT_MAX_MESSAGE)
    }
}

impl StreamFramer {
    /// A framer refusing messages (headers + body) larger than `max_message` bytes.
    pub fn new(max_message: usize) -> StreamFramer {
        StreamFramer {
            buf: Vec::new(),
            max_message,
            scanned: 0,
            failed: false,
        }
    }

    /// Append bytes read from the stream. Ignored once the stream has failed.
    pub fn push(&mut self, bytes: &[u8]) {
        if !self.failed {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// Bytes held that do not yet form a complete message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether the stream has failed (an error was returned); the connection should be closed.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// The next complete frame, `None` when more bytes are needed (or after a failure).
    pub fn next_message(&mut self) -> Option<Result<Frame, FramingError>> {
        if self.failed {
            return None;
        }
        match self.take() {
            Ok(frame) => frame.map(Ok),
            Err(e) => {
                self.failed = true;
                self.buf = Vec::new();
                Some(Err(e))
            }
        }
    }

    fn take(&mut self) -> Result<Option<Frame>, FramingError> {
        // Keep-alives and stray line ends between messages (RFC 3261 §7.5, RFC 5626 §4.4.1).
        loop {
            match self.buf.as_slice() {
                [] => return Ok(None),
                [b'\r', b'\n', b'\r', b'\n', ..] => {
                    self.consume(4);
                    return Ok(Some(Frame::Ping));
                }
                // Could still become a ping: wait for the rest.
                [b'\r'] | [b'\r', b'\n'] | [b'\r', b'\n', b'\r'] => return Ok(None),
                [b'\r', b'\n', ..] => {
                    self.consume(2);
                    return Ok(Some(Frame::Pong));
                }
                [b'\r' | b'\n', ..] => self.consume(1),
                _ => break,
            }
        }

        let Some(head_len) = self.find_head_end() else {
            if self.buf.len() > self.max_message {
                return Err(FramingError::TooLarge {
                    max: self.max_message,
                });
            }
            return Ok(None);
        };
        let head = self.buf.get(..head_len).unwrap_or_default();
        let body_len = stream_content_length(head)?;
        let total = head_len
            .checked_add(body_len)
            .filter(|&t| t <= self.max_message)
            .ok_or(FramingError::TooLarge {
                max: self.max_message,
            })?;
        if self.buf.len() < total {
            return Ok(None);
        }
        let rest = self.buf.split_off(total);
        let message = std::mem::replace(&mut self.buf, rest);
        self.scanned = 0;
        Ok(Some(Frame::Message(message)))
    }

    fn consume(&mut self, n: usize) {
        self.buf.drain(..n.min(self.buf.len()));
        self.scanned = 0;
    }

    /// Length of the header section including its blank line (CRLFCRLF, or bare LFs).
    fn find_head_end(&mut self) -> Option<usize> {
        // resume a few bytes back so a terminator split across reads is found
        let from = self.scanned.saturating_sub(3);
        let window = self.buf.get(from..).unwrap_or_default();
        let mut i = 0;
        while let Some(off) = window
            .get(i..)
            .and_then(|w| w.iter().position(|&b| b == b'\n'))
        {
            let lf = i + off;
            let next = window.get(lf + 1..).unwrap_or_default();
            if next.starts_with(b"\n") {
                return Some(from + lf + 2);
            }
            if next.starts_with(b"\r\n") {
                return Some(from + lf + 3);
            }
            i = lf + 1;
        }
        self.scanned = self.buf.len();
        None
    }
}

/// Content-Length of a stream message's header section: mandatory, decimal, and all values
/// equal. Folded Content-Length values are joined like any other header.
fn stream_content_length(head: &[u8]) -> Result<usize, FramingError> {
    let mut found: Option<usize> = None;
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .skip(1) // start line
        .peekable();
    while let Some(line) = lines.next() {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        let name = trim(name);
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let mut value = value.get(1..).unwrap_or_default().to_vec();
        while let Some(cont) = lines.next_if(|l| l.starts_with(b" ") || l.starts_with(b"\t")) {
            value.push(b' ');
            value.extend_from_slice(cont);
        }
        let value = trim(&value);
        if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
            return Err(FramingError::BadContentLength);
        }
        let n = std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .ok_or(FramingError::BadContentLength)?;
        match found {
            Some(prev) if prev != n => return Err(FramingError::ConflictingContentLength),
            _ => found = Some(n),
        }
    }
    found.ok_or(FramingError::MissingContentLength)
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !matches!(c, b' ' | b'\t'));
    let end = b.iter().rposition(|c| !matches!(c, b' ' | b'\t'));
    match (start, end) {
        (Some(s), Some(e)) => b.get(s..=e).unwrap_or_default(),
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl: 5\r\n\r\nhello";

    fn drain(f: &mut StreamFramer) -> Vec<Result<Frame, FramingError>> {
        std::iter::from_fn(|| f.next_message()).collect()
    }

    #[test]
    fn byte_by_byte_reassembly() {
        let mut f = StreamFramer::default();
        let mut got = Vec::new();
        for b in MSG {
            f.push(&[*b]);
            got.extend(drain(&mut f));
        }
        assert_eq!(got, vec![Ok(Frame::Message(MSG.to_vec()))]);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn several_messages_and_keepalives_in_one_read() {
        let mut f = StreamFramer::default();
        let mut input = b"\r\n\r\n".to_vec();
        input.extend_from_slice(MSG);
        input.extend_from_slice(b"\r\n");
        input.extend_from_slice(MSG);
        input.extend_from_slice(&MSG[..10]);
        f.push(&input);
        assert_eq!(
            drain(&mut f),
            vec![
                Ok(Frame::Ping),
                Ok(Frame::Message(MSG.to_vec())),
                Ok(Frame::Pong),
                Ok(Frame::Message(MSG.to_vec())),
            ]
        );
        assert_eq!(f.buffered(), 10);
        f.push(&MSG[10..]);
        assert_eq!(drain(&mut f), vec![Ok(Frame::Message(MSG.to_vec()))]);
    }

    #[test]
    fn ping_split_across_reads_is_still_a_ping() {
        let mut f = StreamFramer::default();
        f.push(b"\r\n");
        assert_eq!(f.next_message(), None);
        f.push(b"\r\n");
        assert_eq!(drain(&mut f), vec![Ok(Frame::Ping)]);
    }

    #[test]
    fn missing_content_length_fails_the_stream() {
        let mut f = StreamFramer::default();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n");
        assert_eq!(drain(&mut f), vec![Err(FramingError::MissingContentLength)]);
        assert!(f.is_failed());
        f.push(MSG);
        assert_eq!(f.next_message(), None);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn conflicting_and_bad_content_length() {
        let mut f = StreamFramer::default();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 13\r\nl: 5\r\n\r\n");
        assert_eq!(
            f.next_message(),
            Some(Err(FramingError::ConflictingContentLength))
        );
        let mut f = StreamFramer::default();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\n");
        assert_eq!(f.next_message(), Some(Err(FramingError::BadContentLength)));
        // equal duplicates and folding are fine
        let mut f = StreamFramer::default();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length:\r\n 2\r\nl: 2\r\n\r\nok");
        assert!(
            matches!(f.next_message(), Some(Ok(Frame::Message(m))) if m.ends_with(b"\r\n\r\nok"))
        );
    }

    #[test]
    fn size_limit_bounds_buffering() {
        let mut f = StreamFramer::new(100);
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nl: 1000\r\n\r\n");
        assert_eq!(
            f.next_message(),
            Some(Err(FramingError::TooLarge { max: 100 }))
        );
        // a header section that never ends
        let mut f = StreamFramer::new(100);
        for _ in 0..20 {
            f.push(b"X-Junk: 0123456789\r\n");
            if let Some(r) = f.next_message() {
                assert_eq!(r, Err(FramingError::TooLarge { max: 100 }));
                assert!(f.buffered() == 0);
                return;
            }
            assert!(f.buffered() <= 120);
        }
        panic!("never hit the limit");
    }

    #[test]
    fn bare_lf_head_terminator() {
        let mut f = StreamFramer::default();
        f.push(b"OPTIONS sip:a@b SIP/2.0\nl: 2\n\nhi");
        assert_eq!(
            f.next_message(),
            Some(Ok(Frame::Message(
                b"OPTIONS sip:a@b SIP/2.0\nl: 2\n\nhi".to_vec()
            )))
        );
    }
}
