//! Translation through a compiled mapping: legacy record → SCIM attributes, SCIM resource →
//! legacy fields, the minimal change set, filter push-down, list paging and error reading.

use serde_json::{Map, Value};

use super::{
    Active, AttrMap, BodySpec, Call, CaseSpec, Errors, Legacy, ListShape, Mapping, MultiValuedSpec,
    Paging, PagingStyle, PreparedCall, PushDown, RetryAfterFormat, ScimTarget, TimeFormat,
    TranslateError, UserMapping, Vars,
};
use crate::field::{FieldPath, same_text};
use crate::ids::LegacyId;
use scim::filter::{CompareOp, Filter};
use scim::schema::ResourceSchema;

/// Legacy field → value (`Null` = empty), for every mapped field, in mapping order.
pub type FieldValues = Vec<(FieldPath, Value)>;

impl Mapping {
    /// Builds a ready-to-send call: path, fixed and extra query, headers, body.
    pub fn prepare(
        &self,
        call: &Call,
        vars: &Vars<'_>,
        extra_query: &[(String, String)],
        body: Option<Value>,
    ) -> Result<PreparedCall, TranslateError> {
        self.legacy.prepare(call, vars, extra_query, body)
    }
}

impl Legacy {
    /// See [`Mapping::prepare`].
    pub fn prepare(
        &self,
        call: &Call,
        vars: &Vars<'_>,
        extra_query: &[(String, String)],
        body: Option<Value>,
    ) -> Result<PreparedCall, TranslateError> {
        let mut path_and_query = call.path.render_path(vars)?;
        if !call.query.is_empty() || !extra_query.is_empty() {
            let mut q = form_urlencoded::Serializer::new(String::new());
            for (k, t) in &call.query {
                q.append_pair(k, &t.render(vars)?);
            }
            for (k, v) in extra_query {
                q.append_pair(k, v);
            }
            // A query string written into the path is kept: the parameters join it.
            match path_and_query.find('?') {
                None => path_and_query.push('?'),
                Some(i) if i + 1 < path_and_query.len() && !path_and_query.ends_with('&') => {
                    path_and_query.push('&')
                }
                Some(_) => {}
            }
            path_and_query.push_str(&q.finish());
        }
        let body = match (&call.envelope, body, &call.fixed_body) {
            (Some(envelope), Some(inner), _) => {
                let mut wrapped = Value::Object(Map::new());
                envelope.set(&mut wrapped, inner);
                Some(wrapped)
            }
            (_, None, Some(fixed)) => Some(fixed.render(vars)?),
            (_, body, _) => body,
        };
        let mut headers = Vec::with_capacity(self.headers.len() + 1);
        for (name, t) in &self.headers {
            headers.push((name.clone(), t.render(vars)?, t.uses_secret()));
        }
        if let Some(header) = self
            .auth
            .as_ref()
            .map(|a| a.header(vars))
            .transpose()?
            .flatten()
        {
            headers.push(("Authorization".into(), header, true));
        }
        Ok(PreparedCall {
            name: call.name.clone(),
            method: call.method.clone(),
            path_and_query,
            headers,
            body,
            idempotent: call.idempotent,
            retry_hint: self
                .errors
                .retry_after_header
                .clone()
                .map(|h| (h, self.errors.retry_after_format)),
            followed: false,
        })
    }
}

/// `value.pointer(pointer)` without its two allocations per token when the pointer holds no
/// `~` escape (every pointer of the shipped mappings): the record is read on every request.
pub fn at<'a>(value: &'a Value, pointer: &str) -> Option<&'a Value> {
    if pointer.contains('~') {
        return value.pointer(pointer);
    }
    if pointer.is_empty() {
        return Some(value);
    }
    pointer
        .strip_prefix('/')?
        .split('/')
        .try_fold(value, |target, token| match target {
            Value::Object(map) => map.get(token),
            Value::Array(list) => {
                if (token.len() > 1 && token.starts_with('0')) || token.starts_with('+') {
                    return None;
                }
                list.get(token.parse::<usize>().ok()?)
            }
            _ => None,
        })
}

/// Reads a JSON pointer as text (strings as they are, numbers printed).
pub fn pointer_text(record: &Value, pointer: &str) -> Option<String> {
    match at(record, pointer)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn truthy(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

impl Active {
    /// Whether the record is active.
    pub fn eval(&self, record: &Value) -> bool {
        self.all_true
            .iter()
            .all(|p| truthy(at(record, p)) == Some(true))
            && self
                .all_false
                .iter()
                .all(|p| truthy(at(record, p)) != Some(true))
            && self.field.as_ref().is_none_or(|(p, active)| {
                at(record, p).is_some_and(|v| active.iter().any(|a| same_text(a, v)))
            })
    }
}

fn get_ci<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    // One pass over the members, without hashing the name (a SCIM object holds a handful;
    // a lookup by hash then a scan on a miss cost more): the member named exactly so wins,
    // else the first whose name differs only in case.
    let mut loose = None;
    for (k, v) in obj {
        if k == key {
            return Some(v);
        }
        if loose.is_none() && k.eq_ignore_ascii_case(key) {
            loose = Some(v);
        }
    }
    loose
}

impl ScimTarget {
    /// The value at this target in a SCIM resource, if any.
    pub fn extract<'a>(&self, resource: &'a Value) -> Option<&'a Value> {
        let root = resource.as_object()?;
        let container = match &self.extension {
            Some(urn) => get_ci(root, urn)?.as_object()?,
            None => root,
        };
        let mut v = get_ci(container, &self.attr)?;
        if self.primary {
            let items = v.as_array()?;
            v = items
                .iter()
                .find(|e| truthy(e.get("primary")) == Some(true))
                .or_else(|| items.first())?;
        }
        match &self.sub {
            Some(sub) => get_ci(v.as_object()?, sub),
            None => Some(v),
        }
    }

    fn insert(&self, out: &mut Map<String, Value>, value: Value, mv: Option<&MultiValuedSpec>) {
        let container = match &self.extension {
            Some(urn) => match out
                .entry(urn.clone())
                .or_insert_with(|| Value::Object(Map::new()))
            {
                Value::Object(m) => m,
                _ => return,
            },
            None => out,
        };
        let slot = if self.primary {
            let items = container
                .entry(self.attr.clone())
                .or_insert_with(|| Value::Array(vec![]));
            let Value::Array(items) = items else { return };
            if items.is_empty() {
                let mut element = Map::new();
                if let Some(mv) = mv {
                    if let Some(t) = &mv.r#type {
                        element.insert("type".into(), Value::String(t.clone()));
                    }
                    if mv.primary {
                        element.insert("primary".into(), Value::Bool(true));
                    }
                }
                items.push(Value::Object(element));
            }
            match items.first_mut() {
                Some(Value::Object(m)) => m,
                _ => return,
            }
        } else {
            container
        };
        match &self.sub {
            Some(sub) if self.primary => {
                slot.insert(sub.clone(), value);
            }
            Some(sub) => {
                if let Value::Object(m) = slot
                    .entry(self.attr.clone())
                    .or_insert_with(|| Value::Object(Map::new()))
                {
                    m.insert(sub.clone(), value);
                }
            }
            None => {
                slot.insert(self.attr.clone(), value);
            }
        }
    }
}

fn is_empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        _ => false,
    }
}

fn normalised(v: Option<&Value>) -> &Value {
    match v {
        None => &Value::Null,
        Some(Value::String(s)) if s.is_empty() => &Value::Null,
        Some(v) => v,
    }
}

impl AttrMap {
    /// SCIM value → one value per legacy field, through the value map or the transform.
    pub fn write(&self, value: Option<&Value>) -> Result<Vec<Value>, String> {
        match &self.values {
            Some(map) => map.write(value).map(|v| vec![v]),
            None => self.transform.write(value),
        }
    }
}

impl UserMapping {
    /// The legacy id of a record.
    pub fn legacy_id_of(&self, record: &Value) -> Option<LegacyId> {
        pointer_text(record, &self.legacy_id).map(LegacyId::new)
    }

    /// Whether the record is active (always true without an `[users.active]` table).
    pub fn is_active(&self, record: &Value) -> bool {
        self.active.as_ref().is_none_or(|a| a.eval(record))
    }

    /// The SCIM attributes of a legacy record (no `schemas`, `id` or `meta`).
    pub fn read(&self, record: &Value) -> Map<String, Value> {
        // Sized once: at most one top-level member per attribute, and `active`.
        let mut out = Map::with_capacity(self.attributes.len() + 1);
        // One buffer for every attribute's fields, not one allocation each.
        let mut fields: Vec<Option<&Value>> = Vec::new();
        for a in &self.attributes {
            fields.clear();
            fields.extend(a.legacy.iter().map(|f| f.get(record)));
            let v = match &a.values {
                Some(map) => map.read(fields.first().copied().flatten()),
                None => a.transform.read(&fields),
            };
            if let Some(v) = v {
                a.target
                    .insert(&mut out, v, self.multi_valued.get(&a.target.attr));
            }
        }
        // Without an active flag, every record that exists is active.
        let active = self.active.as_ref().is_none_or(|a| a.eval(record));
        out.insert("active".into(), Value::Bool(active));
        out
    }

    /// A time of the record (`created` or `last_modified` pointer) as RFC 3339 text.
    pub fn time(&self, record: &Value, pointer: Option<&str>) -> Option<String> {
        let raw = at(record, pointer?)?;
        match self.time_format {
            TimeFormat::Rfc3339 => raw.as_str().filter(|s| !s.is_empty()).map(str::to_owned),
            TimeFormat::UnixSeconds => {
                let secs = raw.as_i64().or_else(|| raw.as_str()?.trim().parse().ok())?;
                let t = time::OffsetDateTime::from_unix_timestamp(secs).ok()?;
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            }
        }
    }

    /// Every mapped legacy field for a SCIM resource (`Null` where the SCIM value is absent).
    /// Refuses a missing required attribute or a value a transform cannot write.
    pub fn write(&self, resource: &Value) -> Result<FieldValues, TranslateError> {
        self.validate(resource, None)?;
        let mut fields = FieldValues::new();
        for a in self.attributes.iter().filter(|a| !a.read_only) {
            let v = a.target.extract(resource);
            if (a.required || a.schema_required) && is_empty(v) {
                return Err(TranslateError::Required(a.scim.clone()));
            }
            let values = a.write(v).map_err(|problem| TranslateError::Value {
                attribute: a.scim.clone(),
                problem,
            })?;
            fields.extend(a.legacy.iter().cloned().zip(values));
        }
        Ok(fields)
    }

    /// The legacy fields of the mapped attributes whose SCIM value differs between `before`
    /// and `after` (a PATCH): values that did not change are not re-validated or re-sent.
    pub fn write_changed(
        &self,
        before: &Value,
        after: &Value,
    ) -> Result<FieldValues, TranslateError> {
        self.validate(after, Some(before))?;
        let mut fields = FieldValues::new();
        for a in self.attributes.iter().filter(|a| !a.read_only) {
            let (old, new) = (a.target.extract(before), a.target.extract(after));
            if normalised(old) == normalised(new) {
                continue;
            }
            if (a.required || a.schema_required) && is_empty(new) {
                return Err(TranslateError::Required(a.scim.clone()));
            }
            let values = a.write(new).map_err(|problem| TranslateError::Value {
                attribute: a.scim.clone(),
                problem,
            })?;
            fields.extend(a.legacy.iter().cloned().zip(values));
        }
        Ok(fields)
    }

    /// Checks the mapping's validation rules (`max_length`, `pattern`, `equals`,
    /// `accepted_types`) against a resource a client writes, before any legacy call. With
    /// `before` (a PATCH), only rules about attributes whose value changes are checked, so a
    /// value stored before a rule existed does not block an unrelated change.
    pub fn validate(&self, resource: &Value, before: Option<&Value>) -> Result<(), TranslateError> {
        let changed = |t: &ScimTarget| {
            before.is_none_or(|b| normalised(t.extract(b)) != normalised(t.extract(resource)))
        };
        for a in self.attributes.iter().filter(|a| !a.read_only) {
            // The SCIM schema's type first, whatever the row says: a mapping without rules
            // must not pass `"userName": {"login": …}` to the legacy app.
            if changed(&a.target)
                && let Some(v) = a.target.extract(resource)
                && !a.kind.admits(v)
            {
                return Err(TranslateError::Value {
                    attribute: a.scim.clone(),
                    problem: format!(
                        "must be {}, not {}",
                        a.kind.described(),
                        scim::schema::json_kind(v)
                    ),
                });
            }
            let other_changed = a.equals.as_ref().is_some_and(|(_, t)| changed(t));
            if !changed(&a.target) && !other_changed {
                continue;
            }
            let text = a
                .target
                .extract(resource)
                .and_then(Value::as_str)
                .unwrap_or("");
            let refuse = |problem: String| TranslateError::Value {
                attribute: a.scim.clone(),
                problem,
            };
            if !text.is_empty() {
                if let Some(max) = a.max_length
                    && text.chars().count() > max
                {
                    return Err(refuse(format!("is longer than {max} characters")));
                }
                if let Some(re) = &a.pattern
                    && !re.is_match(text)
                {
                    return Err(refuse(format!("{text:?} does not match {:?}", re.as_str())));
                }
            }
            if let Some((other, t)) = &a.equals {
                let theirs = t.extract(resource).and_then(Value::as_str).unwrap_or("");
                if !text.eq_ignore_ascii_case(theirs) {
                    return Err(refuse(format!(
                        "must equal {other} ({theirs:?}), is {text:?}"
                    )));
                }
            }
        }
        for (attr, mv) in &self.multi_valued {
            if mv.accepted_types.is_empty() {
                continue;
            }
            let items = resource
                .as_object()
                .and_then(|o| get_ci(o, attr))
                .and_then(Value::as_array);
            let old = before
                .and_then(|b| b.as_object())
                .and_then(|o| get_ci(o, attr));
            if before.is_some() && old.and_then(Value::as_array) == items {
                continue;
            }
            for item in items.into_iter().flatten() {
                let Some(t) = item
                    .as_object()
                    .and_then(|o| get_ci(o, "type"))
                    .and_then(Value::as_str)
                else {
                    continue;
                };
                if !mv.accepted_types.iter().any(|a| a.eq_ignore_ascii_case(t)) {
                    return Err(TranslateError::Value {
                        attribute: format!("{attr}.type"),
                        problem: format!(
                            "{t:?} is not accepted (accepted: {})",
                            mv.accepted_types.join(", ")
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// The body a write call sends, given the new field values and the current record: each
    /// field written at its place (nested fields with their parents, a keyed array element
    /// with its key), and nothing else.
    pub fn body(&self, kind: BodySpec, new: &FieldValues, current: Option<&Value>) -> Value {
        let mut body = Value::Object(Map::new());
        for (field, value) in new {
            let include = match kind {
                BodySpec::Mapped => !value.is_null(),
                BodySpec::Full => true,
                BodySpec::Changed => {
                    normalised(current.and_then(|c| field.get(c))) != normalised(Some(value))
                }
            };
            if include {
                field.set(&mut body, value.clone());
            }
        }
        body
    }

    /// Whether `record` holds every non-empty value of `fields` (a write's values found in
    /// the legacy app: compared as the `changed` body compares them).
    pub fn holds(&self, record: &Value, fields: &FieldValues) -> bool {
        fields.iter().all(|(field, value)| {
            value.is_null() || normalised(field.get(record)) == normalised(Some(value))
        })
    }

    /// The mapping row that writes `legacy_field` (as the legacy app names it in an error: the
    /// field as the mapping writes it, or its last member name, in this case or, failing
    /// that, in any case: `Login` for `login`), to name the SCIM attribute.
    pub fn row_for_field(&self, legacy_field: &str) -> Option<&AttrMap> {
        // The row that writes the field: a read-only row reading it too is not the one.
        let named = |same: &dyn Fn(&FieldPath) -> bool| {
            (self.attributes.iter())
                .filter(|a| !a.read_only)
                .find(|a| a.legacy.iter().any(same))
        };
        named(&|f| f.as_str() == legacy_field)
            .or_else(|| named(&|f| f.leaf() == legacy_field))
            .or_else(|| {
                named(&|f| {
                    f.as_str().eq_ignore_ascii_case(legacy_field)
                        || f.leaf().eq_ignore_ascii_case(legacy_field)
                })
            })
    }

    /// A legacy field problem told in SCIM terms: `<scim attribute>: <problem>`, with every
    /// mapped legacy field name in the problem text replaced by its SCIM attribute, so no
    /// legacy field name reaches a client.
    pub fn field_problem(&self, legacy_field: &str, problem: &str) -> String {
        let scrubbed = self
            .attributes
            .iter()
            .fold(problem.to_owned(), |text, row| {
                row.legacy.iter().fold(text, |t, f| {
                    let t = t.replace(f.as_str(), &row.scim);
                    if !f.as_str().contains('[') {
                        t.replace(f.leaf(), &row.scim)
                    } else {
                        t
                    }
                })
            });
        match self.row_for_field(legacy_field) {
            Some(row) => format!("{}: {scrubbed}", row.scim),
            None => format!("a value was refused: {scrubbed}"),
        }
    }

    /// The legacy query that answers `filter`, when the legacy app can (see [`push_down`]).
    pub fn push_down(&self, filter: &Filter) -> Option<Vec<(String, String)>> {
        push_down(&self.filters, &self.schema, filter)
    }
}

/// The legacy query parameters equivalent to `filter`, when every part of it is an
/// `attr eq "string"` the legacy list call filters on (joined with `and`).
///
/// A pushed-down answer is still filtered by the sidecar, so a legacy app that compares
/// case-insensitively where SCIM compares exactly is safe; the reverse is not pushed down.
pub fn push_down(
    filters: &[PushDown],
    schema: &ResourceSchema,
    filter: &Filter,
) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    collect_eq(filters, schema, filter, &mut out)?;
    Some(out)
}

fn collect_eq(
    filters: &[PushDown],
    schema: &ResourceSchema,
    filter: &Filter,
    out: &mut Vec<(String, String)>,
) -> Option<()> {
    match filter {
        Filter::And(a, b) => {
            collect_eq(filters, schema, a, out)?;
            collect_eq(filters, schema, b, out)
        }
        Filter::Compare(path, CompareOp::Eq, Value::String(value)) => {
            let resolved = schema.resolve(path)?;
            if resolved.extension.is_some() {
                return None;
            }
            let key = super::compile::filter_key(&resolved);
            let pd = filters.iter().find(|f| f.path == key)?;
            if pd.case == CaseSpec::Exact && !pd.scim_case_exact {
                return None;
            }
            if out.iter().any(|(q, _)| *q == pd.query) {
                return None;
            }
            out.push((pd.query.clone(), value.clone()));
            Some(())
        }
        _ => None,
    }
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

impl super::Auth {
    /// The `Authorization` header value for one call; `None` for OAuth 2.0, whose token the
    /// gateway adds.
    pub fn header(&self, vars: &Vars<'_>) -> Result<Option<String>, TranslateError> {
        Ok(match self {
            super::Auth::Basic { username, password } => {
                Some(basic(&username.render(vars)?, &password.render(vars)?))
            }
            super::Auth::Bearer { token } => Some(format!("Bearer {}", token.render(vars)?)),
            super::Auth::OAuth2 { .. } => None,
        })
    }

    /// The token request of OAuth 2.0 client credentials for a tenant (RFC 6749 §4.4.2:
    /// `grant_type=client_credentials`, the scope, the client's credentials per
    /// `client_auth`); `None` for the other kinds.
    pub fn token_request(
        &self,
        values: &crate::TenantValues,
    ) -> Result<Option<crate::TokenRequest>, TranslateError> {
        let super::Auth::OAuth2 {
            token_url,
            client_id,
            client_secret,
            scope,
            client_auth,
        } = self
        else {
            return Ok(None);
        };
        let vars = Vars {
            legacy_id: None,
            member_legacy_id: None,
            tenant: Some(values),
        };
        let (id, secret) = (client_id.render(&vars)?, client_secret.render(&vars)?);
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        if let Some(scope) = scope {
            form.append_pair("scope", &scope.render(&vars)?);
        }
        let authorization = match client_auth {
            crate::spec::ClientAuthSpec::Basic => {
                // RFC 6749 §2.3.1: each part form-encoded before Basic.
                let enc =
                    |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                Some(basic(&enc(&id), &enc(&secret)))
            }
            crate::spec::ClientAuthSpec::Body => {
                form.append_pair("client_id", &id);
                form.append_pair("client_secret", &secret);
                None
            }
        };
        Ok(Some(crate::TokenRequest {
            url: token_url.render(&vars)?,
            form: form.finish(),
            authorization,
        }))
    }
}

impl super::DoneRule {
    /// Whether a failure is this "already done" answer.
    pub fn holds(&self, f: &LegacyFailure) -> bool {
        self.status.is_none_or(|s| s == f.status)
            && self
                .code
                .as_ref()
                .is_none_or(|c| f.code.as_ref() == Some(c))
            && self
                .matches
                .as_ref()
                .is_none_or(|re| f.message.as_deref().is_some_and(|m| re.is_match(m)))
    }
}

impl Call {
    /// An answer of this call as a plan reads it: a 2xx as its record ([`Call::record_of`]),
    /// an "already done" failure (`done`) as an empty success, any other failure as it is.
    pub fn settle(&self, answer: &mut Answer) {
        match answer {
            Ok(v) => *v = self.record_of(v.take()),
            Err(f) if self.done.iter().any(|d| d.holds(f)) => *answer = Ok(Value::Null),
            Err(_) => {}
        }
    }

    /// The record in a 2xx answer of this call: at its `record` pointer (`Null` when the
    /// answer has nothing there, e.g. an empty answer), else the whole answer.
    pub fn record_of(&self, answer: Value) -> Value {
        match &self.record {
            None => answer,
            Some(pointer) => {
                let mut answer = answer;
                answer
                    .pointer_mut(pointer)
                    .map(Value::take)
                    .unwrap_or(Value::Null)
            }
        }
    }
}

impl Paging {
    /// Query parameters of the page that starts at 0-based `index` with `size` items.
    /// For page-numbered APIs `index` must be a multiple of `size`. For the styles whose
    /// pages follow a cursor or a link, the first page's (the size alone).
    pub fn query(&self, index: u64, size: u64) -> Vec<(String, String)> {
        let size = size.clamp(1, self.max_page_size);
        let mut q = match self.style {
            PagingStyle::Page => vec![(
                self.page_param.clone(),
                (self.first_page + index / size).to_string(),
            )],
            PagingStyle::Offset => vec![(self.offset_param.clone(), index.to_string())],
            PagingStyle::Cursor | PagingStyle::NextUrl | PagingStyle::LinkHeader => Vec::new(),
        };
        if let Some(name) = &self.size_param {
            q.push((name.clone(), size.to_string()));
        }
        q
    }

    /// Query parameters of the page after the one whose answer gave `cursor` (style cursor).
    pub fn after_cursor(&self, cursor: &str, size: u64) -> Vec<(String, String)> {
        let mut q = self.query(0, size);
        q.push((self.cursor_param.clone(), cursor.to_owned()));
        q
    }

    /// Whether a record's position in the list can be asked for directly (page numbers or
    /// offsets), rather than only by following the pages from the first.
    pub fn addressable(&self) -> bool {
        matches!(self.style, PagingStyle::Page | PagingStyle::Offset)
    }

    /// Where the page after this answer is, for the styles that say so in the answer: its
    /// cursor (style cursor) or its URL (style next_url, or link_header given the answer's
    /// `Link` next target). `None` on the last page.
    pub fn following(&self, answer: &Value, link_next: Option<&str>) -> Option<String> {
        let text = |ptr: &Option<String>| {
            ptr.as_deref()
                .and_then(|p| pointer_text(answer, p))
                .filter(|t| !t.trim().is_empty())
        };
        match self.style {
            PagingStyle::Page | PagingStyle::Offset => None,
            PagingStyle::Cursor => text(&self.cursor),
            PagingStyle::NextUrl => text(&self.next),
            PagingStyle::LinkHeader => link_next.map(str::to_owned),
        }
    }
}

/// The target of the `rel="next"` link of an RFC 8288 `Link` header value, if it has one
/// (`<https://api.example.com/users?page=2>; rel="next", <…>; rel="last"`).
pub fn link_next(header: &str) -> Option<String> {
    let mut rest = header;
    loop {
        let open = rest.find('<')?;
        let close = open + rest[open..].find('>')?;
        let target = rest[open + 1..close].trim();
        // The link's parameters run to the next comma outside quotes.
        let after = &rest[close + 1..];
        let mut quoted = false;
        let end = after
            .char_indices()
            .find(|&(_, c)| {
                if c == '"' {
                    quoted = !quoted;
                }
                c == ',' && !quoted
            })
            .map_or(after.len(), |(i, _)| i);
        let is_next = after[..end].split(';').any(|param| {
            param.split_once('=').is_some_and(|(name, value)| {
                name.trim().eq_ignore_ascii_case("rel")
                    && value
                        .trim()
                        .trim_matches('"')
                        .split_ascii_whitespace()
                        .any(|rel| rel.eq_ignore_ascii_case("next"))
            })
        });
        if is_next {
            return Some(target.to_owned());
        }
        rest = &after[end..];
    }
}

impl ListShape {
    /// The records of a list answer.
    pub fn items(&self, answer: Value) -> Result<Vec<Value>, TranslateError> {
        let mut answer = answer;
        match answer.pointer_mut(&self.items).map(Value::take) {
            Some(Value::Array(items)) => Ok(items),
            _ if self.items.is_empty() => Err(TranslateError::Answer(
                "is not an array of records (the call says no items pointer)".into(),
            )),
            _ => Err(TranslateError::Answer(format!(
                "has no array at {}",
                self.items
            ))),
        }
    }

    /// The total a list answer reports, if the app reports one.
    pub fn total(&self, answer: &Value) -> Option<u64> {
        at(answer, self.total.as_deref()?)?.as_u64()
    }

    /// Whether a list answer says more pages follow (`None` when the app does not say).
    pub fn more(&self, answer: &Value) -> Option<bool> {
        truthy(at(answer, self.more.as_deref()?))
    }
}

/// What a legacy call answered: the JSON of a 2xx (`Null` when the body is empty), or the
/// error answer read through `[legacy.errors]`.
pub type Answer = Result<Value, LegacyFailure>;

/// A legacy error answer, read through `[legacy.errors]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LegacyFailure {
    /// The legacy HTTP status.
    pub status: u16,
    /// The legacy error code.
    pub code: Option<String>,
    /// The legacy message (for logs only).
    pub message: Option<String>,
    /// Per-field problems: (legacy field, problem).
    pub fields: Vec<(String, String)>,
    /// The SCIM answer declared for the code.
    pub rule: Option<super::ErrorRule>,
    /// The existing record's id, for conflict codes.
    pub existing_id: Option<LegacyId>,
    /// Seconds to wait before retrying.
    pub retry_after: Option<u64>,
}

impl LegacyFailure {
    /// Whether the legacy app says the record does not exist (its declared status, else the
    /// HTTP status, is 404).
    pub fn is_not_found(&self) -> bool {
        self.rule.as_ref().map_or(self.status, |r| r.status) == 404
    }

    /// Whether this is the declared "a record with that key exists" error.
    pub fn is_conflict(&self) -> bool {
        self.rule.as_ref().is_some_and(|r| r.conflict)
    }
}

impl RetryAfterFormat {
    /// The seconds to wait a retry hint `value` says (`now_unix`: the current Unix time, for
    /// hints written as an epoch second; a time already past still waits one second).
    pub fn seconds(self, value: &str, now_unix: u64) -> Option<u64> {
        let v = value.trim().parse::<u64>().ok()?;
        Some(match self {
            RetryAfterFormat::Seconds => v,
            RetryAfterFormat::Epoch => v.saturating_sub(now_unix).max(1),
        })
    }
}

impl Legacy {
    /// What an answer means: the JSON of a 2xx (`Null` when the body is empty), or the error
    /// answer read through `[legacy.errors]`. `retry_after` is the answer's retry hint in
    /// seconds ([`RetryAfterFormat::seconds`]). A 2xx that is not JSON is not what the
    /// mapping declares.
    pub fn decode(
        &self,
        status: u16,
        body: &[u8],
        retry_after: Option<u64>,
    ) -> Result<Answer, TranslateError> {
        if (200..300).contains(&status) {
            if body.is_empty() {
                return Ok(Ok(Value::Null));
            }
            return serde_json::from_slice(body)
                .map(Ok)
                .map_err(|e| TranslateError::Answer(format!("is not JSON: {e}")));
        }
        Ok(Err(self.errors.interpret(status, body, retry_after)))
    }
}

impl Errors {
    /// Reads an error answer. Never fails: unreadable bodies give a failure without a code.
    /// `retry_after` is the answer's retry hint in seconds, when it has one.
    pub fn interpret(&self, status: u16, body: &[u8], retry_after: Option<u64>) -> LegacyFailure {
        // A body that is not JSON is its text (an app answering a sentence as text/plain).
        let json: Value = serde_json::from_slice(body).unwrap_or_else(|_| {
            std::str::from_utf8(body)
                .map(|t| Value::String(t.trim().to_owned()))
                .unwrap_or(Value::Null)
        });
        let code = self.code.as_ref().and_then(|p| pointer_text(&json, p));
        let sentences: Vec<&str> = match self.sentences.as_ref().and_then(|p| at(&json, p)) {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let rule = code
            .as_ref()
            .and_then(|c| self.codes.get(c))
            .or_else(|| {
                self.patterns
                    .iter()
                    .find(|(re, _)| sentences.iter().any(|s| re.is_match(s)))
                    .map(|(_, rule)| rule)
            })
            .or_else(|| self.by_status.get(&status))
            .cloned();
        let message = self
            .message
            .as_ref()
            .and_then(|p| pointer_text(&json, p))
            .or_else(|| (!sentences.is_empty()).then(|| sentences.join("; ")));
        let mut fields = Vec::new();
        if let Some(re) = &self.field_pattern {
            for s in &sentences {
                if let Some(c) = re.captures(s)
                    && let Some(field) = c.name("field")
                {
                    let problem = c.name("problem").map_or("", |m| m.as_str());
                    let field = field.as_str();
                    let field = self.field_names.get(field).map_or(field, String::as_str);
                    fields.push((field.to_owned(), problem.to_owned()));
                }
            }
        }
        if let Some(Value::Array(items)) = self.fields.as_ref().and_then(|p| at(&json, p)) {
            for item in items {
                let field = self
                    .field
                    .as_ref()
                    .and_then(|p| pointer_text(item, p))
                    .map(|f| self.field_names.get(&f).cloned().unwrap_or(f));
                let problem = self.problem.as_ref().and_then(|p| pointer_text(item, p));
                if let Some(field) = field {
                    fields.push((field, problem.unwrap_or_default()));
                }
            }
        }
        let existing_id = rule
            .as_ref()
            .and_then(|r| r.existing_id.as_ref())
            .and_then(|p| pointer_text(&json, p))
            .map(LegacyId::new);
        LegacyFailure {
            status,
            code,
            message,
            fields,
            rule,
            existing_id,
            retry_after,
        }
    }
}

/// Whether the field at `pointer` of `record` equals `expected` (a value from the mapping).
pub fn field_equals(record: &Value, pointer: &str, expected: &Value) -> bool {
    at(record, pointer) == Some(expected)
}

/// Whether a condition written in TOML holds for a record field.
pub fn field_test(record: &Value, test: &super::spec::FieldTest) -> bool {
    serde_json::to_value(&test.equals).is_ok_and(|v| field_equals(record, &test.field, &v))
}

impl super::Locked {
    /// Whether the group record is locked.
    pub fn matches(&self, record: &Value) -> bool {
        field_equals(record, &self.field, &self.equals)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{at, get_ci};

    #[test]
    fn a_scim_member_is_found_by_its_exact_name_first_then_in_any_case() {
        let o = json!({"userName": "a", "USERNAME": "b", "emails": [], "Title": "t"});
        let o = o.as_object().unwrap();
        assert_eq!(get_ci(o, "userName"), Some(&json!("a")));
        assert_eq!(
            get_ci(o, "USERNAME"),
            Some(&json!("b")),
            "exact beats an earlier loose"
        );
        assert_eq!(
            get_ci(o, "username"),
            Some(&json!("a")),
            "the first loose match"
        );
        assert_eq!(get_ci(o, "title"), Some(&json!("t")));
        assert_eq!(get_ci(o, "name"), None);
    }

    #[test]
    fn oauth2_client_credentials_in_the_form_body() {
        use crate::template::{Template, TenantValues};
        let t = |s: &str| Template::parse(s).unwrap();
        let auth = crate::Auth::OAuth2 {
            token_url: t("http://127.0.0.1:9000/token"),
            client_id: t("{var.client_id}"),
            client_secret: t("{secret.client_secret}"),
            scope: None,
            client_auth: crate::spec::ClientAuthSpec::Body,
        };
        let mut values = TenantValues::default();
        values.vars.insert("client_id".into(), "bot".into());
        values.secrets.insert("client_secret".into(), "a&b".into());
        let r = auth.token_request(&values).unwrap().unwrap();
        assert_eq!(r.url, "http://127.0.0.1:9000/token");
        assert_eq!(
            r.form,
            "grant_type=client_credentials&client_id=bot&client_secret=a%26b"
        );
        assert_eq!(r.authorization, None);
        assert!(
            !format!("{r:?}").contains("a%26b"),
            "the secret is not printed"
        );
        let vars = super::Vars::default();
        assert_eq!(
            auth.header(&vars).unwrap(),
            None,
            "the gateway adds the token"
        );
    }

    #[test]
    fn link_next_finds_rel_next_among_other_links() {
        use super::link_next;
        let h = r#"<https://api.example/u?page=2>; rel="next", <https://api.example/u?page=9>; rel="last""#;
        assert_eq!(
            link_next(h).as_deref(),
            Some("https://api.example/u?page=2")
        );
        let h = r#"<https://api.example/u?page=1>; rel="prev first", <https://api.example/u?page=3>; title="a, b"; rel=next"#;
        assert_eq!(
            link_next(h).as_deref(),
            Some("https://api.example/u?page=3")
        );
        assert_eq!(
            link_next(r#"<https://api.example/u?page=1>; rel="prev""#),
            None
        );
        assert_eq!(link_next("garbage"), None);
        assert_eq!(link_next("<unclosed; rel=next"), None);
    }

    #[test]
    fn at_answers_as_serde_json_pointer_does() {
        let v = json!({
            "a": {"b": [10, {"c": "x"}], "": 1, "d/e": 2, "f~g": 3},
            "list": [1, 2, 3],
        });
        for p in [
            "",
            "/",
            "/a",
            "/a/b",
            "/a/b/0",
            "/a/b/1/c",
            "/a/b/2",
            "/a/b/01",
            "/a/b/+1",
            "/a/b/-1",
            "/a/",
            "/a/d~1e",
            "/a/f~0g",
            "/missing",
            "/list/2",
            "/list/x",
            "a",
            "/a/b/0/deeper",
        ] {
            assert_eq!(at(&v, p), v.pointer(p), "pointer {p:?}");
        }
    }
}
