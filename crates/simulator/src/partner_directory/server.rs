//! The Partner Directory HTTP surface: the order in which a request meets the knobs
//! (latency → injected failure → maintenance → authentication → rate limit), the routing
//! table, and turning operations of [`super::state`] into answers.
//!
//! Authentication comes before routing, so an unknown route without credentials is a `401`.
//! Within a route the checks run in this order: the body can be read and is a JSON object
//! (`413`, `400`) → the path names an existing account or team (`404`) → the team is not
//! reserved (`403`) → the body is valid (`422`) → uniqueness and named uids (`409`, `404`).
//! Owns no data; depends on the shared simulator plumbing and its sibling modules only.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::{Map, Value};

use super::Inner;
use super::error::ApiError;
use super::query::ListQuery;
use super::state::{ACCOUNT_FILTERS, Origin, TEAM_FILTERS, parse_team_id};
use super::validate::{account_fields, parse_object, title, uids};
use crate::faults::FailureKind;
use crate::http::{
    Body, BodyError, DropConnection, Handler, empty_response, json_response, read_body,
    segments_below,
};

/// Largest request body accepted (`413 payload_too_large` above).
pub(crate) const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The rate-limit bucket key: one directory per server, so one budget.
const RATE_LIMIT_KEY: &str = "directory";

/// The routes of the contract, with their path parameters.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Accounts,
    Account(String),
    Claim(String),
    Teams,
    Team(String),
    Members(String),
    RemoveMembers(String),
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
            ("accounts", None, None, None) => Route::Accounts,
            ("accounts", Some(uid), None, None) => Route::Account(uid),
            ("accounts", Some(uid), Some(action), None) if action == "claim" => Route::Claim(uid),
            ("teams", None, None, None) => Route::Teams,
            ("teams", Some(id), None, None) => Route::Team(id),
            ("teams", Some(id), Some(m), None) if m == "members" => Route::Members(id),
            ("teams", Some(id), Some(m), Some(action)) if m == "members" && action == "remove" => {
                Route::RemoveMembers(id)
            }
            _ => return None,
        };
        parts.next().is_none().then_some(route)
    }

    /// The methods the route accepts (the `Allow` header of a `405`).
    fn allow(&self) -> &'static str {
        match self {
            Route::Accounts | Route::Teams | Route::Members(_) => "GET, POST",
            Route::Account(_) => "GET, PUT, DELETE",
            Route::Team(_) => "GET, PATCH, DELETE",
            Route::Claim(_) | Route::RemoveMembers(_) => "POST",
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

    /// Exactly one `Authorization` header, exactly `Token <secret>`.
    fn authenticate(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let value = values.next().ok_or(ApiError::Unauthorized(
            "the Authorization header is missing",
        ))?;
        if values.next().is_some() {
            return Err(ApiError::Unauthorized(
                "more than one Authorization header was sent",
            ));
        }
        if value.as_bytes() != self.inner.authorization.as_bytes() {
            return Err(ApiError::Unauthorized(
                "the credentials are not valid (expected Authorization: Token <secret>)",
            ));
        }
        Ok(())
    }

    async fn route(&self, request: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let segments =
            segments_below(request.uri().path(), &self.base_path).ok_or(ApiError::NoRoute)?;
        let route = Route::parse(segments).ok_or(ApiError::NoRoute)?;
        let store = &self.inner.store;
        let query = request.uri().query().map(str::to_owned);
        let ok = |value: Value| Ok(json_response(StatusCode::OK, &value));
        let no_content = || Ok(empty_response(StatusCode::NO_CONTENT));
        match (request.method().clone(), route) {
            (Method::GET, Route::Accounts) => {
                let query = ListQuery::parse(query.as_deref(), &ACCOUNT_FILTERS)?;
                ok(store.list_accounts(&query))
            }
            (Method::POST, Route::Accounts) => {
                let fields = account_fields(&body_object(request).await?)?;
                let account = store.create_account(fields, Origin::Idp)?;
                Ok(json_response(StatusCode::CREATED, &account))
            }
            (Method::GET, Route::Account(uid)) => ok(store.account(&uid)?),
            (Method::PUT, Route::Account(uid)) => {
                let body = body_object(request).await?;
                store.account(&uid)?;
                ok(store.replace_account(&uid, account_fields(&body)?)?)
            }
            (Method::DELETE, Route::Account(uid)) => {
                store.delete_account(&uid)?;
                no_content()
            }
            (Method::POST, Route::Claim(uid)) => ok(store.claim(&uid)?),
            (Method::GET, Route::Teams) => {
                let query = ListQuery::parse(query.as_deref(), &TEAM_FILTERS)?;
                ok(store.list_teams(&query))
            }
            (Method::POST, Route::Teams) => {
                let team = store.create_team(&title(&body_object(request).await?)?)?;
                Ok(json_response(StatusCode::CREATED, &team))
            }
            (Method::GET, Route::Team(id)) => ok(store.team(parse_team_id(&id)?)?),
            (Method::PATCH, Route::Team(id)) => {
                let body = body_object(request).await?;
                let id = parse_team_id(&id)?;
                store.check_writable_team(id)?;
                ok(store.rename_team(id, &title(&body)?)?)
            }
            (Method::DELETE, Route::Team(id)) => {
                store.delete_team(parse_team_id(&id)?)?;
                no_content()
            }
            (Method::GET, Route::Members(id)) => {
                let id = parse_team_id(&id)?;
                let query = ListQuery::parse(query.as_deref(), &[])?;
                ok(store.members(id, query.paging)?)
            }
            (Method::POST, Route::Members(id)) => {
                let body = body_object(request).await?;
                let id = parse_team_id(&id)?;
                store.check_writable_team(id)?;
                store.add_members(id, &uids(&body)?, false)?;
                no_content()
            }
            (Method::POST, Route::RemoveMembers(id)) => {
                let body = body_object(request).await?;
                let id = parse_team_id(&id)?;
                store.check_writable_team(id)?;
                store.remove_members(id, &uids(&body)?, false)?;
                no_content()
            }
            (_, route) => Err(ApiError::MethodNotAllowed {
                allow: route.allow(),
            }),
        }
    }
}

async fn body_object(request: Request<Incoming>) -> Result<Map<String, Value>, ApiError> {
    let bytes = read_body(request.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge { limit } => ApiError::PayloadTooLarge { limit },
            BodyError::Read(text) => ApiError::BadRequest(text),
        })?;
    parse_object(&bytes)
}

/// The Unix epoch second at which a request refused now, told to wait `wait` seconds, is
/// admitted again (rounded up, so always in the future).
fn reset_epoch(now: SystemTime, wait: u64) -> u64 {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let at = since_epoch.saturating_add(Duration::from_secs(wait.max(1)));
    at.as_secs()
        .saturating_add(u64::from(at.subsec_nanos() > 0))
}

impl Handler for Service {
    async fn handle(&self, request: Request<Incoming>) -> Result<Response<Body>, DropConnection> {
        let faults = &self.inner.faults;
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
        if faults.maintenance().is_some() {
            return Ok(ApiError::Maintenance.into_response());
        }
        if let Err(error) = self.authenticate(request.headers()) {
            return Ok(error.into_response());
        }
        if let Err(wait) = faults.admit(RATE_LIMIT_KEY) {
            let reset = reset_epoch(SystemTime::now(), wait);
            return Ok(ApiError::RateLimited { reset }.into_response());
        }
        let answer = self.route(request).await;
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
        assert_eq!(parse(&["accounts"]), Some(Route::Accounts));
        assert_eq!(
            parse(&["accounts", "acc_1"]),
            Some(Route::Account("acc_1".into()))
        );
        assert_eq!(
            parse(&["accounts", "acc_1", "claim"]),
            Some(Route::Claim("acc_1".into()))
        );
        assert_eq!(parse(&["teams"]), Some(Route::Teams));
        assert_eq!(parse(&["teams", "55"]), Some(Route::Team("55".into())));
        assert_eq!(
            parse(&["teams", "55", "members"]),
            Some(Route::Members("55".into()))
        );
        assert_eq!(
            parse(&["teams", "55", "members", "remove"]),
            Some(Route::RemoveMembers("55".into()))
        );
        for bad in [
            &["accounts", "acc_1", "unclaim"][..],
            &["accounts", "acc_1", "claim", "x"],
            &["teams", "55", "members", "acc_1"],
            &["teams", "55", "members", "remove", "x"],
            &["teams", "55", "owners"],
            &["users"],
            &[],
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn reset_is_a_whole_second_in_the_future() {
        let at = |secs, nanos| UNIX_EPOCH + Duration::new(secs, nanos);
        assert_eq!(reset_epoch(at(1_767_225_600, 0), 1), 1_767_225_601);
        assert_eq!(reset_epoch(at(1_767_225_600, 1), 1), 1_767_225_602);
        assert_eq!(reset_epoch(at(1_767_225_600, 0), 0), 1_767_225_601);
        assert_eq!(reset_epoch(at(100, 0), 3), 103);
    }
}
