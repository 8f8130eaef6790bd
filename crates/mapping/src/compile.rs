//! Compiling a mapping file: TOML text → `MappingSpec` → checked `Mapping`.
//!
//! Every semantic problem is collected, so an admin sees all of them at once: unknown SCIM
//! attributes, unknown transforms, placeholders, arity mismatches, a legacy field mapped twice.

use std::collections::BTreeMap;

use super::spec::{self, CallSpec, MappingSpec, MethodSpec};
use super::{
    Active, AttrMap, Auth, BodyTemplate, Call, CompileError, DoneRule, ErrorRule, Errors,
    FieldPath, GroupMapping, Legacy, ListShape, Locked, Mapping, Paging, Problem, PushDown,
    ScimTarget, Template, Transform, UserCalls, UserMapping, ValueMap, WrittenActive,
};
use scim::error::ScimType;
use scim::filter::AttrPath;
use scim::schema::{self, AttrType, ResourceSchema};

impl Mapping {
    /// Parses and compiles mapping text; `source_name` labels messages (usually the path).
    pub fn from_toml(text: &str, source_name: &str) -> Result<Mapping, CompileError> {
        let spec: MappingSpec = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map_or((1, 1), |span| super::locate::line_col(text, span.start));
            CompileError::Syntax {
                source_name: source_name.to_owned(),
                line,
                column,
                message: e.message().trim_end().to_owned(),
            }
        })?;
        let mut problems = Problems::default();
        let mapping = compile(spec, &mut problems);
        match mapping {
            Some(m) if problems.0.is_empty() => Ok(m),
            _ => Err(CompileError::Invalid(
                problems
                    .0
                    .into_iter()
                    .map(|message| Problem {
                        source_name: source_name.to_owned(),
                        at: super::locate::locate(text, &message),
                        message,
                    })
                    .collect(),
            )),
        }
    }
}

#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn push(&mut self, p: impl Into<String>) {
        self.0.push(p.into());
    }

    fn template(&mut self, text: &str, at: &str) -> Option<Template> {
        match Template::parse(text) {
            Ok(t) => Some(t),
            Err(e) => {
                self.push(format!("{at}: {e}"));
                None
            }
        }
    }
}

fn compile(spec: MappingSpec, p: &mut Problems) -> Option<Mapping> {
    let legacy = compile_legacy(spec.legacy, p);
    let paging = legacy.as_ref().map(|l| l.paging.clone());
    let users = compile_users(spec.users, paging.as_ref(), p);
    // A conflict code that finds the existing record by a SCIM attribute needs a filter for it.
    if let (Some(legacy), Some(users)) = (&legacy, &users) {
        let rules = (legacy.errors.codes.iter())
            .map(|(code, rule)| (format!("codes.{code}"), rule))
            .chain(
                (legacy.errors.by_status.iter())
                    .map(|(status, rule)| (format!("by_status.{status}"), rule)),
            )
            .chain(
                (legacy.errors.patterns.iter().enumerate())
                    .map(|(i, (_, rule))| (format!("patterns[{i}]"), rule)),
            );
        for (code, rule) in rules {
            let Some(path) = &rule.find_existing_by else {
                continue;
            };
            let key = AttrPath::parse(path)
                .ok()
                .and_then(|a| users.schema.resolve(&a).map(|r| filter_key(&r)));
            if !key.is_some_and(|k| users.filters.iter().any(|f| f.path == k)) {
                p.push(format!(
                    "legacy.errors.{code}.find_existing_by: {path:?} is not one of \
                     [users.filters]"
                ));
            }
        }
    }
    // An error's name for a field must lead to a field a row writes.
    if let (Some(legacy), Some(users)) = (&legacy, &users) {
        for (label, field) in &legacy.errors.field_names {
            if !users
                .attributes
                .iter()
                .any(|a| a.legacy.iter().any(|f| f.as_str() == field))
            {
                p.push(format!(
                    "legacy.errors.field_names.{label}: {field:?} is no legacy field of \
                     [[users.attributes]]"
                ));
            }
        }
    }
    let groups = spec.groups.map(|g| compile_groups(g, paging.as_ref(), p));
    Some(Mapping {
        legacy: legacy?,
        users: users?,
        groups: groups.flatten(),
    })
}

fn compile_legacy(spec: spec::LegacySpec, p: &mut Problems) -> Option<Legacy> {
    let mut headers = Vec::new();
    for (name, value) in &spec.headers {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            p.push(format!(
                "legacy.headers: {name:?} is not a valid header name"
            ));
        }
        if let Some(t) = p.template(value, &format!("legacy.headers.{name}")) {
            headers.push((name.as_str().into(), t));
        }
    }
    let auth = spec.auth.as_ref().and_then(|a| {
        if spec
            .headers
            .keys()
            .any(|h| h.eq_ignore_ascii_case("authorization"))
        {
            p.push("legacy.auth: legacy.headers has an Authorization header too: keep one of them");
        }
        match a {
            spec::AuthSpec::Basic { username, password } => {
                let u = p.template(username, "legacy.auth.username");
                let pw = secret_template(password, "password", "api_password", p);
                Some(Auth::Basic {
                    username: u?,
                    password: pw?,
                })
            }
            spec::AuthSpec::Bearer { token } => {
                let t = secret_template(token, "token", "api_token", p);
                Some(Auth::Bearer { token: t? })
            }
            spec::AuthSpec::Oauth2ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
                client_auth,
            } => {
                if !(token_url.starts_with('/') || token_url.starts_with("http://")) {
                    p.push(format!(
                        "legacy.auth.token_url: {token_url:?} must be a path on the legacy app \
                         (\"/oauth/token\") or an http:// URL (the sidecar reaches its legacy \
                         side over plain http, on the same host or pod)"
                    ));
                }
                let url = p.template(token_url, "legacy.auth.token_url");
                let id = p.template(client_id, "legacy.auth.client_id");
                let secret = secret_template(client_secret, "client_secret", "client_secret", p);
                let scope = match scope {
                    Some(s) => Some(p.template(s, "legacy.auth.scope")?),
                    None => None,
                };
                Some(Auth::OAuth2 {
                    token_url: url?,
                    client_id: id?,
                    client_secret: secret?,
                    scope,
                    client_auth: *client_auth,
                })
            }
        }
    });
    let pg = spec.paging;
    use spec::PagingStyle as S;
    let style_name = match pg.style {
        S::Page => "page",
        S::Offset => "offset",
        S::Cursor => "cursor",
        S::NextUrl => "next_url",
        S::LinkHeader => "link_header",
    };
    // Each style's keys: required with it, meaningless (and refused) with another.
    for (key, given, styles) in [
        ("page_param", pg.page_param.is_some(), &[S::Page][..]),
        ("offset_param", pg.offset_param.is_some(), &[S::Offset][..]),
        ("cursor_param", pg.cursor_param.is_some(), &[S::Cursor][..]),
        ("cursor", pg.cursor.is_some(), &[S::Cursor][..]),
        ("next", pg.next.is_some(), &[S::NextUrl][..]),
        ("first_page", pg.first_page != 1, &[S::Page][..]),
    ] {
        let belongs = styles.contains(&pg.style);
        if belongs && !given && key != "first_page" {
            p.push(format!("legacy.paging: style \"{style_name}\" needs {key}"));
        }
        if !belongs && given {
            p.push(format!(
                "legacy.paging.{key}: style \"{style_name}\" does not use it"
            ));
        }
    }
    if !matches!(pg.style, S::Page | S::Offset) && pg.more.is_some() {
        p.push(format!(
            "legacy.paging.more: with style \"{style_name}\" the cursor or link says whether \
             a page follows"
        ));
    }
    if matches!(pg.style, S::Page | S::Offset) && pg.size_param.is_none() {
        p.push(format!(
            "legacy.paging: style \"{style_name}\" needs size_param"
        ));
    }
    check_pointer(pg.cursor.as_ref(), "legacy.paging.cursor", p);
    check_pointer(pg.next.as_ref(), "legacy.paging.next", p);
    // Two parameters with one name: the app would read one value for both.
    let named: Vec<(&str, &String)> = [
        ("page_param", pg.page_param.as_ref()),
        ("offset_param", pg.offset_param.as_ref()),
        ("cursor_param", pg.cursor_param.as_ref()),
        ("size_param", pg.size_param.as_ref()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    for (i, (k1, v1)) in named.iter().enumerate() {
        for (k2, v2) in &named[i + 1..] {
            if v1 == v2 {
                p.push(format!(
                    "legacy.paging.{k2}: {v2:?} is also {k1}: one parameter cannot be both"
                ));
            }
        }
    }
    if pg.max_page_size == 0 {
        p.push("legacy.paging.max_page_size must be at least 1");
    }
    for (key, ptr) in [
        ("items", Some(&pg.items)),
        ("total", pg.total.as_ref()),
        ("more", pg.more.as_ref()),
    ] {
        check_pointer(ptr, &format!("legacy.paging.{key}"), p);
    }
    let e = spec.errors;
    for (key, ptr) in [
        ("code", e.code.as_ref()),
        ("message", e.message.as_ref()),
        ("fields", e.fields.as_ref()),
        ("field", e.field.as_ref()),
        ("problem", e.problem.as_ref()),
    ] {
        check_pointer(ptr, &format!("legacy.errors.{key}"), p);
    }
    let codes = e
        .codes
        .iter()
        .map(|(code, r)| {
            (
                code.clone(),
                error_rule(r, &format!("legacy.errors.codes.{code}"), p),
            )
        })
        .collect();
    let mut by_status = BTreeMap::new();
    for (key, r) in &e.by_status {
        let at = format!("legacy.errors.by_status.{key}");
        match key.parse::<u16>() {
            Ok(status) if (400..=599).contains(&status) => {
                by_status.insert(status, error_rule(r, &at, p));
            }
            _ => p.push(format!(
                "{at}: {key:?} is not an HTTP error status (400 to 599)"
            )),
        }
    }
    check_pointer(e.sentences.as_ref(), "legacy.errors.sentences", p);
    let field_pattern = e.field_pattern.as_deref().and_then(|pat| {
        let re = regex(pat, "legacy.errors.field_pattern", p)?;
        let names: Vec<&str> = re.capture_names().flatten().collect();
        if !(names.contains(&"field") && names.contains(&"problem")) {
            p.push(format!(
                "legacy.errors.field_pattern: {pat:?} needs the named groups (?<field>…) and \
                 (?<problem>…)"
            ));
        }
        Some(re)
    });
    if (field_pattern.is_some() || !e.patterns.is_empty()) && e.sentences.is_none() {
        p.push(
            "legacy.errors: field_pattern and patterns read sentences: say where they are \
             with sentences",
        );
    }
    let mut patterns = Vec::new();
    for (i, pt) in e.patterns.iter().enumerate() {
        let at = format!("legacy.errors.patterns[{i}]");
        let rule = error_rule(
            &spec::ErrorCodeSpec {
                status: pt.status,
                scim_type: pt.scim_type.clone(),
                conflict: pt.conflict,
                existing_id: None,
                find_existing_by: pt.find_existing_by.clone(),
                skip_member: pt.skip_member,
            },
            &at,
            p,
        );
        if let Some(re) = regex(&pt.matches, &format!("{at}.matches"), p) {
            patterns.push((re, rule));
        }
    }
    // A refused write is the client's values, whatever the app's wording: 400 invalidValue.
    for status in [400, 422] {
        by_status.entry(status).or_insert(ErrorRule {
            status: 400,
            scim_type: Some(ScimType::InvalidValue),
            conflict: false,
            existing_id: None,
            find_existing_by: None,
            skip_member: false,
        });
    }
    Some(Legacy {
        name: spec.name,
        headers,
        auth,
        paging: Paging {
            style: pg.style,
            page_param: pg.page_param.unwrap_or_default(),
            offset_param: pg.offset_param.unwrap_or_default(),
            size_param: pg.size_param,
            cursor_param: pg.cursor_param.unwrap_or_default(),
            cursor: pg.cursor,
            next: pg.next,
            first_page: pg.first_page,
            max_page_size: pg.max_page_size.max(1),
            shape: ListShape {
                items: pg.items,
                total: pg.total,
                more: pg.more,
            },
        },
        errors: Errors {
            code: e.code,
            message: e.message,
            fields: e.fields,
            field: e.field,
            problem: e.problem,
            retry_after_header: e.retry_after_header.map(Into::into),
            retry_after_format: e.retry_after_format,
            codes,
            by_status,
            sentences: e.sentences,
            field_pattern,
            field_names: e.field_names,
            patterns,
        },
    })
}

/// Compiles a regular expression of the mapping, or says why it is not one.
fn regex(pattern: &str, at: &str, p: &mut Problems) -> Option<regex::Regex> {
    match regex::Regex::new(pattern) {
        Ok(re) => Some(re),
        Err(e) => {
            p.push(format!(
                "{at}: {pattern:?} is not a regular expression: {e}"
            ));
            None
        }
    }
}

/// Checks and compiles one entry of `codes` or `by_status`.
fn error_rule(rule: &spec::ErrorCodeSpec, at: &str, p: &mut Problems) -> ErrorRule {
    if !(400..=599).contains(&rule.status) {
        p.push(format!("{at}: status {} is not 4xx or 5xx", rule.status));
    }
    if let Some(t) = &rule.scim_type
        && ScimType::parse(t).is_none()
    {
        p.push(format!(
            "{at}: unknown scim_type {t:?} (known: {})",
            ScimType::ALL.map(ScimType::as_str).join(", ")
        ));
    }
    if rule.conflict && rule.existing_id.is_none() && rule.find_existing_by.is_none() {
        p.push(format!(
            "{at}: conflict = true needs existing_id or find_existing_by (how to find the \
             existing account)"
        ));
    }
    check_pointer(rule.existing_id.as_ref(), at, p);
    ErrorRule {
        status: rule.status,
        scim_type: rule.scim_type.as_deref().and_then(ScimType::parse),
        conflict: rule.conflict,
        existing_id: rule.existing_id.clone(),
        find_existing_by: rule.find_existing_by.clone(),
        skip_member: rule.skip_member,
    }
}

/// The template of a credential in `[legacy.auth]` (`key`), which must name a tenant secret
/// (`{secret.<example>}`): a mapping file is not a secret store.
fn secret_template(text: &str, key: &str, example: &str, p: &mut Problems) -> Option<Template> {
    let t = p.template(text, &format!("legacy.auth.{key}"));
    if t.as_ref().is_some_and(|t| !t.uses_secret()) {
        let what = if key == "client_secret" {
            "secret"
        } else {
            key
        };
        p.push(format!(
            "legacy.auth.{key}: put the {what} in the tenant's secrets and name it, e.g. \
             \"{{secret.{example}}}\" (a mapping is not a secret)"
        ));
    }
    t
}

fn check_pointer(ptr: Option<&String>, at: &str, p: &mut Problems) {
    if let Some(ptr) = ptr
        && !ptr.is_empty()
        && !ptr.starts_with('/')
    {
        p.push(format!(
            "{at}: {ptr:?} is not a JSON pointer (it must start with '/')"
        ));
    }
}

/// Compiles one call; `list` is the API's paging for list calls (whose answers are pages),
/// `None` for calls answering one record or nothing.
fn compile_call(
    spec: &CallSpec,
    at: &str,
    list: Option<&Paging>,
    p: &mut Problems,
) -> Option<Call> {
    let method = match spec.method {
        MethodSpec::Get => http::Method::GET,
        MethodSpec::Post => http::Method::POST,
        MethodSpec::Put => http::Method::PUT,
        MethodSpec::Patch => http::Method::PATCH,
        MethodSpec::Delete => http::Method::DELETE,
    };
    if !spec.path.starts_with('/') {
        p.push(format!("{at}.path: {:?} must start with '/'", spec.path));
    }
    let path = p.template(&spec.path, &format!("{at}.path"));
    let mut query = Vec::new();
    for (k, v) in &spec.query {
        if let Some(t) = p.template(v, &format!("{at}.query.{k}")) {
            query.push((k.clone(), t));
        }
    }
    // A query string written into the path is kept and extended; a parameter the sidecar
    // adds itself must not be there twice (which one would the app read?).
    if let Some((_, written)) = spec.path.split_once('?') {
        let mut added: Vec<&str> = spec.query.keys().map(String::as_str).collect();
        if let Some(pg) = list {
            added.extend([
                pg.page_param.as_str(),
                pg.offset_param.as_str(),
                pg.cursor_param.as_str(),
            ]);
            added.extend(pg.size_param.as_deref());
            added.retain(|k| !k.is_empty());
        }
        for (k, _) in form_urlencoded::parse(written.as_bytes()) {
            if !k.is_empty() && added.contains(&k.as_ref()) {
                p.push(format!(
                    "{at}.path: the query parameter {k:?} is written in the path and also sent \
                     by the sidecar (paging or query): keep one"
                ));
            }
        }
    }
    check_pointer(spec.member_id.as_ref(), &format!("{at}.member_id"), p);
    if let Some(b) = &spec.batch {
        if b.max == 0 {
            p.push(format!("{at}.batch.max must be at least 1"));
        }
        if b.field.is_empty() {
            p.push(format!(
                "{at}.batch.field must name the body field of the ids"
            ));
        }
    }
    check_pointer(
        spec.member_display.as_ref(),
        &format!("{at}.member_display"),
        p,
    );
    check_pointer(spec.record.as_ref(), &format!("{at}.record"), p);
    let envelope = spec.envelope.as_deref().and_then(|e| {
        if !e.starts_with('/') || e.len() < 2 {
            p.push(format!(
                "{at}.envelope: {e:?} must be a JSON pointer naming where the body goes, \
                 e.g. \"/user\""
            ));
            return None;
        }
        match FieldPath::parse(e) {
            Ok(path) => Some(path),
            Err(err) => {
                p.push(format!("{at}.envelope: {err}"));
                None
            }
        }
    });
    if spec.envelope.is_some() && matches!(spec.method, MethodSpec::Get | MethodSpec::Delete) {
        p.push(format!(
            "{at}.envelope: a {} call sends no body to wrap",
            method.as_str()
        ));
    }
    for (key, ptr) in [
        ("items", spec.items.as_ref()),
        ("total", spec.total.as_ref()),
        ("more", spec.more.as_ref()),
    ] {
        check_pointer(ptr, &format!("{at}.{key}"), p);
        if ptr.is_some() && list.is_none() {
            p.push(format!(
                "{at}.{key}: only list calls answer pages (use record for a call answering \
                 one record)"
            ));
        }
    }
    if list.is_some() && spec.items.is_none() && (spec.total.is_some() || spec.more.is_some()) {
        p.push(format!(
            "{at}: total and more go with the call's own items (else [legacy.paging] says \
             where all three are)"
        ));
    }
    if list.is_some() && spec.record.is_some() {
        p.push(format!(
            "{at}.record: a list call answers pages: say where its records are with items"
        ));
    }
    let mut done = Vec::new();
    for (i, d) in spec.done.iter().enumerate() {
        let at_done = format!("{at}.done[{i}]");
        if d.status.is_none() && d.code.is_none() && d.matches.is_none() {
            p.push(format!(
                "{at_done}: give status, code or matches (an empty entry would take every \
                 failure for success)"
            ));
            continue;
        }
        if d.status.is_some_and(|s| !(400..=599).contains(&s)) {
            p.push(format!(
                "{at_done}.status: an answer meaning done is an error status"
            ));
        }
        let matches = d
            .matches
            .as_deref()
            .and_then(|m| regex(m, &format!("{at_done}.matches"), p));
        done.push(DoneRule {
            status: d.status,
            code: d.code.clone(),
            matches,
        });
    }
    if !spec.done.is_empty() && matches!(spec.method, MethodSpec::Get) {
        p.push(format!(
            "{at}.done: a read is never \"already done\"; done is for writes that refuse \
             repeats"
        ));
    }
    if spec.paging.is_some() && list.is_none() {
        p.push(format!("{at}.paging: only list calls are paged"));
    }
    if spec.complete.is_some() && at != "users.calls.list" {
        p.push(format!(
            "{at}.complete: only users.calls.list completes its records"
        ));
    }
    let shape = list.map(|pg| match &spec.items {
        Some(items) => ListShape {
            items: items.clone(),
            total: spec.total.clone(),
            more: spec.more.clone(),
        },
        None => pg.shape.clone(),
    });
    let (body, fixed_body) = match &spec.body {
        None => (None, None),
        Some(spec::BodyField::Kind(kind)) => (Some(*kind), None),
        Some(spec::BodyField::Fixed(text)) if text.trim_start().starts_with(['{', '[']) => {
            match BodyTemplate::parse(text) {
                Ok(t) => {
                    if t.vars().iter().any(super::template::Var::is_secret) {
                        p.push(format!(
                            "{at}.body: a secret cannot go in a body (bodies may be logged); \
                             send it in a header"
                        ));
                    }
                    (None, Some(t))
                }
                Err(e) => {
                    p.push(format!("{at}.body: {e}"));
                    (None, None)
                }
            }
        }
        Some(spec::BodyField::Fixed(text)) => {
            p.push(format!(
                "{at}.body: {text:?} is neither \"mapped\", \"changed\", \"full\" nor a \
                 JSON body ('{{…}}')"
            ));
            (None, None)
        }
    };
    if fixed_body.is_some() && matches!(spec.method, MethodSpec::Get) {
        p.push(format!("{at}.body: a GET call sends no body"));
    }
    if fixed_body.is_some() && spec.envelope.is_some() {
        p.push(format!(
            "{at}.envelope: a fixed body is sent as written: put the envelope in it"
        ));
    }
    let call = Call {
        name: at.replacen(".calls.", ".", 1).into(),
        method,
        path: path?,
        query,
        body,
        fixed_body,
        record: spec.record.clone(),
        envelope,
        list: shape,
        done,
        unpaged: spec.paging == Some(spec::CallPaging::None),
        complete: spec.complete == Some(spec::Complete::Get),
        member_id: spec.member_id.clone(),
        member_display: spec.member_display.clone(),
        batch: spec.batch.clone(),
        idempotent: spec.idempotent.unwrap_or(matches!(
            spec.method,
            MethodSpec::Get | MethodSpec::Put | MethodSpec::Delete
        )),
        then: Vec::new(),
    };
    if !matches!(at, "groups.calls.add_member" | "groups.calls.remove_member") {
        no_member_var(&call, at, p);
    }
    let mut call = call;
    if !spec.then.is_empty() {
        let sequence = matches!(
            at,
            "users.calls.deactivate"
                | "users.calls.reactivate"
                | "users.calls.delete"
                | "groups.calls.delete"
        );
        // A step's own `then` is told once, below, where its step is compiled.
        if !sequence && !at.contains(".then[") {
            p.push(format!(
                "{at}.then: only deactivate, reactivate and delete calls can be a sequence \
                 (a call whose answer the sidecar reads, or that sends mapped fields, is one call)"
            ));
        }
        for (i, step) in spec.then.iter().enumerate() {
            let step_at = format!("{at}.then[{i}]");
            if !step.then.is_empty() {
                p.push(format!(
                    "{step_at}.then: a sequence is one list: put these calls in {at}.then"
                ));
            }
            if matches!(step.body, Some(spec::BodyField::Kind(_))) {
                p.push(format!(
                    "{step_at}.body: a call of a sequence sends no mapped fields (give a fixed \
                     JSON body, or none)"
                ));
            }
            if let Some(c) = compile_call(step, &step_at, None, p) {
                call.then.push(c);
            }
        }
    }
    Some(call)
}

/// A call about no particular record (list, create) cannot use `{legacy_id}` or
/// `{member_legacy_id}`: there is no value for them there.
fn no_record_vars(call: &Call, at: &str, p: &mut Problems) {
    use super::template::Var;
    let templates = std::iter::once(&call.path).chain(call.query.iter().map(|(_, t)| t));
    if templates
        .flat_map(|t| t.vars())
        .any(|v| matches!(v, Var::LegacyId | Var::MemberLegacyId))
    {
        p.push(format!(
            "{at}.path: {{legacy_id}} has no value in this call (it is about no one record)"
        ));
    }
}

/// `{member_legacy_id}` has a value only in the calls about one member of a group.
fn no_member_var(call: &Call, at: &str, p: &mut Problems) {
    use super::template::Var;
    let in_templates = std::iter::once(&call.path)
        .chain(call.query.iter().map(|(_, t)| t))
        .flat_map(|t| t.vars())
        .any(|v| *v == Var::MemberLegacyId);
    let in_body = call
        .fixed_body
        .as_ref()
        .is_some_and(|b| b.vars().contains(&Var::MemberLegacyId));
    if in_templates || in_body {
        p.push(format!(
            "{at}: {{member_legacy_id}} has a value only in groups.calls.add_member and \
             remove_member"
        ));
    }
}

/// A call whose body the sidecar builds (mapped fields, a name, a batch of ids) cannot have
/// a fixed one.
fn no_fixed_body(call: Option<&Call>, at: &str, what: &str, p: &mut Problems) {
    if call.is_some_and(|c| c.fixed_body.is_some()) {
        p.push(format!(
            "{at}.body: this call sends {what}; a fixed body is for calls that send none of \
             their own"
        ));
    }
}

/// A call about one record names it: `{legacy_id}` in its path or in a query parameter
/// (`query = { group_id = "{legacy_id}" }`: a list filtered by the record).
fn require_var(call: &Call, var: super::template::Var, at: &str, p: &mut Problems) {
    let in_query = call.query.iter().any(|(_, t)| t.vars().any(|v| *v == var));
    if !in_query && !call.path.vars().any(|v| *v == var) {
        p.push(format!(
            "{at}.path must contain the placeholder for the record's id (or a query parameter \
             must)"
        ));
    }
}

fn compile_users(
    spec: spec::UsersSpec,
    paging: Option<&Paging>,
    p: &mut Problems,
) -> Option<UserMapping> {
    use super::template::Var;
    let c = &spec.calls;
    let get = compile_call(&c.get, "users.calls.get", None, p);
    let list = compile_call(&c.list, "users.calls.list", paging, p);
    let create = compile_call(&c.create, "users.calls.create", None, p);
    let update = compile_call(&c.update, "users.calls.update", None, p);
    let opt = |call: &Option<CallSpec>, at: &str, p: &mut Problems| {
        call.as_ref().and_then(|c| compile_call(c, at, None, p))
    };
    let deactivate = opt(&c.deactivate, "users.calls.deactivate", p);
    let reactivate = opt(&c.reactivate, "users.calls.reactivate", p);
    let delete_call = opt(&c.delete, "users.calls.delete", p);
    let take_over = opt(&c.take_over, "users.calls.take_over", p);
    for (call, at) in [
        (take_over.as_ref(), "users.calls.take_over"),
        (get.as_ref(), "users.calls.get"),
        (update.as_ref(), "users.calls.update"),
        (deactivate.as_ref(), "users.calls.deactivate"),
        (reactivate.as_ref(), "users.calls.reactivate"),
        (delete_call.as_ref(), "users.calls.delete"),
    ] {
        if let Some(call) = call {
            require_var(call, Var::LegacyId, at, p);
        }
    }
    // A call about no particular record has no value for {legacy_id}.
    for (call, at) in [
        (list.as_ref(), "users.calls.list"),
        (create.as_ref(), "users.calls.create"),
    ] {
        if let Some(call) = call {
            no_record_vars(call, at, p);
        }
    }
    no_fixed_body(
        create.as_ref(),
        "users.calls.create",
        "the mapped fields",
        p,
    );
    no_fixed_body(
        update.as_ref(),
        "users.calls.update",
        "the mapped fields",
        p,
    );
    if !c.create.done.is_empty() {
        p.push(
            "users.calls.create.done: a create answered \"already done\" has no record to \
             answer with; describe the conflict in [legacy.errors] and on_conflict",
        );
    }
    // A declared call nothing can make is a mistake waiting to be found at 2 a.m.: the
    // lifecycle the admin meant is not the one written.
    let unused = |call: &Option<CallSpec>, at: &str, why: &str, used: bool, p: &mut Problems| {
        if call.is_some() && !used {
            p.push(format!("{at} is never used: {why}"));
        }
    };
    let written = spec
        .active
        .as_ref()
        .is_some_and(|a| a.set_active.is_some() || a.set_inactive.is_some());
    let activates = spec.active.is_some()
        && spec.lifecycle.deactivate == spec::DeactivateSpec::Call
        && !written;
    unused(
        &c.deactivate,
        "users.calls.deactivate",
        "without [users.active] (or with lifecycle.deactivate = \"delete\", or with users.active.set_inactive) no user is ever deactivated by a call",
        activates,
        p,
    );
    unused(
        &c.reactivate,
        "users.calls.reactivate",
        "without [users.active] (or with lifecycle.deactivate = \"delete\", or with users.active.set_active) no user is ever reactivated by a call",
        activates,
        p,
    );
    unused(
        &c.delete,
        "users.calls.delete",
        "neither lifecycle.delete nor lifecycle.deactivate is \"delete\"",
        spec.lifecycle.delete == spec::DeleteSpec::Delete
            || spec.lifecycle.deactivate == spec::DeactivateSpec::Delete,
        p,
    );
    unused(
        &c.take_over,
        "users.calls.take_over",
        "no lifecycle.on_conflict rule says take_over_and_update",
        spec.lifecycle
            .on_conflict
            .iter()
            .any(|r| r.then == spec::ConflictThen::TakeOverAndUpdate),
        p,
    );
    // A body written but refused is reported once, where it is written.
    if c.create.body.is_none() {
        p.push("users.calls.create needs a body (\"mapped\" or \"full\")");
    }
    if c.update.body.is_none() {
        p.push("users.calls.update needs a body (\"changed\" or \"full\")");
    }
    // Lifecycle checks look at what is declared, so a broken call is reported once.
    // A state written by the update call deactivates and reactivates as the calls would.
    let (has_deactivate, has_reactivate) = (
        c.deactivate.is_some() || written,
        c.reactivate.is_some() || written,
    );
    let delete = spec.lifecycle.delete;
    match delete {
        spec::DeleteSpec::Deactivate if !has_deactivate => {
            p.push("users.lifecycle.delete = \"deactivate\" needs users.calls.deactivate")
        }
        spec::DeleteSpec::Delete if c.delete.is_none() => {
            p.push("users.lifecycle.delete = \"delete\" needs users.calls.delete")
        }
        _ => {}
    }
    if let Some(active) = &spec.active {
        for ptr in active.all_true.iter().chain(&active.all_false) {
            check_pointer(Some(ptr), "users.active", p);
        }
        check_pointer(active.field.as_ref(), "users.active.field", p);
        if active.all_true.is_empty() && active.all_false.is_empty() && active.field.is_none() {
            p.push(
                "users.active: names no flag and no field, so every user would read active: \
                 give all_true / all_false, or field and active",
            );
        }
        if active.field.is_some() && active.active.is_empty() {
            p.push("users.active.field needs active, the values meaning active");
        }
        if active.field.is_none() && !active.active.is_empty() {
            p.push("users.active.active needs field, the state field they are values of");
        }
        if written {
            if active.set_active.is_none() || active.set_inactive.is_none() {
                p.push("users.active: set_active and set_inactive go together");
            }
            if active.field.is_none() {
                p.push("users.active.set_active and set_inactive need field, the state field they write");
            }
            let is_active = |v: &toml::Value| active.active.iter().any(|a| a == v);
            if let Some(v) = &active.set_active
                && !is_active(v)
            {
                p.push(format!(
                    "users.active.set_active: {v} is not one of active, so the user written \
                     would read inactive"
                ));
            }
            if let Some(v) = &active.set_inactive
                && is_active(v)
            {
                p.push(format!(
                    "users.active.set_inactive: {v} is one of active, so the user written \
                     would read active"
                ));
            }
        }
    } else if delete == spec::DeleteSpec::Deactivate
        && has_deactivate
        && spec.lifecycle.deactivate == spec::DeactivateSpec::Call
    {
        p.push(
            "users.lifecycle.delete = \"deactivate\" needs [users.active] to tell active records",
        );
    }
    if spec.active.is_some() && !(has_deactivate && has_reactivate) {
        p.push("users.active needs both users.calls.deactivate and users.calls.reactivate");
    }
    if spec.lifecycle.deactivate == spec::DeactivateSpec::Delete && c.delete.is_none() {
        p.push("users.lifecycle.deactivate = \"delete\" needs users.calls.delete");
    }
    if spec.lifecycle.deactivate == spec::DeactivateSpec::Delete && spec.active.is_some() {
        p.push("users.lifecycle.deactivate = \"delete\" leaves no inactive records: drop [users.active]");
    }
    for rule in &spec.lifecycle.on_conflict {
        if let spec::ConflictWhen::Field(test) = &rule.when {
            check_pointer(
                Some(&test.field),
                "users.lifecycle.on_conflict.when.field",
                p,
            );
        }
        if matches!(
            rule.when,
            spec::ConflictWhen::Keyword(spec::ConflictKeyword::SameExternalId)
        ) && !spec.attributes.iter().any(|a| a.scim == "externalId")
        {
            p.push(
                "users.lifecycle.on_conflict: same_external_id reads the existing record's \
                 externalId through the attribute rows: map externalId to a legacy field",
            );
        }
        if rule.then == spec::ConflictThen::TakeOverAndUpdate && c.take_over.is_none() {
            p.push("users.lifecycle.on_conflict: take_over_and_update needs users.calls.take_over");
        }
        if rule.then == spec::ConflictThen::ReactivateAndUpdate && !has_reactivate {
            p.push(
                "users.lifecycle.on_conflict: reactivate_and_update needs users.calls.reactivate",
            );
        }
    }
    check_pointer(Some(&spec.legacy_id), "users.legacy_id", p);
    check_pointer(spec.created.as_ref(), "users.created", p);
    check_pointer(spec.last_modified.as_ref(), "users.last_modified", p);
    check_pointer(spec.fingerprint.as_ref(), "users.fingerprint", p);
    if spec.fingerprint.as_deref() == Some(spec.legacy_id.as_str()) {
        p.push("users.fingerprint: the legacy id itself tells no two accounts apart; name a value that never changes, such as the creation time");
    }

    let mut schema = ResourceSchema {
        core: schema::user_schema(),
        extensions: vec![schema::enterprise_user_schema()],
    };
    let mut attributes = Vec::new();
    let mut fields_seen: Vec<FieldPath> = Vec::new();
    let mut targets_seen: Vec<ScimTarget> = Vec::new();
    for (i, row) in spec.attributes.iter().enumerate() {
        let at = format!("users.attributes[{i}]");
        let target = match resolve_target(&row.scim, &schema) {
            Ok(t) => t,
            Err(e) => {
                p.push(format!("{at}.scim: {e}"));
                continue;
            }
        };
        if targets_seen.contains(&target) {
            p.push(format!("{at}.scim: {:?} is mapped twice", row.scim));
        }
        targets_seen.push(target.clone());
        let transform = match &row.transform {
            None => Transform::Identity,
            Some(name) => match Transform::from_name(name) {
                Some(t) => t,
                None => {
                    let known: Vec<_> = Transform::ALL.iter().map(|(n, _)| *n).collect();
                    p.push(format!(
                        "{at}.transform: unknown transform {name:?} (known: {})",
                        known.join(", ")
                    ));
                    continue;
                }
            },
        };
        let values = row.values.as_ref().and_then(|pairs| {
            value_map(pairs, &row.scim, &schema, row.transform.is_some(), &at, p)
        });
        let legacy = match &row.legacy {
            spec::LegacyFields::One(f) => vec![f.clone()],
            spec::LegacyFields::Many(fs) => fs.clone(),
        };
        if legacy.len() != transform.legacy_arity() {
            p.push(format!(
                "{at}.legacy: transform {:?} takes {} legacy field(s), {} given",
                row.transform.as_deref().unwrap_or("identity"),
                transform.legacy_arity(),
                legacy.len()
            ));
            continue;
        }
        let mut paths = Vec::with_capacity(legacy.len());
        for f in &legacy {
            match FieldPath::parse(f) {
                Err(e) => p.push(format!("{at}.legacy: {e}")),
                // A read-only row writes nothing: it may read a field another row writes.
                Ok(path) if row.read_only => paths.push(path),
                Ok(path) => {
                    if let Some(other) = fields_seen.iter().find(|o| o.overlaps(&path)) {
                        if other.as_str() == path.as_str() {
                            p.push(format!("{at}.legacy: legacy field {f:?} is mapped twice"));
                        } else {
                            p.push(format!(
                                "{at}.legacy: legacy field {f:?} overlaps {:?}, mapped before \
                                 (one holds the other: a write of one would overwrite the other)",
                                other.as_str()
                            ));
                        }
                    }
                    fields_seen.push(path.clone());
                    paths.push(path);
                }
            }
        }
        if paths.len() != legacy.len() {
            continue;
        }
        let pattern = row
            .pattern
            .as_ref()
            .and_then(|pat| match regex::Regex::new(pat) {
                Ok(re) => Some(re),
                Err(e) => {
                    p.push(format!(
                        "{at}.pattern: pattern {pat:?} is not a regular expression: {e}"
                    ));
                    None
                }
            });
        if row.max_length == Some(0) {
            p.push(format!("{at}.max_length must be at least 1"));
        }
        let equals = row
            .equals
            .as_ref()
            .and_then(|other| match resolve_target(other, &schema) {
                Ok(t) => Some((other.clone(), t)),
                Err(e) => {
                    p.push(format!("{at}.equals: {e}"));
                    None
                }
            });
        // What the SCIM schema itself says of the attribute, whatever the row adds.
        let (kind, schema_required) = target_def(&target, &schema);
        attributes.push(AttrMap {
            scim: row.scim.clone(),
            target,
            legacy: paths,
            transform,
            values,
            kind,
            schema_required,
            required: row.required,
            max_length: row.max_length,
            pattern,
            equals,
            read_only: row.read_only,
        });
        if row.read_only
            && (row.required
                || row.max_length.is_some()
                || row.pattern.is_some()
                || row.equals.is_some())
        {
            p.push(format!(
                "{at}.read_only: a read-only attribute is never written, so required, \
                 max_length, pattern and equals have nothing to check"
            ));
        }
    }
    if !attributes
        .iter()
        .any(|a| a.target.extension.is_none() && a.target.attr == "userName")
    {
        p.push("users.attributes: userName must be mapped");
    }
    let mut multi_valued = BTreeMap::new();
    for (name, mv) in spec.multi_valued {
        match schema.core.attribute(&name) {
            Some(def) if def.multi_valued => {
                multi_valued.insert(def.name.clone(), mv);
            }
            _ => p.push(format!(
                "users.multi_valued.{name}: not a multi-valued User attribute"
            )),
        }
    }
    let filters = compile_filters(&spec.filters, &mut schema, "users.filters", p);
    Some(UserMapping {
        legacy_id: spec.legacy_id,
        created: spec.created,
        last_modified: spec.last_modified,
        fingerprint: spec.fingerprint,
        time_format: spec.time_format,
        active: spec.active.map(|a| Active {
            all_true: a.all_true,
            all_false: a.all_false,
            written: match (&a.field, &a.set_active, &a.set_inactive) {
                (Some(f), Some(on), Some(off)) => {
                    FieldPath::parse(f).ok().map(|field| WrittenActive {
                        field,
                        active: json_of(on, "users.active.set_active", p),
                        inactive: json_of(off, "users.active.set_inactive", p),
                    })
                }
                _ => None,
            },
            field: a.field.map(|f| {
                let values = (a.active.iter())
                    .map(|v| json_of(v, "users.active.active", p))
                    .collect();
                (f, values)
            }),
        }),
        calls: UserCalls {
            get: get?,
            list: list?,
            create: create?,
            update: update?,
            deactivate,
            reactivate,
            delete: delete_call,
            take_over,
        },
        delete,
        deactivate: spec.lifecycle.deactivate,
        on_conflict: spec.lifecycle.on_conflict,
        filters,
        multi_valued,
        attributes,
        schema,
    })
}

/// The schema's type of a mapped (sub-)attribute, and whether the schema requires it.
fn target_def(t: &ScimTarget, schema: &ResourceSchema) -> (AttrType, bool) {
    let path = AttrPath {
        urn: t.extension.clone(),
        name: t.attr.clone(),
        sub: t.sub.clone(),
    };
    match schema.resolve(&path) {
        Some(r) => {
            let leaf = r.leaf();
            (leaf.kind, r.attr.required && leaf.required)
        }
        None => (AttrType::String, false),
    }
}

/// Checks and compiles a row's value map: not empty, not with a transform, SCIM values of
/// the attribute's type.
fn value_map(
    pairs: &[spec::ValuePairSpec],
    scim_path: &str,
    schema: &ResourceSchema,
    with_transform: bool,
    at: &str,
    p: &mut Problems,
) -> Option<ValueMap> {
    if with_transform {
        p.push(format!(
            "{at}.values: a row has a transform or a value map, not both"
        ));
        return None;
    }
    if pairs.is_empty() {
        p.push(format!(
            "{at}.values: an empty value map would refuse every value; list the pairs"
        ));
        return None;
    }
    let kind = resolve_target(scim_path, schema).ok().and_then(|t| {
        let path = AttrPath {
            urn: t.extension,
            name: t.attr,
            sub: t.sub,
        };
        schema.resolve(&path).map(|r| r.leaf().kind)
    });
    let mut out = Vec::with_capacity(pairs.len());
    for (i, pair) in pairs.iter().enumerate() {
        let scim = json_of(&pair.scim, &format!("{at}.values[{i}].scim"), p);
        let legacy = json_of(&pair.legacy, &format!("{at}.values[{i}].legacy"), p);
        let fits = match kind {
            Some(AttrType::Boolean) => scim.is_boolean(),
            Some(AttrType::Integer) => scim.is_i64() || scim.is_u64(),
            Some(AttrType::Decimal) => scim.is_number(),
            _ => scim.is_string(),
        };
        if !fits {
            p.push(format!(
                "{at}.values[{i}].scim: {scim} is not a value of {scim_path} (a {})",
                kind.map_or("string", AttrType::as_str)
            ));
        }
        if !(legacy.is_string() || legacy.is_number() || legacy.is_boolean()) {
            p.push(format!(
                "{at}.values[{i}].legacy: a legacy value is a string, a number or a boolean"
            ));
        }
        out.push((scim, legacy));
    }
    Some(ValueMap { pairs: out })
}

/// Compiles pushed-down filters. An attribute the legacy app compares exactly becomes
/// `caseExact` in the schema: the sidecar then announces, evaluates and pushes down the same
/// comparison the legacy app makes (e.g. group names that are case-sensitive by contract).
fn compile_filters(
    filters: &BTreeMap<String, spec::FilterSpec>,
    schema: &mut ResourceSchema,
    at: &str,
    p: &mut Problems,
) -> Vec<PushDown> {
    let mut out = Vec::new();
    for (path, f) in filters {
        let Ok(parsed) = AttrPath::parse(path) else {
            p.push(format!("{at}.{path}: not a SCIM attribute path"));
            continue;
        };
        let Some(resolved) = schema.resolve(&parsed) else {
            p.push(format!("{at}.{path}: unknown SCIM attribute"));
            continue;
        };
        let leaf = resolved.leaf();
        if leaf.kind == AttrType::Complex {
            p.push(format!(
                "{at}.{path}: a complex attribute cannot be filtered; name a sub-attribute"
            ));
            continue;
        }
        let mut key = resolved.attr.name.to_ascii_lowercase();
        if let Some(sub) = resolved.sub {
            key.push('.');
            key.push_str(&sub.name.to_ascii_lowercase());
        }
        let case_exact = leaf.case_exact || f.case == spec::CaseSpec::Exact;
        let (extension, attr, sub) = (
            resolved.extension.map(str::to_owned),
            resolved.attr.name.clone(),
            resolved.sub.map(|s| s.name.clone()),
        );
        if case_exact {
            set_case_exact(schema, extension.as_deref(), &attr, sub.as_deref());
        }
        out.push(PushDown {
            path: key,
            query: f.query.clone(),
            case: f.case,
            scim_case_exact: case_exact,
        });
    }
    out
}

fn set_case_exact(
    schema: &mut ResourceSchema,
    extension: Option<&str>,
    attr: &str,
    sub: Option<&str>,
) {
    let def = match extension {
        None => &mut schema.core,
        Some(urn) => match schema.extensions.iter_mut().find(|e| e.id == urn) {
            Some(e) => e,
            None => return,
        },
    };
    let Some(a) = def.attributes.iter_mut().find(|a| a.name == attr) else {
        return;
    };
    match sub {
        None => a.case_exact = true,
        Some(sub) => {
            if let Some(s) = a.sub_attributes.iter_mut().find(|s| s.name == sub) {
                s.case_exact = true;
            }
        }
    }
}

/// Why a mapping row's SCIM path is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// `urn:…` without the attribute after the last `:`.
    #[error("malformed URN-qualified path")]
    MalformedUrn,
    /// A `[…]` selector other than `[primary]`.
    #[error("the only element selector is [primary]")]
    Selector,
    /// Something else than `.sub` after `[primary]`.
    #[error("expected '.' after [primary]")]
    AfterPrimary,
    /// An empty attribute or sub-attribute name.
    #[error("empty attribute name")]
    Empty,
    /// No such attribute in the schemas.
    #[error("unknown SCIM attribute {0:?}")]
    Unknown(String),
    /// `[primary]` on a single-valued attribute.
    #[error("[primary] on {0:?}, which is not multi-valued")]
    PrimaryOnSingle(String),
    /// A multi-valued attribute without `[primary]`.
    #[error("{0:?} is multi-valued: map one element with [primary]")]
    MultiWithoutPrimary(String),
    /// A complex attribute without a sub-attribute.
    #[error("{0:?} is complex: map a sub-attribute")]
    Complex(String),
    /// `id`, `meta`, `groups`, `password`, `active`: not a field of a record.
    #[error("{0:?} cannot be mapped to a field")]
    Unmappable(String),
}

/// Parses a mapping row's SCIM path: `attr`, `attr.sub`, `attr[primary].sub`, URN-qualified.
pub fn resolve_target(text: &str, schema: &ResourceSchema) -> Result<ScimTarget, TargetError> {
    let (urn, rest) = match text.strip_prefix("urn:") {
        Some(_) => match text.rsplit_once(':') {
            Some((urn, rest)) => (Some(urn), rest),
            None => return Err(TargetError::MalformedUrn),
        },
        None => (None, text),
    };
    let (attr, primary, sub) = match rest.split_once('[') {
        Some((attr, tail)) => {
            let Some(after) = tail.strip_prefix("primary]") else {
                return Err(TargetError::Selector);
            };
            let sub = match after {
                "" => None,
                s => Some(s.strip_prefix('.').ok_or(TargetError::AfterPrimary)?),
            };
            (attr, true, sub)
        }
        None => match rest.split_once('.') {
            Some((a, s)) => (a, false, Some(s)),
            None => (rest, false, None),
        },
    };
    if attr.is_empty() || sub.is_some_and(str::is_empty) {
        return Err(TargetError::Empty);
    }
    let path = AttrPath {
        urn: urn.map(str::to_owned),
        name: attr.to_owned(),
        sub: sub.map(str::to_owned),
    };
    let resolved = schema
        .resolve(&path)
        .ok_or_else(|| TargetError::Unknown(text.to_owned()))?;
    let def = resolved.attr;
    if primary && !def.multi_valued {
        return Err(TargetError::PrimaryOnSingle(def.name.clone()));
    }
    if def.multi_valued && !primary {
        return Err(TargetError::MultiWithoutPrimary(def.name.clone()));
    }
    if def.kind == AttrType::Complex && resolved.sub.is_none() {
        return Err(TargetError::Complex(def.name.clone()));
    }
    if matches!(
        def.name.as_str(),
        "id" | "meta" | "groups" | "password" | "active"
    ) {
        return Err(TargetError::Unmappable(def.name.clone()));
    }
    Ok(ScimTarget {
        extension: resolved.extension.map(str::to_owned),
        attr: def.name.clone(),
        primary,
        sub: resolved.sub.map(|s| s.name.clone()),
    })
}

/// The lower-case dotted key of a resolved attribute, as push-down filters are keyed.
pub(crate) fn filter_key(resolved: &scim::schema::Resolved<'_>) -> String {
    let mut key = resolved.attr.name.to_ascii_lowercase();
    if let Some(sub) = resolved.sub {
        key.push('.');
        key.push_str(&sub.name.to_ascii_lowercase());
    }
    key
}

fn json_of(value: &toml::Value, at: &str, p: &mut Problems) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_else(|e| {
        p.push(format!("{at}: {e}"));
        serde_json::Value::Null
    })
}

fn compile_groups(
    spec: spec::GroupsSpec,
    paging: Option<&Paging>,
    p: &mut Problems,
) -> Option<GroupMapping> {
    use super::template::Var;
    let c = &spec.calls;
    let get = compile_call(&c.get, "groups.calls.get", None, p);
    let list = compile_call(&c.list, "groups.calls.list", paging, p);
    if let Some(call) = &list {
        no_record_vars(call, "groups.calls.list", p);
    }
    let opt = |call: &Option<CallSpec>, at: &str, p: &mut Problems| {
        call.as_ref().and_then(|c| compile_call(c, at, None, p))
    };
    let members = c
        .members
        .as_ref()
        .and_then(|call| compile_call(call, "groups.calls.members", paging, p));
    let add_member = opt(&c.add_member, "groups.calls.add_member", p);
    let remove_member = opt(&c.remove_member, "groups.calls.remove_member", p);
    let add_members = opt(&c.add_members, "groups.calls.add_members", p);
    let remove_members = opt(&c.remove_members, "groups.calls.remove_members", p);
    let set_members = opt(&c.set_members, "groups.calls.set_members", p);
    let create = opt(&c.create, "groups.calls.create", p);
    let rename = opt(&c.rename, "groups.calls.rename", p);
    let delete = opt(&c.delete, "groups.calls.delete", p);
    for (call, at) in [
        (get.as_ref(), "groups.calls.get"),
        (rename.as_ref(), "groups.calls.rename"),
        (delete.as_ref(), "groups.calls.delete"),
        (add_members.as_ref(), "groups.calls.add_members"),
        (remove_members.as_ref(), "groups.calls.remove_members"),
        (set_members.as_ref(), "groups.calls.set_members"),
    ] {
        if let Some(call) = call {
            require_var(call, Var::LegacyId, at, p);
        }
    }
    if let Some(call) = &members {
        require_var(call, Var::LegacyId, "groups.calls.members", p);
        if call.member_id.is_none() {
            p.push("groups.calls.members needs member_id");
        }
    }
    for (call, at) in [
        (add_member.as_ref(), "groups.calls.add_member"),
        (remove_member.as_ref(), "groups.calls.remove_member"),
    ] {
        if let Some(call) = call {
            require_var(call, Var::LegacyId, at, p);
            let in_body =
                (call.fixed_body.as_ref()).is_some_and(|b| b.vars().contains(&Var::MemberLegacyId));
            if !in_body && !call.path.vars().any(|v| *v == Var::MemberLegacyId) {
                p.push(format!(
                    "{at}.path must contain {{member_legacy_id}} (or its fixed body must)"
                ));
            }
        }
    }
    for (call, at) in [
        (add_members.as_ref(), "groups.calls.add_members"),
        (remove_members.as_ref(), "groups.calls.remove_members"),
        (set_members.as_ref(), "groups.calls.set_members"),
    ] {
        if call.is_some_and(|c| c.batch.is_none()) {
            p.push(format!("{at} needs batch = {{ field = \"…\", max = … }}"));
        }
    }
    no_fixed_body(
        set_members.as_ref(),
        "groups.calls.set_members",
        "the whole member list",
        p,
    );
    no_fixed_body(
        create.as_ref(),
        "groups.calls.create",
        "the display name",
        p,
    );
    no_fixed_body(
        rename.as_ref(),
        "groups.calls.rename",
        "the display name",
        p,
    );
    no_fixed_body(
        add_members.as_ref(),
        "groups.calls.add_members",
        "a batch of ids",
        p,
    );
    no_fixed_body(
        remove_members.as_ref(),
        "groups.calls.remove_members",
        "a batch of ids",
        p,
    );
    let one_by_one = c.add_member.is_some() || c.remove_member.is_some();
    let batched = c.add_members.is_some() || c.remove_members.is_some();
    if one_by_one && batched {
        p.push("groups.calls: declare add_member/remove_member or add_members/remove_members, not both");
    }
    if c.add_member.is_some() != c.remove_member.is_some() {
        p.push("groups.calls: add_member and remove_member go together");
    }
    if c.add_members.is_some() != c.remove_members.is_some() {
        p.push("groups.calls: add_members and remove_members go together");
    }
    if c.set_members.is_some() && (one_by_one || batched) {
        p.push(
            "groups.calls.set_members replaces the whole list: declare it, or add and remove \
             calls, not both",
        );
    }
    if (one_by_one || batched || c.set_members.is_some()) && c.members.is_none() {
        p.push("groups.calls: member changes need the members call (to diff a replace)");
    }
    if let Some(v) = &spec.version {
        check_pointer(Some(v), "groups.version", p);
        if c.set_members.is_none() {
            p.push("groups.version is sent with groups.calls.set_members, which is not declared");
        }
    }
    if spec.version.is_none() && spec.version_in != spec::VersionIn::Body {
        p.push("groups.version_in needs groups.version");
    }
    if spec.etag {
        if spec.version.is_some() {
            p.push("groups.etag: the version is the ETag or a field (groups.version), not both");
        }
        if c.set_members.is_none() {
            p.push("groups.etag is sent with groups.calls.set_members, which is not declared");
        }
    }
    let version = spec
        .version
        .as_deref()
        .and_then(|v| match FieldPath::parse(v) {
            Ok(path) => Some((path, spec.version_in)),
            Err(e) => {
                p.push(format!("groups.version: {e}"));
                None
            }
        });
    if (c.create.is_some() || c.rename.is_some()) && spec.display_name_field.is_none() {
        p.push("groups.calls.create / rename need groups.display_name_field (the body field)");
    }
    check_pointer(Some(&spec.legacy_id), "groups.legacy_id", p);
    check_pointer(Some(&spec.display_name), "groups.display_name", p);
    let display_name_field =
        spec.display_name_field
            .as_deref()
            .and_then(|f| match FieldPath::parse(f) {
                Ok(path) => Some(path),
                Err(e) => {
                    p.push(format!("groups.display_name_field: {e}"));
                    None
                }
            });
    let locked = spec.locked.as_ref().map(|l| {
        check_pointer(Some(&l.field), "groups.locked.field", p);
        Locked {
            field: l.field.clone(),
            equals: json_of(&l.equals, "groups.locked.equals", p),
            detail: l.detail.clone(),
        }
    });
    let mut schema = ResourceSchema {
        core: schema::group_schema(),
        extensions: Vec::new(),
    };
    let filters = compile_filters(&spec.filters, &mut schema, "groups.filters", p);
    Some(GroupMapping {
        legacy_id: spec.legacy_id,
        scim_id: spec.scim_id,
        display_name: spec.display_name,
        display_name_field,
        locked,
        get: get?,
        list: list?,
        members,
        add_member,
        remove_member,
        add_members,
        remove_members,
        set_members,
        version,
        etag: spec.etag,
        create,
        rename,
        delete,
        link_only_hint: spec.link_only_hint.unwrap_or_else(|| {
            "groups are owned by the legacy application: link an existing group instead \
             (Okta: Push Groups → Link Group)"
                .to_owned()
        }),
        filters,
        schema,
    })
}
