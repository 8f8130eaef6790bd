//! The Marketing Center HTTP surface: the order in which a request meets the knobs
//! (latency → injected failure → maintenance → authentication → rate limit), the routing
//! table, and turning operations of [`super::state`] into answers.
//!
//! Authentication comes before routing, so an unknown route without credentials is a `401`.
//! Owns no data; depends on the shared simulator plumbing and its sibling modules only.

use std::sync::Arc;

use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::Value;

use super::error::ApiError;
use super::query::ListQuery;
use super::state::{GROUP_FILTERS, USER_FILTERS, parse_user_id};
use super::validate::{Mode, parse_object, validate};
use super::{API_KEY_HEADER, CUSTOMER_HEADER, Inner};
use crate::faults::FailureKind;
use crate::http::{
    Body, DropConnection, Handler, empty_response, json_response, read_body, segments_below,
};

/// Largest request body accepted (`413 PAYLOAD_TOO_LARGE` above).
pub(crate) const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The routes of the contract, with their path parameters.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Users,
    User(String),
    Archive(String),
    Restore(String),
    Groups,
    Group(String),
    Members(String),
    Member(String, String),
}

impl Route {
    fn parse(segments: Vec<String>) -> Option<Route> {
        let mut parts = segments.into_iter();
        let route = match (
            parts.next()?.as_str(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) {
            ("users", None, None, None) => Route::Users,
            ("users", Some(id), None, None) => Route::User(id),
            ("users", Some(id), Some(action), None) if action == "archive" => Route::Archive(id),
            ("users", Some(id), Some(action), None) if action == "restore" => Route::Restore(id),
            ("groups", None, None, None) => Route::Groups,
            ("groups", Some(id), None, None) => Route::Group(id),
            ("groups", Some(id), Some(m), None) if m == "members" => Route::Members(id),
            ("groups", Some(id), Some(m), Some(user)) if m == "members" => Route::Member(id, user),
            _ => return None,
        };
        parts.next().is_none().then_some(route)
    }

    /// The methods the route accepts (the `Allow` header of a `405`).
    fn allow(&self) -> &'static str {
        match self {
            Route::Users => "GET, POST",
            Route::User(_) => "GET, PATCH",
            Route::Archive(_) | Route::Restore(_) => "POST",
            Route::Groups | Route::Group(_) | Route::Members(_) => "GET",
            Route::Member(..) => "PUT, DELETE",
        }
    }
}

/// The per-connection service: the simulator plus the base path it serves under.
#[derive(Clone)]
pub(crate) struct Service {
    inner: Arc<Inner>,
    base_path: Arc<str>,
}

impl Service {
    pub(crate) fn new(inner: Arc<Inner>, base_path: String) -> Self {
        Self {
            inner,
            base_path: base_path.into(),
        }
    }

    fn authenticate(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        let key = headers
            .get(API_KEY_HEADER)
            .ok_or(ApiError::Unauthorized("the X-MC-Api-Key header is missing"))?;
        if key.as_bytes() != self.inner.api_key.as_bytes() {
            return Err(ApiError::Unauthorized("the API key is not valid"));
        }
        let customer = headers
            .get(CUSTOMER_HEADER)
            .ok_or(ApiError::Unauthorized(
                "the X-MC-Customer header is missing",
            ))?
            .to_str()
            .map_err(|_| ApiError::Unauthorized("the customer is not known"))?;
        if !self.inner.store.has_customer(customer) {
            return Err(ApiError::Unauthorized("the customer is not known"));
        }
        Ok(customer.to_owned())
    }

    async fn route(
        &self,
        request: Request<Incoming>,
        customer: &str,
    ) -> Result<Response<Body>, ApiError> {
        let segments =
            segments_below(request.uri().path(), &self.base_path).ok_or(ApiError::NotFound)?;
        let route = Route::parse(segments).ok_or(ApiError::NotFound)?;
        let store = &self.inner.store;
        let query = request.uri().query().map(str::to_owned);
        let ok = |value: Value| Ok(json_response(StatusCode::OK, &value));
        match (request.method().clone(), route) {
            (Method::GET, Route::Users) => {
                let query = ListQuery::parse(query.as_deref(), &USER_FILTERS)?;
                ok(store.list_users(customer, &query)?)
            }
            (Method::POST, Route::Users) => {
                let changes = validate(&body_object(request).await?, Mode::Create)?;
                let user = store.create_user(customer, changes)?;
                Ok(json_response(StatusCode::CREATED, &user))
            }
            (Method::GET, Route::User(id)) => ok(store.user(customer, parse_user_id(&id)?)?),
            (Method::PATCH, Route::User(id)) => {
                let id = parse_user_id(&id)?;
                let changes = validate(&body_object(request).await?, Mode::Patch)?;
                ok(store.patch_user(customer, id, changes)?)
            }
            (Method::POST, Route::Archive(id)) => {
                ok(store.set_archived(customer, parse_user_id(&id)?, true)?)
            }
            (Method::POST, Route::Restore(id)) => {
                ok(store.set_archived(customer, parse_user_id(&id)?, false)?)
            }
            (Method::GET, Route::Groups) => {
                let query = ListQuery::parse(query.as_deref(), &GROUP_FILTERS)?;
                ok(store.list_groups(customer, &query)?)
            }
            (Method::GET, Route::Group(id)) => ok(store.group(customer, &id)?),
            (Method::GET, Route::Members(id)) => {
                let query = ListQuery::parse(query.as_deref(), &[])?;
                ok(store.members(customer, &id, query.paging)?)
            }
            (Method::PUT, Route::Member(group, user)) => {
                member_user(store.has_group(customer, &group), &group, &user).and_then(|id| {
                    store.add_member(customer, &group, id)?;
                    Ok(empty_response(StatusCode::NO_CONTENT))
                })
            }
            (Method::DELETE, Route::Member(group, user)) => {
                member_user(store.has_group(customer, &group), &group, &user).and_then(|id| {
                    store.remove_member(customer, &group, id)?;
                    Ok(empty_response(StatusCode::NO_CONTENT))
                })
            }
            (_, route) => Err(ApiError::MethodNotAllowed {
                allow: route.allow(),
            }),
        }
    }
}

/// The user of a membership route; an unknown group is reported before an unparsable user.
fn member_user(group_exists: bool, group: &str, user: &str) -> Result<u64, ApiError> {
    if !group_exists {
        return Err(ApiError::GroupNotFound(group.to_owned()));
    }
    parse_user_id(user)
}

async fn body_object(
    request: Request<Incoming>,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    let bytes = read_body(request.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|e| match e {
            crate::http::BodyError::TooLarge { limit } => ApiError::PayloadTooLarge { limit },
            crate::http::BodyError::Read(text) => ApiError::BadRequest(text),
        })?;
    parse_object(&bytes)
}

impl Handler for Service {
    async fn handle(&self, request: Request<Incoming>) -> Result<Response<Body>, DropConnection> {
        let faults = &self.inner.faults;
        let _handling = faults.handling();
        let method = request.method().clone();
        let path_and_query = request
            .uri()
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
        let failure = faults.take_failure(&method, &path_and_query);
        let request_id = request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        faults.record(method, path_and_query, request_id);
        let latency = faults.latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let drop_after_commit = match failure {
            Some(FailureKind::Status(status)) => {
                return Ok(ApiError::Injected(status).into_response());
            }
            Some(FailureKind::DropBeforeCommit) => return Err(DropConnection),
            Some(FailureKind::DropAfterCommit) => true,
            None => false,
        };
        if let Some(retry_after) = faults.maintenance() {
            return Ok(ApiError::Maintenance { retry_after }.into_response());
        }
        let customer = match self.authenticate(request.headers()) {
            Ok(customer) => customer,
            Err(error) => return Ok(error.into_response()),
        };
        if let Err(retry_after) = faults.admit(&customer) {
            return Ok(ApiError::RateLimited { retry_after }.into_response());
        }
        let answer = self.route(request, &customer).await;
        if drop_after_commit {
            return Err(DropConnection);
        }
        Ok(answer.unwrap_or_else(ApiError::into_response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(path: &[&str]) -> Option<Route> {
        Route::parse(path.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn routes_of_the_contract() {
        assert_eq!(parse(&["users"]), Some(Route::Users));
        assert_eq!(parse(&["users", "7"]), Some(Route::User("7".into())));
        assert_eq!(
            parse(&["users", "7", "archive"]),
            Some(Route::Archive("7".into()))
        );
        assert_eq!(
            parse(&["users", "7", "restore"]),
            Some(Route::Restore("7".into()))
        );
        assert_eq!(parse(&["groups"]), Some(Route::Groups));
        assert_eq!(parse(&["groups", "G"]), Some(Route::Group("G".into())));
        assert_eq!(
            parse(&["groups", "G", "members"]),
            Some(Route::Members("G".into()))
        );
        assert_eq!(
            parse(&["groups", "G", "members", "7"]),
            Some(Route::Member("G".into(), "7".into()))
        );
        for bad in [
            &["users", "7", "delete"][..],
            &["users", "7", "archive", "x"],
            &["groups", "G", "members", "7", "x"],
            &["groups", "G", "owners"],
            &["accounts"],
            &[],
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
