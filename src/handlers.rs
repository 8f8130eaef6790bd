//! Sequencing only: each handler takes the request, asks the plan (`mapping::plan`) what to
//! do, runs it through the tenant's gateway and the cross-reference, and answers. One file per
//! resource; what a request's pieces mean lives in `scim` (parameters, bodies, lists) and
//! `mapping` (plans, resources), what an error answers in `error`.

mod announce;
pub mod discovery;
pub mod groups;
pub mod users;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use mapping::Mapping;
use mapping::plan::{CursorPage, Position};
use scim::list::{ListParams, Projection};
use serde_json::Value;

use crate::cursor::{self, Walk};
use crate::error::{Error, RequestError, scim_json};
use crate::gateway::Exchanger;
use crate::router::{Resource, Route};
use crate::telemetry::RequestNote;
use crate::tenant::{State, Tenant};

/// What a handler needs about the request it serves.
pub struct Ctx {
    /// The authenticated tenant.
    pub tenant: Arc<Tenant>,
    /// The tenant's mapping as it was when the request started.
    pub mapping: Arc<Mapping>,
    /// Shared state.
    pub state: Arc<State>,
    /// `http://host/scim/v2`, for `Location` and `meta.location`.
    pub base_url: String,
    /// The request id, forwarded to the legacy app.
    pub request_id: Option<Arc<str>>,
    /// What the request log, metrics and provisioning log need to know about the request.
    pub note: Arc<RequestNote>,
}

impl Ctx {
    /// Runs `work` while no other work on the same `key` runs (a create of a userName or a
    /// group name; a change of one group's members; compared without case), on this replica
    /// or another sharing the store: the same create sent twice (Okta retrying) meets the
    /// account the first made instead of racing it, and of two member replacements the last
    /// one's list stands. Waits up to half the request's time limit, then `503` with
    /// `Retry-After`. No key: `work` runs as it is (the plan refuses the request).
    pub async fn one_at_a_time<T>(
        &self,
        resource_type: &str,
        what: &'static str,
        key: Option<&str>,
        work: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let Some(key) = key else {
            return work.await;
        };
        let limit = self.state.request_timeout;
        let claim = self
            .state
            .xref
            .claim(
                &self.tenant.id,
                resource_type,
                what,
                &format!("{what}:{}", key.to_lowercase()),
                limit / 2,
            )
            .await?;
        let outcome = work.await;
        claim.release().await;
        outcome
    }

    /// The tenant's gateway, as the exchange of this request's plans.
    pub fn exchange(&self) -> Exchanger<'_> {
        self.tenant
            .gateway
            .exchange(&self.mapping, self.request_id.as_deref(), &self.note)
    }
}

/// Routes a request to its handler. A write answered with an error puts a
/// `provisioning.failed` event in the outbox first, when an endpoint of the tenant takes it.
pub async fn dispatch(
    ctx: &Ctx,
    route: Route,
    query: &str,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, Error> {
    if !(route.is_write()
        && (ctx.tenant.webhooks).wants(crate::webhooks::EventType::ProvisioningFailed))
    {
        return route_to(ctx, route, query, body).await;
    }
    let labels = route.labels();
    let path_id = route.id().map(str::to_owned);
    let error = match route_to(ctx, route, query, body).await {
        Ok(answer) => return Ok(answer),
        Err(e) => e.answer(),
    };
    if let Some(event) = announce::failure_event(ctx, labels, path_id.as_deref(), &error) {
        let types = [event.event_type.clone()];
        match ctx.state.xref.emit(vec![event]).await {
            Ok(()) => announce::committed(ctx, &types),
            Err(e) => {
                tracing::warn!(error = %e, "the provisioning.failed event could not be stored");
            }
        }
    }
    Ok(error.into_response())
}

/// Routes a request to its handler.
async fn route_to(
    ctx: &Ctx,
    route: Route,
    query: &str,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, Error> {
    let json = |body: &Bytes| scim::json::parse_object(body);
    // Every arm but the commonest is boxed: a future is as large as its largest arm, and the
    // whole of it is moved into the heap once per request (a group write's state is twice a
    // user read's).
    match route {
        Route::Get(Resource::Users, id) => {
            users::get(ctx, &id, &Projection::from_query(query)?).await
        }
        Route::List(Resource::Users) => {
            Box::pin(users::list(ctx, ListParams::from_query(query)?)).await
        }
        Route::List(Resource::Groups) => {
            Box::pin(groups::list(ctx, ListParams::from_query(query)?)).await
        }
        Route::Search(Resource::Users) => {
            Box::pin(users::list(ctx, ListParams::from_search(&body)?)).await
        }
        Route::Search(Resource::Groups) => {
            Box::pin(groups::list(ctx, ListParams::from_search(&body)?)).await
        }
        Route::RootSearch => Box::pin(root_search(ctx, ListParams::from_search(&body)?)).await,
        Route::Create(Resource::Users) => Box::pin(users::create(ctx, json(&body)?)).await,
        Route::Replace(Resource::Users, id) => {
            Box::pin(users::replace(ctx, &id, json(&body)?)).await
        }
        Route::Patch(Resource::Users, id) => Box::pin(users::patch(ctx, &id, json(&body)?)).await,
        Route::Delete(Resource::Users, id) => Box::pin(users::delete(ctx, &id)).await,
        Route::Get(Resource::Groups, id) => {
            Box::pin(groups::get(ctx, &id, &Projection::from_query(query)?)).await
        }
        Route::Patch(Resource::Groups, id) => {
            let projection = Projection::from_query(query)?;
            Box::pin(groups::patch(ctx, &id, json(&body)?, &projection)).await
        }
        Route::Replace(Resource::Groups, id) => {
            let projection = Projection::from_query(query)?;
            Box::pin(groups::replace(ctx, &id, json(&body)?, &projection)).await
        }
        Route::Create(Resource::Groups) => Box::pin(groups::create(ctx, json(&body)?)).await,
        Route::Delete(Resource::Groups, id) => Box::pin(groups::delete(ctx, &id)).await,
        Route::ServiceProviderConfig => Ok(discovery::service_provider_config(ctx)),
        Route::ResourceTypes => Ok(discovery::resource_types(ctx)),
        Route::ResourceType(name) => discovery::resource_type(ctx, &name),
        Route::Schemas => Ok(discovery::schemas(ctx)),
        Route::Schema(urn) => discovery::schema(ctx, &urn),
        Route::MethodNotAllowed(allow) => Err(RequestError::MethodNotAllowed { allow }.into()),
        Route::NotFound => Err(RequestError::NoEndpoint.into()),
    }
}

/// `POST /.search`: every resource type, Users then Groups, windowed as one list.
async fn root_search(ctx: &Ctx, p: ListParams) -> Result<Response<Full<Bytes>>, Error> {
    if p.cursor.is_some() {
        return Err(RequestError::CursorNotOffered.into());
    }
    let (mut total, mut page) = users::search(ctx, &p).await?;
    if ctx.mapping.groups.is_some() {
        let (groups_total, groups) = groups::search(ctx, &p.after(total, page.len())).await?;
        total += groups_total;
        page.extend(groups);
    }
    Ok(list_response(total, p.start_index, page))
}

/// A `ListResponse`.
/// The walk a cursor-paged list request continues (RFC 9865): an empty `cursor` starts one
/// of `count` records per page at the first record; any other is opened (and refused when
/// it is not one of this tenant's, for this resource type and filter, or has expired).
fn cursor_walk(ctx: &Ctx, resource_type: &str, p: &ListParams) -> Result<Walk, Error> {
    match p.cursor.as_deref() {
        None | Some("") => Ok(Walk {
            count: p.count,
            at: Position::default(),
            legacy_size: None,
        }),
        Some(text) => Ok(ctx.state.cursors.open(
            text,
            ctx.tenant.id.as_str(),
            resource_type,
            p.filter.as_ref(),
            p.count_given.then_some(p.count),
            cursor::now(),
        )?),
    }
}

/// The page of `walk` over `pages`; refused when the legacy page size changed since the
/// cursor was given out.
fn cursor_page<'m>(pages: mapping::plan::Pages<'m>, walk: &Walk) -> Result<CursorPage<'m>, Error> {
    let page = CursorPage::new(pages, walk.count, walk.at.clone());
    if walk.legacy_size.is_some_and(|s| s != page.page_size()) {
        return Err(cursor::CursorError::Stale.into());
    }
    Ok(page)
}

/// A page of a cursor walk: `next` and `previous` sealed as cursors of the same walk. A walk
/// of `count` 0 answers `totalResults` alone and has no next page.
fn cursor_list_response(
    ctx: &Ctx,
    resource_type: &str,
    p: &ListParams,
    walk: &Walk,
    total: Option<u64>,
    page: CursorPage<'_>,
    resources: Vec<Value>,
) -> Response<Full<Bytes>> {
    let seal = |at: Position| {
        ctx.state.cursors.seal(
            ctx.tenant.id.as_str(),
            resource_type,
            p.filter.as_ref(),
            walk.count,
            page.page_size(),
            &at,
            cursor::now(),
        )
    };
    let (next, previous) = if walk.count == 0 {
        (None, None)
    } else {
        (page.next().map(seal), page.previous().map(seal))
    };
    scim_json(
        StatusCode::OK,
        &scim::list::cursor_response(total, resources, next, previous),
    )
}

fn list_response(total: u64, start_index: u64, resources: Vec<Value>) -> Response<Full<Bytes>> {
    scim_json(
        StatusCode::OK,
        &scim::list::response(total, start_index, resources),
    )
}

/// A resource; a `201` also says where it lives (`Location`).
fn resource_response(status: StatusCode, resource: &Value) -> Response<Full<Bytes>> {
    let mut resp = scim_json(status, resource);
    if status == StatusCode::CREATED
        && let Some(loc) = scim::resource::location_of(resource)
        && let Ok(v) = HeaderValue::from_str(loc)
    {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// `204 No Content`.
fn no_content() -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
}
