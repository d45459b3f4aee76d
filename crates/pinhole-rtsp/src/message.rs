//! RTSP 1.0 messages on the wire (RFC 2326 §4–7): what a client sends
//! (requests, and RTCP in `$`-framed interleaved blocks) parsed with hard
//! limits, and responses encoded.

use crate::RtspError;

/// Request line plus headers, in bytes. Real clients send < 1 KiB.
pub const MAX_HEAD: usize = 8 * 1024;
/// Header lines per request.
pub const MAX_HEADERS: usize = 32;
/// A request body (SET_PARAMETER, GET_PARAMETER names): read and ignored.
pub const MAX_BODY: usize = 4 * 1024;

/// The methods we know; anything else is `Other` (answered 501).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    Options,
    Describe,
    Setup,
    Play,
    Pause,
    Teardown,
    GetParameter,
    SetParameter,
    Other(String),
}

impl Method {
    fn parse(s: &str) -> Method {
        match s {
            "OPTIONS" => Method::Options,
            "DESCRIBE" => Method::Describe,
            "SETUP" => Method::Setup,
            "PLAY" => Method::Play,
            "PAUSE" => Method::Pause,
            "TEARDOWN" => Method::Teardown,
            "GET_PARAMETER" => Method::GetParameter,
            "SET_PARAMETER" => Method::SetParameter,
            other => Method::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Options => "OPTIONS",
            Method::Describe => "DESCRIBE",
            Method::Setup => "SETUP",
            Method::Play => "PLAY",
            Method::Pause => "PAUSE",
            Method::Teardown => "TEARDOWN",
            Method::GetParameter => "GET_PARAMETER",
            Method::SetParameter => "SET_PARAMETER",
            Method::Other(s) => s,
        }
    }
}

/// One parsed request (its body, if any, is skipped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// As sent: usually absolute (`rtsp://host:8554/stream/trackID=0`).
    pub uri: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `CSeq`: `Ok(None)` when absent, an error when not a number.
    pub fn cseq(&self) -> Result<Option<u32>, RtspError> {
        match self.header("CSeq") {
            None => Ok(None),
            Some(v) => {
                v.trim().parse().map(Some).map_err(|_| {
                    RtspError::BadRequest(format!("CSeq '{}' is not a number", clip(v)))
                })
            }
        }
    }

    /// The URI's path (`/stream/trackID=0`), without scheme, authority or query.
    pub fn path(&self) -> &str {
        uri_path(&self.uri)
    }

    /// The URI's query (`token=…`), if any.
    pub fn query(&self) -> Option<&str> {
        self.uri.split_once('?').map(|(_, q)| q)
    }
}

/// The path of an RTSP URI (absolute or `/`-relative), without the query.
pub fn uri_path(uri: &str) -> &str {
    let no_query = uri.split(['?', '#']).next().unwrap_or("");
    let rest = match no_query.find("://") {
        Some(i) => {
            let after = &no_query[i + 3..];
            match after.find('/') {
                Some(j) => &after[j..],
                None => "/",
            }
        }
        None => no_query,
    };
    if rest.is_empty() {
        "/"
    } else {
        rest
    }
}

/// What arrived on the control connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    Request(Request),
    /// An interleaved binary block (`$`, channel, length): the client's RTCP
    /// receiver reports over TCP. Its payload is consumed and not parsed.
    Interleaved {
        channel: u8,
        len: usize,
    },
}

/// Parses the next message at the start of `buf`. `Ok(None)`: incomplete,
/// read more. `Ok(Some((input, n)))`: `n` bytes consumed. An error means
/// the stream cannot be resynchronised: answer it and close.
pub fn parse(buf: &[u8]) -> Result<Option<(Input, usize)>, RtspError> {
    if buf.first() == Some(&b'$') {
        if buf.len() < 4 {
            return Ok(None);
        }
        let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        if buf.len() < 4 + len {
            return Ok(None);
        }
        return Ok(Some((
            Input::Interleaved {
                channel: buf[1],
                len,
            },
            4 + len,
        )));
    }
    let Some(head_len) = find_head_end(buf) else {
        if buf.len() > MAX_HEAD {
            return Err(RtspError::TooLarge(format!(
                "request head over {MAX_HEAD} bytes"
            )));
        }
        return Ok(None);
    };
    if head_len > MAX_HEAD {
        return Err(RtspError::TooLarge(format!(
            "request head over {MAX_HEAD} bytes"
        )));
    }
    let head = std::str::from_utf8(&buf[..head_len])
        .map_err(|_| RtspError::BadRequest("request is not valid UTF-8".into()))?;
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines.next().unwrap_or("");
    let mut parts = first.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(RtspError::BadRequest(format!(
            "bad request line '{}'",
            clip(first)
        )));
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
        return Err(RtspError::BadRequest(format!(
            "bad method '{}'",
            clip(method)
        )));
    }
    if uri.is_empty() || uri.bytes().any(|b| b.is_ascii_control()) {
        return Err(RtspError::BadRequest("bad request URI".into()));
    }
    if version != "RTSP/1.0" {
        return Err(RtspError::Version(clip(version)));
    }
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        if headers.len() == MAX_HEADERS {
            return Err(RtspError::TooLarge(format!(
                "more than {MAX_HEADERS} header lines"
            )));
        }
        if line.starts_with([' ', '\t']) {
            return Err(RtspError::BadRequest(
                "folded header lines are not supported".into(),
            ));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(RtspError::BadRequest(format!(
                "bad header line '{}'",
                clip(line)
            )));
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(RtspError::BadRequest(format!(
                "bad header name '{}'",
                clip(name)
            )));
        }
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    let req = Request {
        method: Method::parse(method),
        uri: uri.to_owned(),
        headers,
    };
    let body = match req.header("Content-Length") {
        None => 0,
        Some(v) => v
            .trim()
            .parse::<usize>()
            .map_err(|_| RtspError::BadRequest("bad Content-Length".into()))?,
    };
    if body > MAX_BODY {
        return Err(RtspError::BodyTooLarge(body));
    }
    if buf.len() < head_len + body {
        return Ok(None);
    }
    Ok(Some((Input::Request(req), head_len + body)))
}

/// Length of the head including its blank line (CRLF or bare LF).
fn find_head_end(buf: &[u8]) -> Option<usize> {
    let limit = buf.len().min(MAX_HEAD + 4);
    let b = &buf[..limit];
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\n' {
            if b.get(i + 1) == Some(&b'\n') {
                return Some(i + 2);
            }
            if b.get(i + 1) == Some(&b'\r') && b.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

/// For messages: printable, bounded.
pub(crate) fn clip(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(80).collect()
}

/// A response to encode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    /// (content type, body)
    pub body: Option<(&'static str, String)>,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// An error with a one-line explanation as its text body.
    pub fn error(status: u16, why: &str) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Some(("text/plain", format!("{}\r\n", clip(why)))),
        }
    }

    /// The value of a header set on this response.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn encode(&self, cseq: Option<u32>) -> Vec<u8> {
        let mut out = format!("RTSP/1.0 {} {}\r\n", self.status, reason(self.status));
        if let Some(c) = cseq {
            out.push_str(&format!("CSeq: {c}\r\n"));
        }
        out.push_str("Server: pinhole\r\n");
        for (k, v) in &self.headers {
            out.push_str(k);
            out.push_str(": ");
            out.push_str(v);
            out.push_str("\r\n");
        }
        match &self.body {
            Some((ct, body)) => {
                out.push_str(&format!(
                    "Content-Type: {ct}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                ));
            }
            None => out.push_str("\r\n"),
        }
        out.into_bytes()
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        413 => "Request Entity Too Large",
        429 => "Too Many Requests",
        453 => "Not Enough Bandwidth",
        454 => "Session Not Found",
        455 => "Method Not Valid in This State",
        459 => "Aggregate Operation Not Allowed",
        461 => "Unsupported Transport",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "RTSP Version not supported",
        551 => "Option not supported",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &str) -> (Request, usize) {
        match parse(s.as_bytes()) {
            Ok(Some((Input::Request(r), n))) => (r, n),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_ffmpeg_describe() {
        let s = "DESCRIBE rtsp://127.0.0.1:8554/stream?token=abc RTSP/1.0\r\nAccept: application/sdp\r\nCSeq: 2\r\nUser-Agent: Lavf61.7.100\r\n\r\nnext";
        let (r, n) = req(s);
        assert_eq!(n, s.len() - 4);
        assert_eq!(r.method, Method::Describe);
        assert_eq!(r.cseq().unwrap(), Some(2));
        assert_eq!(r.path(), "/stream");
        assert_eq!(r.query(), Some("token=abc"));
        assert_eq!(r.header("accept"), Some("application/sdp"));
    }

    #[test]
    fn waits_for_the_rest() {
        assert_eq!(
            parse(b"OPTIONS rtsp://h/ RTSP/1.0\r\nCSeq: 1\r\n").unwrap(),
            None
        );
        assert_eq!(parse(b"$\x00\x00").unwrap(), None);
        assert_eq!(parse(b"$\x01\x00\x04abc").unwrap(), None);
        let body = "SET_PARAMETER rtsp://h/ RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 5\r\n\r\nab";
        assert_eq!(parse(body.as_bytes()).unwrap(), None);
    }

    #[test]
    fn interleaved_blocks_are_skipped_whole() {
        assert_eq!(
            parse(b"$\x01\x00\x03abcOPTIONS").unwrap(),
            Some((Input::Interleaved { channel: 1, len: 3 }, 7))
        );
    }

    #[test]
    fn bare_lf_and_body() {
        let (r, n) =
            req("GET_PARAMETER rtsp://h/stream RTSP/1.0\nCSeq: 9\nContent-Length: 2\n\nabX");
        assert_eq!(r.method, Method::GetParameter);
        assert_eq!(
            n,
            "GET_PARAMETER rtsp://h/stream RTSP/1.0\nCSeq: 9\nContent-Length: 2\n\nab".len()
        );
    }

    #[test]
    fn limits_and_garbage() {
        let mut big = b"OPTIONS rtsp://h/ RTSP/1.0\r\nX: ".to_vec();
        big.resize(MAX_HEAD + 10, b'a');
        assert!(matches!(parse(&big), Err(RtspError::TooLarge(_))));
        let many: String = (0..40).map(|i| format!("X{i}: y\r\n")).collect();
        let s = format!("OPTIONS rtsp://h/ RTSP/1.0\r\n{many}\r\n");
        assert!(matches!(parse(s.as_bytes()), Err(RtspError::TooLarge(_))));
        for bad in [
            "GET / HTTP/1.1\r\n\r\n",
            "hello\r\n\r\n",
            "OPTIONS rtsp://h/ RTSP/1.0 x\r\n\r\n",
            "OPTIONS rtsp://h/ RTSP/1.0\r\nno colon\r\n\r\n",
            "OPTIONS rtsp://h/ RTSP/1.0\r\n folded: x\r\n\r\n",
            "OPTIONS rtsp://h/ RTSP/1.0\r\nContent-Length: x\r\n\r\n",
            "\u{1}\u{2}\r\n\r\n",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(matches!(
            parse(b"OPTIONS rtsp://h/ RTSP/1.0\r\nContent-Length: 99999\r\n\r\n"),
            Err(RtspError::BodyTooLarge(99999))
        ));
        let (r, _) = req("OPTIONS * RTSP/1.0\r\nCSeq: x1\r\n\r\n");
        assert!(r.cseq().is_err());
    }

    #[test]
    fn uri_paths() {
        assert_eq!(uri_path("rtsp://a:1/stream/trackID=0"), "/stream/trackID=0");
        assert_eq!(uri_path("rtsp://u:p@a:1"), "/");
        assert_eq!(uri_path("rtsp://a/stream?x=1"), "/stream");
        assert_eq!(uri_path("*"), "*");
    }

    #[test]
    fn encodes_with_cseq_and_body() {
        let r = Response::new(200)
            .header("Public", "OPTIONS")
            .encode(Some(3));
        assert_eq!(
            String::from_utf8(r).unwrap(),
            "RTSP/1.0 200 OK\r\nCSeq: 3\r\nServer: pinhole\r\nPublic: OPTIONS\r\n\r\n"
        );
        let e = String::from_utf8(Response::error(454, "no such session").encode(None)).unwrap();
        assert!(e.starts_with("RTSP/1.0 454 Session Not Found\r\n"));
        assert!(e.ends_with("Content-Length: 17\r\n\r\nno such session\r\n"));
    }
}
