use ascii::AsciiString;

use std::io::Error as IoError;
use std::io::Result as IoResult;
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::common::{HTTPVersion, Method};
use crate::connection::Connection;
use crate::util::refined_tcp_stream::{ReadMode, SharedReadMode};
use crate::util::RefinedTcpStream;
use crate::{Limits, Refusals};
use crate::util::{SequentialReader, SequentialReaderBuilder, SequentialWriterBuilder};
use crate::Request;

/// Longest request or header line accepted (audit-export fix).
const MAX_LINE: usize = 16 * 1024;
/// Most header lines accepted in one request (audit-export fix).
const MAX_HEADERS: usize = 256;

/// A ClientConnection is an object that will store a socket to a client
/// and return Request objects.
pub struct ClientConnection {
    // address of the client
    remote_addr: IoResult<Option<SocketAddr>>,

    // sequence of Readers to the stream, so that the data is not read in
    //  the wrong order
    source: SequentialReaderBuilder<BufReader<RefinedTcpStream>>,

    // sequence of Writers to the stream, to avoid writing response #2 before
    //  response #1
    sink: SequentialWriterBuilder<BufWriter<RefinedTcpStream>>,

    // Reader to read the next header from
    next_header_source: SequentialReader<BufReader<RefinedTcpStream>>,

    // set to true if we know that the previous request is the last one
    no_more_requests: bool,

    // true if the connection goes through SSL
    secure: bool,

    // audit-export additions: the bounds, the read timeout policy of the
    // read half, the process-wide count of buffered body bytes, refusals.
    limits: Limits,
    read_mode: SharedReadMode,
    buffered: Arc<AtomicUsize>,
    refusals: Arc<Refusals>,
}

/// Error that can happen when reading a request.
#[derive(Debug)]
enum ReadError {
    WrongRequestLine,
    WrongHeader(HTTPVersion),
    /// the client sent an unrecognized `Expect` header
    ExpectationFailed(HTTPVersion),
    ReadIoError(IoError),
    /// audit-export additions: a request line over MAX_LINE (414), a
    /// header line over MAX_LINE or too many of them (431), a keep-alive
    /// connection idle past the head timeout before sending a byte (closed
    /// without an answer), a head or body not received in time (408), too
    /// many body bytes buffered server-wide (503).
    UriTooLong,
    HeadersTooLarge,
    Idle,
    Timeout,
    Busy,
}

/// audit-export addition: the security headers of every answer (the
/// application adds its own to the answers it makes; these are for the
/// errors made here, which carry no HTML, hence the strictest policy).
const SECURITY_HEADERS: [&str; 4] = [
    "Content-Security-Policy: default-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options: nosniff",
    "Referrer-Policy: no-referrer",
    "X-Frame-Options: DENY",
];

/// audit-export addition: a JSON error answer, the application's error
/// shape, closing the connection.
pub(crate) fn error_response(
    status: u16,
    code: &str,
    message: &str,
) -> crate::Response<std::io::Cursor<Vec<u8>>> {
    let body = format!(r#"{{"error":{{"code":"{code}","message":"{message}"}}}}"#);
    let mut response = crate::Response::from_data(body.into_bytes())
        .with_status_code(status)
        .with_header(
            "Content-Type: application/json"
                .parse::<crate::Header>()
                .expect("valid header"),
        )
        .with_header("Connection: close".parse::<crate::Header>().expect("valid header"));
    for h in SECURITY_HEADERS {
        response.add_header(h.parse::<crate::Header>().expect("valid header"));
    }
    response
}

/// audit-export addition: answers a connection over the limit with `503`
/// and closes it, without blocking the accept loop.
pub(crate) fn refuse_busy(mut sock: Connection) {
    let body = r#"{"error":{"code":"too_many_connections","message":"the server has too many open connections; retry shortly"}}"#;
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\n{}\r\nContent-Length: {}\r\n\r\n",
        SECURITY_HEADERS.join("\r\n"),
        body.len()
    );
    // A fresh socket's send buffer takes this at once; never wait on it.
    let _ = sock.set_nonblocking(true);
    let _ = sock.write_all(head.as_bytes());
    let _ = sock.write_all(body.as_bytes());
    let _ = sock.shutdown(std::net::Shutdown::Write);
    // Read what the client already sent, so closing does not reset the
    // connection before it reads the answer.
    let mut sink = [0u8; 4096];
    while matches!(sock.read(&mut sink), Ok(n) if n > 0) {}
}

impl ClientConnection {
    /// Creates a new `ClientConnection` that takes ownership of the `TcpStream`.
    pub fn new(
        write_socket: RefinedTcpStream,
        mut read_socket: RefinedTcpStream,
        limits: Limits,
        buffered: Arc<AtomicUsize>,
        refusals: Arc<Refusals>,
    ) -> ClientConnection {
        let remote_addr = read_socket.peer_addr();
        let secure = read_socket.secure();
        let read_mode: SharedReadMode = Arc::new(Mutex::new(ReadMode::Unbounded));
        read_socket.set_read_mode(read_mode.clone());

        let mut source = SequentialReaderBuilder::new(BufReader::with_capacity(1024, read_socket));
        let first_header = source.next().unwrap();

        ClientConnection {
            source,
            sink: SequentialWriterBuilder::new(BufWriter::with_capacity(1024, write_socket)),
            remote_addr,
            next_header_source: first_header,
            no_more_requests: false,
            secure,
            limits,
            read_mode,
            buffered,
            refusals,
        }
    }

    fn set_read_mode(&self, mode: ReadMode) {
        *self.read_mode.lock().unwrap_or_else(|e| e.into_inner()) = mode;
    }

    /// true if the connection is HTTPS
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Reads the next line from self.next_header_source (at most MAX_LINE bytes).
    ///
    /// Reads until `CRLF` is reached. The next read will start
    ///  at the first byte of the new line.
    fn read_next_line(&mut self) -> IoResult<AsciiString> {
        self.read_line(false)
    }

    /// `first`: this is a request line, so a timeout before its first byte
    /// is an idle connection, not a slow request (audit-export addition).
    fn read_line(&mut self, first: bool) -> IoResult<AsciiString> {
        let mut buf = Vec::new();
        let mut prev_byte_was_cr = false;

        loop {
            let byte = self.next_header_source.by_ref().bytes().next();

            let byte = match byte {
                Some(Err(e)) if e.kind() == ErrorKind::TimedOut && buf.is_empty() && first => {
                    return Err(IoError::new(ErrorKind::TimedOut, "idle"))
                }
                Some(b) => b?,
                None => return Err(IoError::new(ErrorKind::ConnectionAborted, "Unexpected EOF")),
            };

            if byte == b'\n' && prev_byte_was_cr {
                buf.pop(); // removing the '\r'
                return AsciiString::from_ascii(buf)
                    .map_err(|_| IoError::new(ErrorKind::InvalidInput, "Header is not in ASCII"));
            }

            prev_byte_was_cr = byte == b'\r';

            // audit-export fix: a line without CRLF grew without bound.
            if buf.len() >= MAX_LINE {
                return Err(IoError::new(ErrorKind::InvalidInput, "Header line too long"));
            }
            buf.push(byte);
        }
    }

    /// Reads a request from the stream.
    /// Blocks until the header has been read.
    fn read(&mut self) -> Result<Request, ReadError> {
        // audit-export addition: the whole head within the head timeout.
        self.set_read_mode(ReadMode::Until(Instant::now() + self.limits.head_timeout));
        let (method, path, version, headers) = {
            // reading the request line
            let (method, path, version) = {
                let line = self.read_line(true).map_err(|e| match e.kind() {
                    ErrorKind::InvalidInput if e.to_string().contains("too long") => {
                        ReadError::UriTooLong
                    }
                    // Nothing of a new request arrived: an idle keep-alive
                    // connection, closed quietly.
                    ErrorKind::TimedOut if e.to_string().contains("idle") => ReadError::Idle,
                    ErrorKind::TimedOut => ReadError::Timeout,
                    _ => ReadError::ReadIoError(e),
                })?;

                parse_request_line(
                    line.as_str().trim(), // TODO: remove this conversion
                )?
            };

            // getting all headers
            let headers = {
                let mut headers = Vec::new();
                loop {
                    let line = self.read_next_line().map_err(|e| match e.kind() {
                        ErrorKind::InvalidInput if e.to_string().contains("too long") => {
                            ReadError::HeadersTooLarge
                        }
                        ErrorKind::TimedOut => ReadError::Timeout,
                        _ => ReadError::ReadIoError(e),
                    })?;

                    if line.is_empty() {
                        break;
                    };
                    // audit-export fix: the number of headers was unbounded.
                    if headers.len() >= MAX_HEADERS {
                        return Err(ReadError::HeadersTooLarge);
                    }
                    headers.push(match FromStr::from_str(line.as_str().trim()) {
                        // TODO: remove this conversion
                        Ok(h) => h,
                        _ => return Err(ReadError::WrongHeader(version)),
                    });
                }

                headers
            };

            (method, path, version, headers)
        };

        // building the writer for the request
        let writer = self.sink.next().unwrap();
        // audit-export addition: a body waits at most the idle timeout per read.
        self.set_read_mode(ReadMode::Idle(self.limits.body_idle_timeout));

        // follow-up for next potential request
        let mut data_source = self.source.next().unwrap();
        std::mem::swap(&mut self.next_header_source, &mut data_source);

        // building the next reader
        let request = crate::request::new_request(
            self.secure,
            method,
            path,
            version.clone(),
            headers,
            *self.remote_addr.as_ref().unwrap(),
            data_source,
            writer,
        )
        .map_err(|e| {
            use crate::request;
            match e {
                request::RequestCreationError::CreationIoError(e)
                    if e.kind() == ErrorKind::TimedOut =>
                {
                    ReadError::Timeout
                }
                request::RequestCreationError::CreationIoError(e) => ReadError::ReadIoError(e),
                request::RequestCreationError::ExpectationFailed => {
                    ReadError::ExpectationFailed(version)
                }
            }
        })?;
        let mut request = request;

        // audit-export addition: the body is read here, by the connection's
        // own thread, before any request thread sees the request.
        use crate::request::Buffered;
        match request.buffer_body(
            self.limits.max_body_bytes,
            &self.buffered,
            self.limits.max_buffered_bytes,
        ) {
            Ok(Buffered::Complete) => {}
            // Left unread (the application answers 413): nothing after it
            // on this connection can be found.
            Ok(Buffered::TooLarge) => self.no_more_requests = true,
            Err(e) if e.kind() == ErrorKind::TimedOut => {
                // Stop at once: nothing of the rest is waited for.
                self.set_read_mode(ReadMode::Until(Instant::now()));
                drop(request.take_writer());
                return Err(ReadError::Timeout);
            }
            Err(e) if e.kind() == ErrorKind::OutOfMemory => {
                // Stop at once: nothing of the rest is waited for.
                self.set_read_mode(ReadMode::Until(Instant::now()));
                drop(request.take_writer());
                return Err(ReadError::Busy);
            }
            Err(e) => {
                // Stop at once: nothing of the rest is waited for.
                self.set_read_mode(ReadMode::Until(Instant::now()));
                drop(request.take_writer());
                return Err(ReadError::ReadIoError(e));
            }
        }
        self.set_read_mode(ReadMode::Unbounded);

        // return the request
        Ok(request)
    }
}

impl Iterator for ClientConnection {
    type Item = Request;

    /// Blocks until the next Request is available.
    /// Returns None when no new Requests will come from the client.
    fn next(&mut self) -> Option<Request> {
        use crate::{Response, StatusCode};

        // the client sent a "connection: close" header in this previous request
        //  or is using HTTP 1.0, meaning that no new request will come
        if self.no_more_requests {
            return None;
        }

        loop {
            // audit-export change: every refusal answers the application's
            // JSON error shape, then closes (where the next request would
            // start is unknown).
            let answer = |this: &mut Self, status: u16, code: &str, message: &str| {
                let writer = this.sink.next().unwrap();
                error_response(status, code, message)
                    .raw_print(writer, HTTPVersion(1, 1), &[], false, None)
                    .ok();
            };
            let rq = match self.read() {
                Err(ReadError::WrongRequestLine) => {
                    answer(self, 400, "bad_request", "malformed request line");
                    return None;
                }

                Err(ReadError::WrongHeader(_)) => {
                    answer(self, 400, "bad_request", "malformed header");
                    return None;
                }

                Err(ReadError::UriTooLong) => {
                    answer(self, 414, "uri_too_long", "the request line is longer than 16 KiB");
                    return None;
                }

                Err(ReadError::HeadersTooLarge) => {
                    answer(
                        self,
                        431,
                        "headers_too_large",
                        "a header line is longer than 16 KiB, or there are more than 256",
                    );
                    return None;
                }

                Err(ReadError::Idle) => return None,

                Err(ReadError::Timeout) => {
                    self.refusals.timeouts.fetch_add(1, Relaxed);
                    answer(self, 408, "request_timeout", "the request was not received in time");
                    return None;
                }

                Err(ReadError::Busy) => {
                    answer(self, 503, "busy", "too many request bodies in flight; retry shortly");
                    return None;
                }

                Err(ReadError::ReadIoError(ref err)) if err.kind() == ErrorKind::TimedOut => {
                    // request timeout
                    self.refusals.timeouts.fetch_add(1, Relaxed);
                    answer(self, 408, "request_timeout", "the request was not received in time");
                    return None; // closing the connection
                }

                Err(ReadError::ExpectationFailed(ver)) => {
                    let writer = self.sink.next().unwrap();
                    let response = Response::new_empty(StatusCode(417));
                    response.raw_print(writer, ver, &[], true, None).ok();
                    return None; // TODO: should be recoverable, but needs handling in case of body
                }

                Err(ReadError::ReadIoError(_)) => return None,

                Ok(rq) => rq,
            };

            // checking HTTP version
            if *rq.http_version() > (1, 1) {
                let writer = self.sink.next().unwrap();
                let response = Response::from_string(
                    "This server only supports HTTP versions 1.0 and 1.1".to_owned(),
                )
                .with_status_code(StatusCode(505));
                response
                    .raw_print(writer, HTTPVersion(1, 1), &[], false, None)
                    .ok();
                continue;
            }

            // updating the status of the connection
            let connection_header = rq
                .headers()
                .iter()
                .find(|h| h.field.equiv("Connection"))
                .map(|h| h.value.as_str());

            let lowercase = connection_header.map(|h| h.to_ascii_lowercase());

            match lowercase {
                Some(ref val) if val.contains("close") => self.no_more_requests = true,
                Some(ref val) if val.contains("upgrade") => self.no_more_requests = true,
                Some(ref val)
                    if !val.contains("keep-alive") && *rq.http_version() == HTTPVersion(1, 0) =>
                {
                    self.no_more_requests = true
                }
                None if *rq.http_version() == HTTPVersion(1, 0) => self.no_more_requests = true,
                _ => (),
            };

            // returning the request
            return Some(rq);
        }
    }
}

/// Parses a "HTTP/1.1" string.
fn parse_http_version(version: &str) -> Result<HTTPVersion, ReadError> {
    let (major, minor) = match version {
        "HTTP/0.9" => (0, 9),
        "HTTP/1.0" => (1, 0),
        "HTTP/1.1" => (1, 1),
        "HTTP/2.0" => (2, 0),
        "HTTP/3.0" => (3, 0),
        _ => return Err(ReadError::WrongRequestLine),
    };

    Ok(HTTPVersion(major, minor))
}

/// Parses the request line of the request.
/// eg. GET / HTTP/1.1
fn parse_request_line(line: &str) -> Result<(Method, String, HTTPVersion), ReadError> {
    let mut parts = line.split(' ');

    let method = parts.next().and_then(|w| w.parse().ok());
    let path = parts.next().map(ToOwned::to_owned);
    let version = parts.next().and_then(|w| parse_http_version(w).ok());

    method
        .and_then(|method| Some((method, path?, version?)))
        .ok_or(ReadError::WrongRequestLine)
}

#[cfg(test)]
mod test {
    #[test]
    fn test_parse_request_line() {
        let (method, path, ver) = super::parse_request_line("GET /hello HTTP/1.1").unwrap();

        assert!(method == crate::Method::Get);
        assert!(path == "/hello");
        assert!(ver == crate::common::HTTPVersion(1, 1));

        assert!(super::parse_request_line("GET /hello").is_err());
        assert!(super::parse_request_line("qsd qsd qsd").is_err());
    }
}
