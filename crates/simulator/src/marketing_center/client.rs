//! The Marketing Center's API as its own clients call it: the requests the bench sends
//! straight to the simulator and through the bare forwarder, to set the sidecar's SCIM
//! requests against. Kept here, beside the simulator, so that the legacy app's paths and field
//! names live only in the simulator and the mapping file.

use http::Method;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use super::{API_KEY_HEADER, CUSTOMER_HEADER};

/// One API request: method, path below the base URL (`/api/v1`), optional JSON body.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// The HTTP method.
    pub method: Method,
    /// Path and query, below the base URL.
    pub path: String,
    /// The JSON body, if any.
    pub body: Option<Value>,
}

impl Call {
    fn new(method: Method, path: String) -> Self {
        Self {
            method,
            path,
            body: None,
        }
    }
}

/// The authentication headers of every call: `(name, value)`.
pub fn headers<'a>(api_key: &'a str, customer: &'a str) -> [(&'static str, &'a str); 2] {
    [(API_KEY_HEADER, api_key), (CUSTOMER_HEADER, customer)]
}

/// A page of users (1-based `page`, archived users left out).
pub fn list_users(page: u64, size: u64) -> Call {
    Call::new(Method::GET, format!("/users?Page={page}&PageSize={size}"))
}

/// The user with `UserID` `id`.
pub fn get_user(id: &str) -> Call {
    Call::new(Method::GET, format!("/users/{id}"))
}

/// The users whose `LogonName` is `login`, archived ones included (what a lookup by userName
/// comes down to).
pub fn find_by_logon_name(login: &str) -> Call {
    let login = utf8_percent_encode(login, NON_ALPHANUMERIC);
    Call::new(
        Method::GET,
        format!("/users?IncludeArchived=true&LogonName={login}&Page=1&PageSize=100"),
    )
}

/// Creates a user with the fields Okta's create fills in.
pub fn create_user(login: &str, given: &str, family: &str, external_id: &str) -> Call {
    Call {
        method: Method::POST,
        path: "/users".to_owned(),
        body: Some(json!({
            "LogonName": login,
            "UserProfileFirstName": given,
            "UserProfileLastName": family,
            "UserProfileFullName": format!("{given} {family}"),
            "UserProfileEmailAddress": login,
            "ExternalIdentityProviderID": external_id,
        })),
    }
}

/// Sets the job title of the user `id` (`PATCH`): a change of one field, as another client of
/// the app makes behind the sidecar's back.
pub fn set_title(id: &str, title: &str) -> Call {
    Call {
        method: Method::PATCH,
        path: format!("/users/{id}"),
        body: Some(json!({ "UserProfileTitle": title })),
    }
}

/// Archives (`active == false`) or restores the user `id`.
pub fn set_active(id: &str, active: bool) -> Call {
    let verb = if active { "restore" } else { "archive" };
    Call::new(Method::POST, format!("/users/{id}/{verb}"))
}

/// Adds (`PUT`) or removes (`DELETE`) the user `id` as a member of `group`.
pub fn membership(group: &str, id: &str, add: bool) -> Call {
    let method = if add { Method::PUT } else { Method::DELETE };
    Call::new(method, format!("/groups/{group}/members/{id}"))
}

/// A user as a list page shows it: `(UserID, LogonName)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// `UserID`, as text.
    pub id: String,
    /// `LogonName`.
    pub login: String,
}

/// The users of a [`list_users`] answer.
pub fn listed_users(page: &Value) -> Vec<Listed> {
    page["Items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|u| Listed {
                    id: u["UserID"].to_string(),
                    login: u["LogonName"].as_str().unwrap_or_default().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default()
}
