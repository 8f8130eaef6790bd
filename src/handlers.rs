//! Glue only: where `scim`, `mapping`, `legacy` and `xref` meet. One file per resource.
//!
//! `dispatch` sends a routed request to its handler; the helpers here send declared legacy
//! calls and walk legacy list pages.

pub mod discovery;
pub mod groups;
pub mod users;

use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

use crate::error::ScimError;
use crate::router::{Resource, Route};
use crate::telemetry::RequestNote;
use crate::tenant::{State, Tenant};
use mapping::apply::LegacyFailure;
use mapping::ids::LegacyId;
use mapping::{Call, Mapping, Vars};
use scim::filter::{self, AttrPath, Filter};
use scim::{resource, schema};

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
    pub request_id: Option<String>,
    /// What the request log, metrics and provisioning log need to know about the request.
    pub note: Arc<RequestNote>,
}

/// Largest `count` a list answers at once.
pub const MAX_RESULTS: u64 = 1000;
/// `count` when the client sends none.
pub const DEFAULT_COUNT: u64 = 100;

/// Routes a request to its handler.
pub async fn dispatch(
    ctx: &Ctx,
    route: Route,
    query: &str,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, ScimError> {
    match route {
        Route::List(Resource::Users) => users::list(ctx, ListParams::from_query(query)?).await,
        Route::List(Resource::Groups) => groups::list(ctx, ListParams::from_query(query)?).await,
        Route::Search(Resource::Users) => users::list(ctx, ListParams::from_search(&body)?).await,
        Route::Search(Resource::Groups) => groups::list(ctx, ListParams::from_search(&body)?).await,
        Route::RootSearch => root_search(ctx, ListParams::from_search(&body)?).await,
        Route::Create(Resource::Users) => users::create(ctx, parse_json(&body)?).await,
        Route::Get(Resource::Users, id) => {
            users::get(ctx, &id, &Projection::from_query(query)?).await
        }
        Route::Replace(Resource::Users, id) => users::replace(ctx, &id, parse_json(&body)?).await,
        Route::Patch(Resource::Users, id) => users::patch(ctx, &id, parse_json(&body)?).await,
        Route::Delete(Resource::Users, id) => users::delete(ctx, &id).await,
        Route::Get(Resource::Groups, id) => {
            groups::get(ctx, &id, &Projection::from_query(query)?).await
        }
        Route::Patch(Resource::Groups, id) => {
            groups::patch(
                ctx,
                &id,
                parse_json(&body)?,
                &Projection::from_query(query)?,
            )
            .await
        }
        Route::Replace(Resource::Groups, id) => {
            groups::replace(
                ctx,
                &id,
                parse_json(&body)?,
                &Projection::from_query(query)?,
            )
            .await
        }
        Route::Create(Resource::Groups) => groups::create(ctx, parse_json(&body)?).await,
        Route::Delete(Resource::Groups, id) => groups::delete(ctx, &id).await,
        Route::ServiceProviderConfig => Ok(discovery::service_provider_config(ctx)),
        Route::ResourceTypes => Ok(discovery::resource_types(ctx)),
        Route::ResourceType(name) => discovery::resource_type(ctx, &name),
        Route::Schemas => Ok(discovery::schemas(ctx)),
        Route::Schema(urn) => discovery::schema(ctx, &urn),
        Route::MethodNotAllowed(allowed) => Err(ScimError::method_not_allowed(allowed)),
        Route::NotFound => Err(ScimError::no_endpoint()),
    }
}

/// `POST /.search`: every resource type, Users then Groups, windowed as one list.
async fn root_search(ctx: &Ctx, p: ListParams) -> Result<Response<Full<Bytes>>, ScimError> {
    let (users_total, mut page) = users::search(ctx, &p).await?;
    let mut total = users_total;
    if ctx.mapping.groups.is_some() {
        let rest = ListParams {
            filter: p.filter.clone(),
            start_index: (p.start_index - 1).saturating_sub(users_total) + 1,
            count: p.count.saturating_sub(page.len() as u64),
            projection: p.projection.clone(),
        };
        let (groups_total, groups) = groups::search(ctx, &rest).await?;
        total += groups_total;
        page.extend(groups);
    }
    Ok(list_response(total, p.start_index, page))
}

/// A request body as a JSON object, or `400 invalidSyntax` (duplicate or over-long keys too).
pub fn parse_json(body: &[u8]) -> Result<Value, ScimError> {
    Ok(scim::json::parse_object(body)?)
}

/// `attributes` / `excludedAttributes`.
#[derive(Default, Debug, Clone)]
pub struct Projection {
    /// Only these (plus always-returned ones).
    pub attributes: Vec<AttrPath>,
    /// All but these.
    pub excluded: Vec<AttrPath>,
}

impl Projection {
    /// From a query string.
    pub fn from_query(query: &str) -> Result<Self, ScimError> {
        let mut p = Projection::default();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            if k.eq_ignore_ascii_case("attributes") {
                p.attributes.extend(resource::parse_attr_list(&v)?);
            } else if k.eq_ignore_ascii_case("excludedAttributes") {
                p.excluded.extend(resource::parse_attr_list(&v)?);
            }
        }
        Ok(p)
    }

    /// Whether nothing is selected or excluded.
    pub fn is_empty(&self) -> bool {
        self.attributes.is_empty() && self.excluded.is_empty()
    }

    /// Applies to one resource.
    pub fn apply(&self, resource: Value, schema: &schema::ResourceSchema) -> Value {
        if self.is_empty() {
            resource
        } else {
            resource::project(&resource, schema, &self.attributes, &self.excluded)
        }
    }

    /// Whether the answer will contain `attr` (top-level name, case-insensitive).
    pub fn wants(&self, attr: &str) -> bool {
        let named = |l: &[AttrPath]| {
            l.iter()
                .any(|p| p.name.eq_ignore_ascii_case(attr) && p.sub.is_none())
        };
        if !self.attributes.is_empty() {
            self.attributes
                .iter()
                .any(|p| p.name.eq_ignore_ascii_case(attr))
        } else {
            !named(&self.excluded)
        }
    }
}

/// Parameters of a list or search.
#[derive(Debug, Default)]
pub struct ListParams {
    /// The filter.
    pub filter: Option<Filter>,
    /// 1-based index of the first result.
    pub start_index: u64,
    /// Results per page.
    pub count: u64,
    /// Projection.
    pub projection: Projection,
}

impl ListParams {
    /// From `GET` query parameters.
    pub fn from_query(query: &str) -> Result<Self, ScimError> {
        let mut p = ListParams {
            start_index: 1,
            count: DEFAULT_COUNT,
            ..Default::default()
        };
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            if k.eq_ignore_ascii_case("filter") {
                p.filter = Some(filter::parse(&v)?);
            } else if k.eq_ignore_ascii_case("startIndex") {
                p.start_index = parse_int(&v, "startIndex")?.max(1) as u64;
            } else if k.eq_ignore_ascii_case("count") {
                p.count = parse_int(&v, "count")?.clamp(0, MAX_RESULTS as i64) as u64;
            }
        }
        p.projection = Projection::from_query(query)?;
        Ok(p)
    }

    /// From a `POST .search` body.
    pub fn from_search(body: &[u8]) -> Result<Self, ScimError> {
        let v = parse_json(body)?;
        let mut p = ListParams {
            start_index: 1,
            count: DEFAULT_COUNT,
            ..Default::default()
        };
        let Some(obj) = v.as_object() else {
            return Ok(p);
        };
        for (k, v) in obj {
            match k.to_ascii_lowercase().as_str() {
                "filter" => match v {
                    Value::String(s) => p.filter = Some(filter::parse(s)?),
                    Value::Null => {}
                    _ => {
                        return Err(ScimError::invalid_syntax("filter must be a string"));
                    }
                },
                "startindex" => p.start_index = json_int(v, "startIndex")?.max(1) as u64,
                "count" => p.count = json_int(v, "count")?.clamp(0, MAX_RESULTS as i64) as u64,
                "attributes" => p.projection.attributes = attr_list(v)?,
                "excludedattributes" => p.projection.excluded = attr_list(v)?,
                _ => {}
            }
        }
        Ok(p)
    }
}

fn parse_int(v: &str, name: &str) -> Result<i64, ScimError> {
    v.trim()
        .parse::<i64>()
        .map_err(|_| ScimError::invalid_value(format!("{name} must be an integer, got {v:?}")))
}

fn json_int(v: &Value, name: &str) -> Result<i64, ScimError> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| ScimError::invalid_value(format!("{name} must be an integer"))),
        Value::String(s) => parse_int(s, name),
        _ => Err(ScimError::invalid_value(format!(
            "{name} must be an integer"
        ))),
    }
}

fn attr_list(v: &Value) -> Result<Vec<AttrPath>, ScimError> {
    match v {
        Value::String(s) => Ok(resource::parse_attr_list(s)?),
        Value::Array(items) => {
            let mut out = Vec::new();
            for i in items {
                let s = i
                    .as_str()
                    .ok_or_else(|| ScimError::invalid_syntax("attribute names must be strings"))?;
                out.extend(resource::parse_attr_list(s)?);
            }
            Ok(out)
        }
        Value::Null => Ok(Vec::new()),
        _ => Err(ScimError::invalid_syntax(
            "attributes must be a string or an array",
        )),
    }
}

/// A SCIM ListResponse.
pub fn list_response(total: u64, start_index: u64, resources: Vec<Value>) -> Response<Full<Bytes>> {
    let body = json!({
        "schemas": [schema::LIST_RESPONSE],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    });
    crate::error::scim_json(StatusCode::OK, &body)
}

/// The outcome of a legacy call that got an answer: the JSON of a 2xx, or the read failure.
pub type Answer = Result<Value, LegacyFailure>;

impl Ctx {
    /// Sends a declared call about `legacy_id` with extra query parameters and a body.
    pub async fn call(
        &self,
        call: &Call,
        legacy_id: Option<&LegacyId>,
        extra_query: &[(String, String)],
        body: Option<Value>,
    ) -> Result<Answer, ScimError> {
        self.call_member(call, legacy_id, None, extra_query, body)
            .await
    }

    /// Like [`Ctx::call`], with a group member's legacy id too.
    pub async fn call_member(
        &self,
        call: &Call,
        legacy_id: Option<&LegacyId>,
        member_legacy_id: Option<&LegacyId>,
        extra_query: &[(String, String)],
        body: Option<Value>,
    ) -> Result<Answer, ScimError> {
        let mapping = &self.mapping;
        let vars = Vars {
            legacy_id: legacy_id.map(LegacyId::as_str),
            member_legacy_id: member_legacy_id.map(LegacyId::as_str),
            customer_id: &self.tenant.customer_id,
            api_key: self.tenant.api_key(),
        };
        let prepared = mapping.prepare(call, &vars, extra_query, body)?;
        let started = std::time::Instant::now();
        let method = prepared.method.clone();
        self.note.legacy_call();
        let sent = self
            .tenant
            .legacy
            .send(prepared, self.request_id.as_deref())
            .await;
        let latency = started.elapsed();
        let status = match &sent {
            Ok(resp) => resp.status.as_str().to_owned(),
            Err(e) => e.kind().to_owned(),
        };
        self.state.metrics.legacy_call(
            self.tenant.id.as_str(),
            &call.name,
            &status,
            latency.as_secs_f64(),
        );
        tracing::debug!(call = %call.name, %method, %status, latency_us = latency.as_micros() as u64, "legacy call");
        let resp = sent?;
        if resp.status.is_success() {
            if resp.body.is_empty() {
                return Ok(Ok(Value::Null));
            }
            return serde_json::from_slice(&resp.body).map(Ok).map_err(|e| {
                ScimError::legacy_answer(format!(
                    "{} answered invalid JSON: {e}",
                    mapping.legacy.name
                ))
            });
        }
        let retry_after = mapping
            .legacy
            .errors
            .retry_after_header
            .as_deref()
            .and_then(|h| resp.headers.get(h))
            .and_then(|v| v.to_str().ok());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(Err(mapping.legacy.errors.interpret(
            resp.status.as_u16(),
            &resp.body,
            retry_after,
            now,
        )))
    }

    /// The SCIM error for a legacy failure, with no field translation.
    pub fn failure(&self, f: &LegacyFailure) -> ScimError {
        ScimError::from_legacy_failure(f, &self.mapping.legacy.name, None)
    }

    /// Reads one list page starting at 0-based `index` with `size` items:
    /// (records, total if reported, has-more if reported).
    pub async fn page(
        &self,
        call: &Call,
        legacy_id: Option<&LegacyId>,
        extra_query: &[(String, String)],
        index: u64,
        size: u64,
    ) -> Result<(Vec<Value>, Option<u64>, Option<bool>), ScimError> {
        let paging = &self.mapping.legacy.paging;
        let mut query = extra_query.to_vec();
        query.extend(paging.query(index, size));
        let answer = self
            .call(call, legacy_id, &query, None)
            .await?
            .map_err(|f| self.failure(&f))?;
        let total = paging.total(&answer);
        let more = paging.more(&answer);
        let items = paging.items(answer)?;
        Ok((items, total, more))
    }

    /// A pager over every page of a list call.
    pub fn pager<'a>(
        &'a self,
        call: &'a Call,
        legacy_id: Option<&'a LegacyId>,
        extra_query: Vec<(String, String)>,
    ) -> Pager<'a> {
        Pager {
            ctx: self,
            call,
            legacy_id,
            extra_query,
            index: 0,
            done: false,
        }
    }
}

/// Walks the pages of a legacy list call, one call per page.
pub struct Pager<'a> {
    ctx: &'a Ctx,
    call: &'a Call,
    legacy_id: Option<&'a LegacyId>,
    extra_query: Vec<(String, String)>,
    index: u64,
    done: bool,
}

impl Pager<'_> {
    /// The next page of records, `None` after the last.
    pub async fn next(&mut self) -> Result<Option<Vec<Value>>, ScimError> {
        if self.done {
            return Ok(None);
        }
        let size = self.ctx.mapping.legacy.paging.max_page_size;
        let (items, total, more) = self
            .ctx
            .page(
                self.call,
                self.legacy_id,
                &self.extra_query,
                self.index,
                size,
            )
            .await?;
        let n = items.len() as u64;
        self.index += n;
        let more = match (more, total) {
            (Some(m), _) => m,
            (None, Some(t)) => self.index < t,
            (None, None) => n == size,
        };
        self.done = !more || n == 0;
        Ok(Some(items))
    }
}

/// The name the tenant's mapping gives its legacy app (for reports).
pub fn legacy_app_name(tenant: &Tenant) -> String {
    tenant.mapping().legacy.name.clone()
}

/// Whether the tenant's legacy app answers: one page of one record from the users list call.
/// Any answer below 500 counts (a refusal is an answer: the app is up); a 5xx, no answer or an
/// open circuit does not. For the readiness check.
pub async fn probe_legacy(tenant: &Tenant) -> Result<u16, String> {
    let mapping = tenant.mapping();
    let vars = Vars {
        legacy_id: None,
        member_legacy_id: None,
        customer_id: &tenant.customer_id,
        api_key: tenant.api_key(),
    };
    let call = &mapping.users.calls.list;
    let query = mapping.legacy.paging.query(0, 1);
    let prepared = mapping
        .prepare(call, &vars, &query, None)
        .map_err(|e| e.to_string())?;
    let request_id = format!("readyz-{}", uuid::Uuid::new_v4().simple());
    match tenant.legacy.send(prepared, Some(&request_id)).await {
        Ok(resp) if !resp.status.is_server_error() => Ok(resp.status.as_u16()),
        Ok(resp) => Err(format!("{} answered {}", mapping.legacy.name, resp.status)),
        Err(e) => Err(e.to_string()),
    }
}
