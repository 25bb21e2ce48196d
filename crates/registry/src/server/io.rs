//! The client's socket, watched: reads and blocked writes are reported to the
//! connection's [`Activity`], and the bare answers hyper writes on its own when it cannot
//! parse a request (`400`, `414`, `431` with an empty body) are replaced by the spec's
//! JSON error body.
//!
//! hyper answers a request it cannot parse (a bad `Content-Length`, an unknown
//! `Transfer-Encoding`, a NUL byte, too many headers) before any handler runs, with no
//! hook to shape the answer; the answer is the only thing it writes on that connection
//! before closing it, so it is recognised here by its exact form: a status line and only
//! `content-length: 0`, `date` and `connection` headers. Every answer of the app has a
//! `content-type` or a body, so none is ever mistaken for one.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::activity::Activity;
use crate::error::{error_body, ErrorCode};

pub(crate) struct WatchedIo<T> {
    inner: T,
    activity: Arc<Activity>,
    /// A replacement answer still being written: bytes and how many went out.
    pending: Option<(Vec<u8>, usize)>,
}

impl<T> WatchedIo<T> {
    pub(crate) fn new(inner: T, activity: Arc<Activity>) -> Self {
        WatchedIo { inner, activity, pending: None }
    }
}

/// The JSON answer for one of hyper's own bare error answers, if `head` is one.
pub(crate) fn replacement(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let (head, rest) = text.split_once("\r\n\r\n")?;
    if !rest.is_empty() {
        return None;
    }
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status: u16 = status_line.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
    let mut empty = false;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" if value.trim() == "0" => empty = true,
            "date" | "connection" => {}
            _ => return None,
        }
    }
    let message = match status {
        400 => {
            "the request is not valid HTTP/1.1: check its Content-Length (one, a number), its \
             Transfer-Encoding (only `chunked`) and that header names and values hold no \
             control characters"
        }
        414 => "the request's URI is too long",
        431 => "the request has too many headers, or headers that are too large (http.max_headers)",
        _ => return None,
    };
    if !empty {
        return None;
    }
    let body = error_body(ErrorCode::Unsupported, message, None);
    let reason = match status {
        400 => "Bad Request",
        414 => "URI Too Long",
        _ => "Request Header Fields Too Large",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    Some(out)
}

impl<T: AsyncWrite + Unpin> WatchedIo<T> {
    /// Writes what is left of a replacement answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.pending {
            if *written == bytes.len() {
                self.pending = None;
                break;
            }
            let n = match Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]) {
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    self.activity.write_blocked();
                    return Poll::Pending;
                }
            };
            self.activity.wrote();
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }

    fn track(&self, polled: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        match &polled {
            Poll::Pending => self.activity.write_blocked(),
            Poll::Ready(Ok(_)) => self.activity.wrote(),
            Poll::Ready(Err(_)) => {}
        }
        polled
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WatchedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WatchedIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_pending(cx))?;
        if buf.starts_with(b"HTTP/1.1 4") {
            if let Some(answer) = replacement(buf) {
                self.pending = Some((answer, 0));
                let _ = self.poll_pending(cx)?;
                return Poll::Ready(Ok(buf.len()));
            }
        }
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.track(polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_pending(cx))?;
        let mut nonempty = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(first), None) = (nonempty.next(), nonempty.next()) {
            if first.starts_with(b"HTTP/1.1 4") {
                if let Some(answer) = replacement(first) {
                    self.pending = Some((answer, 0));
                    let _ = self.poll_pending(cx)?;
                    return Poll::Ready(Ok(first.len()));
                }
            }
        }
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.track(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::replacement;

    #[test]
    fn only_hypers_bare_answers_are_replaced() {
        let date = "date: Sun, 29 Nov 2026 10:03:12 GMT";
        let cases: Vec<(String, Option<u16>)> = vec![
            (format!("HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n{date}\r\n\r\n"), Some(400)),
            (format!("HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n{date}\r\n\r\n"), Some(431)),
            (format!("HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n{date}\r\n\r\n"), Some(414)),
            // The app's answers: a content type, a body, another status, or more to come.
            (format!("HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n{date}\r\n\r\n"), None),
            (format!("HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n{date}\r\n\r\n"), None),
            (format!("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n{date}\r\n\r\n"), None),
            (format!("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n{date}\r\n\r\n{{}}"), None),
            (format!("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n{date}\r\n"), None),
            (format!("HTTP/1.1 400 Bad Request\r\n{date}\r\n\r\n"), None),
        ];
        for (head, want) in cases {
            let got = replacement(head.as_bytes());
            match want {
                None => assert!(got.is_none(), "{head:?}"),
                Some(status) => {
                    let got = String::from_utf8(got.unwrap_or_else(|| panic!("{head:?}"))).unwrap();
                    assert!(got.starts_with(&format!("HTTP/1.1 {status} ")), "{got}");
                    let (_, body) = got.split_once("\r\n\r\n").unwrap();
                    let json: serde_json::Value = serde_json::from_str(body).unwrap();
                    assert!(json["errors"][0]["message"].as_str().unwrap().len() > 10);
                    assert!(got.contains(&format!("content-length: {}", body.len())));
                }
            }
        }
    }
}
