//! Plain-HTTP/1.1 connections to one server, each driven by the task that uses it: MCP upstreams' tool calls and
//! language-model calls to `http://` URLs. reqwest (and hyper's pooled client under it) runs every connection as
//! a task of its own, so a call crosses tasks twice, and at low load that often means waking another thread;
//! here the calling task polls the connection itself while it waits for the answer, and an idle connection
//! waits in a list until the next call takes it.
//!
//! [`Poster`] is what callers use: driven connections where the URL allows them ([`Http1Pool::for_url`]), else
//! the caller's reqwest client (TLS, credentials in the URL, a proxy), with one kind of [`Reply`] either way.

use std::{
    future::poll_fn,
    io,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt, stream::BoxStream};
use http_body_util::Full;
use hyper::{
    Request, StatusCode,
    body::{Body, Incoming},
    client::conn::http1::{self, Connection, SendRequest},
    header::{HOST, HeaderMap, HeaderValue},
};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::net::TcpStream;

/// How many idle connections are kept; more are closed when their call ends.
const MAX_IDLE: usize = 64;

/// The connections to one `http://host:port`.
pub struct Http1Pool {
    /// `host:port`, to connect to.
    address: String,
    /// The Host header: the URL's authority.
    host: HeaderValue,
    /// The path and query every call is posted to.
    path: String,
    idle: Mutex<Vec<Conn>>,
}

struct Conn {
    send: SendRequest<Full<Bytes>>,
    io: Connection<TokioIo<TcpStream>, Full<Bytes>>,
    /// The connection's future has finished (closed, or failed); it is not polled again.
    io_ended: bool,
}

impl Conn {
    /// Polls the connection (writing the request, reading the answer into the body's channel); whether it has
    /// ended, after which nothing new arrives. Callers poll what they wait for right after.
    fn poll_io(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.io_ended {
            self.io_ended = Pin::new(&mut self.io).poll(cx).is_ready();
        }
        self.io_ended
    }
}

/// Where posts to one URL go.
pub enum Poster {
    Driven(Http1Pool),
    /// The caller's client, with its settings (redirects, timeouts), and the URL.
    Reqwest(reqwest::Client, String),
}

impl Poster {
    /// Driven connections if `url` allows them, else `fallback`.
    pub fn new(url: &str, fallback: reqwest::Client) -> Poster {
        match Http1Pool::for_url(url) {
            Some(pool) => Poster::Driven(pool),
            None => Poster::Reqwest(fallback, url.to_string()),
        }
    }

    /// Posts `body` with `headers`; the answer's head, its body still to be read. reqwest's errors leave the URL
    /// out (a configured URL may carry a key in its query).
    pub async fn post(&self, headers: HeaderMap, body: Bytes) -> io::Result<Reply<'_>> {
        match self {
            Poster::Driven(pool) => pool.post(headers, body).await,
            // Boxed: reqwest's future is large, and inline it would make every driven post's future as large.
            Poster::Reqwest(client, url) => {
                Box::pin(post_reqwest(client, url, headers, body)).await
            }
        }
    }
}

async fn post_reqwest<'p>(
    client: &'p reqwest::Client,
    url: &str,
    headers: HeaderMap,
    body: Bytes,
) -> io::Result<Reply<'p>> {
    let response = client
        .post(url)
        .headers(headers)
        .body(body)
        .send()
        .await
        .map_err(|e| io::Error::other(e.without_url()))?;
    Ok(Reply {
        status: response.status(),
        headers: response.headers().clone(),
        body: response
            .bytes_stream()
            .map_err(|e| io::Error::other(e.without_url()))
            .boxed(),
    })
}

/// A server's answer: its status, its headers, and its body, read as the caller polls it.
pub struct Reply<'p> {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: BoxStream<'p, io::Result<Bytes>>,
}

impl Reply<'_> {
    /// The whole body.
    pub async fn bytes(mut self) -> io::Result<Vec<u8>> {
        let mut all = Vec::new();
        while let Some(piece) = self.body.next().await {
            all.extend_from_slice(&piece?);
        }
        Ok(all)
    }
}

/// The body of an answer; polling it drives its connection. Once read to its end, the connection goes back to
/// the pool; dropped before that (an SSE stream left open after the answer's event), it is closed.
struct DrivenBody<'p> {
    pool: &'p Http1Pool,
    conn: Option<Conn>,
    body: Incoming,
    read_to_end: bool,
}

impl Stream for DrivenBody<'_> {
    type Item = Result<Bytes, io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let io_ended = conn.poll_io(cx);
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => return Poll::Ready(Some(Ok(data))),
                    Err(_trailers) => continue,
                },
                Poll::Ready(Some(Err(e))) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(io::Error::other(e))));
                }
                Poll::Ready(None) => {
                    this.read_to_end = true;
                    return Poll::Ready(None);
                }
                Poll::Pending if io_ended => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(io::Error::other(
                        "the connection ended in the middle of the answer",
                    ))));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for DrivenBody<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && self.read_to_end
            && !conn.io_ended
        {
            let mut idle = self.pool.idle.lock();
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
    }
}

impl Http1Pool {
    /// The pool for `url` if calls to it may go on driven connections: plain `http://` without credentials, and
    /// no proxy named in the environment (reqwest honours one; these connections would not).
    pub fn for_url(url: &str) -> Option<Http1Pool> {
        let proxied = ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]
            .iter()
            .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
        if proxied {
            return None;
        }
        Http1Pool::new(&url.parse().ok()?).ok()
    }

    /// The pool for `url`, which must be `http://` with a host and no credentials.
    pub fn new(url: &hyper::Uri) -> anyhow::Result<Http1Pool> {
        anyhow::ensure!(url.scheme_str() == Some("http"), "not an http:// URL");
        let authority = url
            .authority()
            .ok_or_else(|| anyhow::anyhow!("the URL has no host"))?;
        anyhow::ensure!(
            !authority.as_str().contains('@'),
            "the URL carries credentials"
        );
        let port = authority.port_u16().unwrap_or(80);
        Ok(Http1Pool {
            address: format!("{}:{port}", authority.host()),
            host: HeaderValue::from_str(authority.as_str())?,
            path: url
                .path_and_query()
                .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Posts `body` with `headers`; the answer's body is read through the returned [`Reply`].
    pub async fn post(&self, mut headers: HeaderMap, body: Bytes) -> io::Result<Reply<'_>> {
        let mut request = Request::post(&self.path)
            .body(Full::new(body))
            .map_err(io::Error::other)?;
        headers.insert(HOST, self.host.clone());
        *request.headers_mut() = headers;
        let mut conn = self.ready_conn().await?;
        let mut response = Box::pin(conn.send.send_request(request));
        let response = poll_fn(|cx| {
            let io_ended = conn.poll_io(cx);
            match response.as_mut().poll(cx) {
                Poll::Ready(r) => Poll::Ready(r.map_err(io::Error::other)),
                Poll::Pending if io_ended => Poll::Ready(Err(io::Error::other(
                    "the connection ended before the answer",
                ))),
                Poll::Pending => Poll::Pending,
            }
        })
        .await?;
        let (parts, body) = response.into_parts();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body: DrivenBody {
                pool: self,
                conn: Some(conn),
                read_to_end: body.is_end_stream(),
                body,
            }
            .boxed(),
        })
    }

    /// An idle connection that can take a request, or a new one.
    async fn ready_conn(&self) -> io::Result<Conn> {
        loop {
            let Some(mut conn) = self.idle.lock().pop() else {
                break;
            };
            // An idle connection the server has closed ends here, before anything is sent on it.
            let ready = poll_fn(|cx| {
                let io_ended = conn.poll_io(cx);
                match conn.send.poll_ready(cx) {
                    Poll::Ready(r) => Poll::Ready(r.is_ok()),
                    Poll::Pending if io_ended => Poll::Ready(false),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await;
            if ready {
                return Ok(conn);
            }
        }
        let stream = TcpStream::connect(&self.address).await?;
        stream.set_nodelay(true)?;
        let (send, io) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(io::Error::other)?;
        Ok(Conn {
            send,
            io,
            io_ended: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use futures::stream;
    use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
    use hyper::{Response, body::Frame};

    use super::{
        testing::{full, server},
        *,
    };

    /// Posts `calls` times to a server answering with `answer()`, reading each answer whole; returns the answers'
    /// statuses and texts and how many connections the server accepted.
    async fn calls_and_connections(
        answer: fn() -> Response<BoxBody<Bytes, io::Error>>,
        calls: usize,
    ) -> (Vec<(StatusCode, String)>, usize) {
        let (url, accepted) = server("/mcp", answer).await;
        let pool = Http1Pool::new(&url.parse().unwrap()).unwrap();
        let mut answers = Vec::new();
        for _ in 0..calls {
            let mut answer = pool
                .post(HeaderMap::new(), Bytes::from_static(b"{}"))
                .await
                .unwrap();
            let mut text = String::new();
            while let Some(chunk) = answer.body.next().await {
                text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
            }
            answers.push((answer.status, text));
        }
        (answers, accepted.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn a_connection_read_to_its_end_is_used_again() {
        let (answers, connections) =
            calls_and_connections(|| Response::new(full("one answer")), 3).await;
        assert_eq!(answers, vec![(StatusCode::OK, "one answer".to_string()); 3]);
        assert_eq!(connections, 1);
    }

    #[tokio::test]
    async fn a_connection_the_server_closes_is_not_used_again() {
        let close = || {
            Response::builder()
                .header("connection", "close")
                .body(full("last"))
                .unwrap()
        };
        let (answers, connections) = calls_and_connections(close, 2).await;
        assert_eq!(answers, vec![(StatusCode::OK, "last".to_string()); 2]);
        assert_eq!(connections, 2);
    }

    #[tokio::test]
    async fn a_stream_left_open_closes_its_connection() {
        // One event, then the stream stays open, as an SSE answer may.
        let (url, accepted) = server("/mcp", || {
            let events = stream::iter([Ok(Frame::data(Bytes::from("data: 1\n\n")))])
                .chain(stream::pending());
            Response::new(BodyExt::boxed(StreamBody::new(events)))
        })
        .await;
        let pool = Http1Pool::new(&url.parse().unwrap()).unwrap();
        for _ in 0..2 {
            let mut answer = pool
                .post(HeaderMap::new(), Bytes::from_static(b"{}"))
                .await
                .unwrap();
            assert_eq!(answer.body.next().await.unwrap().unwrap(), "data: 1\n\n");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert!(pool.idle.lock().is_empty());
    }

    #[test]
    fn only_a_plain_url_without_credentials_gets_a_pool() {
        let pool = |url: &str| Http1Pool::new(&url.parse().unwrap());
        let plain = pool("http://127.0.0.1:8931/mcp?x=1").unwrap();
        assert_eq!(
            (plain.address.as_str(), plain.path.as_str()),
            ("127.0.0.1:8931", "/mcp?x=1")
        );
        assert_eq!(
            pool("http://example.test").unwrap().address,
            "example.test:80"
        );
        assert!(pool("https://example.test/mcp").is_err());
        assert!(pool("http://user:secret@example.test/mcp").is_err());
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        drop(listener);
        let pool = Http1Pool::new(&url.parse().unwrap()).unwrap();
        assert!(pool.post(HeaderMap::new(), Bytes::new()).await.is_err());
    }
}

/// A counting test server, for this module's tests and its callers'.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use http_body_util::{BodyExt, combinators::BoxBody};
    use hyper::{Response, service::service_fn};

    use super::*;

    /// A server on a free port answering every request with `answer()`: its URL (`http://127.0.0.1:port{path}`)
    /// and the count of connections it accepted.
    pub(crate) async fn server(
        path: &str,
        answer: fn() -> Response<BoxBody<Bytes, io::Error>>,
    ) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}{path}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(
                    TokioIo::new(stream),
                    service_fn(move |_| async move { Ok::<_, io::Error>(answer()) }),
                ));
            }
        });
        (url, accepted)
    }

    pub(crate) fn full(text: &'static str) -> BoxBody<Bytes, io::Error> {
        Full::new(Bytes::from(text)).map_err(|e| match e {}).boxed()
    }
}
