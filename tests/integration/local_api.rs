//! Small HTTP APIs a test serves itself on `127.0.0.1:0`, for shapes of the mapping language
//! no simulator has (link-header paging, an OAuth 2.0 token endpoint), and their JSON answers.

use std::convert::Infallible;
use std::future::Future;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;

/// The `[users]` part of the mapping of a test-made API: users at `/users/{id}`, `login` as
/// `userName`, DELETE deletes. A string literal, for `concat!` with the rest of the mapping.
macro_rules! users_block {
    () => {
        r#"
[users]
legacy_id = "/id"

[users.calls]
get = { method = "GET", path = "/users/{legacy_id}" }
list = { method = "GET", path = "/users" }
create = { method = "POST", path = "/users", body = "mapped" }
update = { method = "PATCH", path = "/users/{legacy_id}", body = "changed" }
delete = { method = "DELETE", path = "/users/{legacy_id}" }

[users.lifecycle]
delete = "delete"

[[users.attributes]]
scim = "userName"
legacy = "login"
"#
    };
}
pub(crate) use users_block;

/// An answer of a local API.
pub(crate) type Reply = Response<Full<Bytes>>;

/// Serves HTTP/1 on a free loopback port until the test's runtime ends; `make` gets the base
/// URL (`http://127.0.0.1:PORT`) and gives the handler of every request. Returns the base URL.
pub(crate) async fn serve<H, F>(make: impl FnOnce(&str) -> H) -> String
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let handler = make(&base);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let answer = handler(req);
                    async move { Ok::<_, Infallible>(answer.await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    base
}

/// A JSON answer.
pub(crate) fn json_answer(status: StatusCode, body: Value) -> Reply {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        "application/json".parse().unwrap(),
    );
    resp
}
