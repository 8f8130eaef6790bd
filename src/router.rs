//! (method, path) → [`Route`]; nothing else. Pure.

use std::sync::Arc;

use http::Method;
use percent_encoding::percent_decode_str;

/// The prefix every SCIM endpoint lives under.
pub const SCIM_PREFIX: &str = "/scim/v2";

/// The SCIM resource types the sidecar serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// `/Users`
    Users,
    /// `/Groups`
    Groups,
}

/// Where a request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET /{Resource}`
    List(Resource),
    /// `POST /{Resource}/.search`
    Search(Resource),
    /// `POST /.search`
    RootSearch,
    /// `POST /{Resource}`
    Create(Resource),
    /// `GET /{Resource}/{id}`
    Get(Resource, Arc<str>),
    /// `PUT /{Resource}/{id}`
    Replace(Resource, Arc<str>),
    /// `PATCH /{Resource}/{id}`
    Patch(Resource, Arc<str>),
    /// `DELETE /{Resource}/{id}`
    Delete(Resource, Arc<str>),
    /// `GET /ServiceProviderConfig`
    ServiceProviderConfig,
    /// `GET /ResourceTypes`
    ResourceTypes,
    /// `GET /ResourceTypes/{name}`
    ResourceType(String),
    /// `GET /Schemas`
    Schemas,
    /// `GET /Schemas/{urn}`
    Schema(String),
    /// A known path with a method it does not take; lists the allowed methods.
    MethodNotAllowed(&'static str),
    /// No such endpoint.
    NotFound,
}

impl Route {
    /// `(resource, operation)` labels for logs and metrics: resource `User`, `Group` or
    /// `none`; operation `list`, `search`, `get`, `create`, `replace`, `patch`, `delete`,
    /// `discovery` or `other`.
    pub fn labels(&self) -> (&'static str, &'static str) {
        let name = |r: &Resource| match r {
            Resource::Users => "User",
            Resource::Groups => "Group",
        };
        match self {
            Route::List(r) => (name(r), "list"),
            Route::Search(r) => (name(r), "search"),
            Route::RootSearch => ("none", "search"),
            Route::Create(r) => (name(r), "create"),
            Route::Get(r, _) => (name(r), "get"),
            Route::Replace(r, _) => (name(r), "replace"),
            Route::Patch(r, _) => (name(r), "patch"),
            Route::Delete(r, _) => (name(r), "delete"),
            Route::ServiceProviderConfig
            | Route::ResourceTypes
            | Route::ResourceType(_)
            | Route::Schemas
            | Route::Schema(_) => ("none", "discovery"),
            Route::MethodNotAllowed(_) | Route::NotFound => ("none", "other"),
        }
    }

    /// The resource id in the path, for routes about one resource.
    pub fn id(&self) -> Option<&str> {
        match self {
            Route::Get(_, id)
            | Route::Replace(_, id)
            | Route::Patch(_, id)
            | Route::Delete(_, id) => Some(id),
            _ => None,
        }
    }

    /// Whether the route changes provisioning state (recorded in the provisioning log).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Route::Create(_) | Route::Replace(..) | Route::Patch(..) | Route::Delete(..)
        )
    }
}

/// Routes a request.
pub fn route(method: &Method, path: &str) -> Route {
    let Some(rest) = path.strip_prefix(SCIM_PREFIX) else {
        return Route::NotFound;
    };
    let rest = rest.trim_end_matches('/');
    // No route has more than two segments; a third (or more) is not found. No list is built.
    let mut parts = ["", "", ""];
    let mut count = 0;
    if !rest.is_empty() {
        let Some(r) = rest.strip_prefix('/') else {
            return Route::NotFound;
        };
        for segment in r.split('/') {
            if count == parts.len() {
                return Route::NotFound;
            }
            parts[count] = segment;
            count += 1;
        }
    }
    let segments = &parts[..count];
    let resource = |s: &str| match s {
        "Users" => Some(Resource::Users),
        "Groups" => Some(Resource::Groups),
        _ => None,
    };
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    let m = method;
    match segments {
        [".search"] => match *m {
            Method::POST => Route::RootSearch,
            _ => Route::MethodNotAllowed("POST"),
        },
        ["ServiceProviderConfig"] => read_only(m, Route::ServiceProviderConfig),
        ["ResourceTypes"] => read_only(m, Route::ResourceTypes),
        ["ResourceTypes", name] => read_only(m, Route::ResourceType(decode(name))),
        ["Schemas"] => read_only(m, Route::Schemas),
        ["Schemas", urn] => read_only(m, Route::Schema(decode(urn))),
        [r] => match (resource(r), m) {
            (None, _) => Route::NotFound,
            (Some(r), &Method::GET) => Route::List(r),
            (Some(r), &Method::POST) => Route::Create(r),
            (Some(_), _) => Route::MethodNotAllowed("GET, POST"),
        },
        [r, ".search"] => match (resource(r), m) {
            (None, _) => Route::NotFound,
            (Some(r), &Method::POST) => Route::Search(r),
            (Some(_), _) => Route::MethodNotAllowed("POST"),
        },
        [r, id] => match resource(r) {
            None => Route::NotFound,
            Some(r) => {
                // Most ids have nothing to decode (and are already text).
                let id: Arc<str> = if id.contains('%') {
                    Arc::from(percent_decode_str(id).decode_utf8_lossy())
                } else {
                    Arc::from(*id)
                };
                match *m {
                    Method::GET => Route::Get(r, id),
                    Method::PUT => Route::Replace(r, id),
                    Method::PATCH => Route::Patch(r, id),
                    Method::DELETE => Route::Delete(r, id),
                    _ => Route::MethodNotAllowed("GET, PUT, PATCH, DELETE"),
                }
            }
        },
        _ => Route::NotFound,
    }
}

fn read_only(m: &Method, route: Route) -> Route {
    match *m {
        Method::GET | Method::HEAD => route,
        _ => Route::MethodNotAllowed("GET"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let r = |m: Method, p: &str| route(&m, p);
        assert_eq!(
            r(Method::GET, "/scim/v2/Users"),
            Route::List(Resource::Users)
        );
        assert_eq!(
            r(Method::GET, "/scim/v2/Users/"),
            Route::List(Resource::Users)
        );
        assert_eq!(
            r(Method::POST, "/scim/v2/Groups"),
            Route::Create(Resource::Groups)
        );
        assert_eq!(
            r(Method::GET, "/scim/v2/Users/a%20b"),
            Route::Get(Resource::Users, "a b".into())
        );
        assert_eq!(
            r(Method::PATCH, "/scim/v2/Users/x"),
            Route::Patch(Resource::Users, "x".into())
        );
        assert_eq!(
            r(Method::POST, "/scim/v2/Users/.search"),
            Route::Search(Resource::Users)
        );
        assert_eq!(r(Method::POST, "/scim/v2/.search"), Route::RootSearch);
        assert_eq!(
            r(Method::PUT, "/scim/v2/Schemas"),
            Route::MethodNotAllowed("GET")
        );
        assert_eq!(
            r(Method::POST, "/scim/v2/ServiceProviderConfig"),
            Route::MethodNotAllowed("GET")
        );
        assert_eq!(
            r(
                Method::GET,
                "/scim/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:User"
            ),
            Route::Schema("urn:ietf:params:scim:schemas:core:2.0:User".into())
        );
        assert_eq!(r(Method::GET, "/scim/v2/Nope"), Route::NotFound);
        assert_eq!(r(Method::GET, "/scim/v2/Users/a/b"), Route::NotFound);
        assert_eq!(r(Method::GET, "/other"), Route::NotFound);
        assert_eq!(r(Method::GET, "/scim/v2Users"), Route::NotFound);
        assert_eq!(
            r(Method::POST, "/scim/v2/Users/x"),
            Route::MethodNotAllowed("GET, PUT, PATCH, DELETE")
        );
    }
}
