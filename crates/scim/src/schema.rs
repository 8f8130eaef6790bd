//! SCIM schema definitions (RFC 7643): the URN constants, attribute characteristics, the
//! User (§4.1), Group (§4.2) and Enterprise User (§4.3) schemas, the common attributes
//! (`id`, `externalId`, `meta`, §3.1) and the resolution of attribute paths against a
//! resource type's core schema plus its extensions.
//!
//! The characteristics follow the schema representation of RFC 7643 §8.7.1. Pure data: no
//! I/O, no dependency on any other module of the crate except [`crate::filter`]'s
//! [`AttrPath`].

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use crate::attr::AttrPath;

/// Core User schema URN (RFC 7643 §4.1).
pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// Core Group schema URN (RFC 7643 §4.2).
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// Enterprise User extension URN (RFC 7643 §4.3).
pub const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// List response message URN (RFC 7644 §3.4.2).
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// PATCH request message URN (RFC 7644 §3.5.2).
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// `.search` request message URN (RFC 7644 §3.4.3).
pub const SEARCH_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
/// Error response message URN (RFC 7644 §3.12).
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// Service provider configuration schema URN (RFC 7643 §5).
pub const SERVICE_PROVIDER_CONFIG: &str =
    "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
/// Resource type schema URN (RFC 7643 §6).
pub const RESOURCE_TYPE: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
/// Schema definition schema URN (RFC 7643 §7).
pub const SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

/// The data type of an attribute (RFC 7643 §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrType {
    /// `"string"`.
    String,
    /// `"boolean"`.
    Boolean,
    /// `"decimal"`.
    Decimal,
    /// `"integer"`.
    Integer,
    /// `"dateTime"` (an `xsd:dateTime`, e.g. `2011-05-13T04:42:34Z`).
    DateTime,
    /// `"reference"` (a URI).
    Reference,
    /// `"complex"` (has sub-attributes).
    Complex,
    /// `"binary"` (base64).
    Binary,
}

impl AttrType {
    /// What a value of this type is, for error details (`"a string"`, `"an integer"`).
    pub fn described(self) -> &'static str {
        match self {
            AttrType::String => "a string",
            AttrType::Boolean => "a boolean",
            AttrType::Decimal => "a decimal number",
            AttrType::Integer => "an integer",
            AttrType::DateTime => "a dateTime string",
            AttrType::Reference => "a reference string",
            AttrType::Complex => "an object",
            AttrType::Binary => "a base64 string",
        }
    }

    /// Whether a JSON value is of this type as given (`null` counts: it is absence).
    pub fn admits(self, v: &Value) -> bool {
        match (self, v) {
            (_, Value::Null) => true,
            (AttrType::Boolean, Value::Bool(_)) => true,
            (AttrType::Integer, Value::Number(n)) => n.is_i64() || n.is_u64(),
            (AttrType::Decimal, Value::Number(_)) => true,
            (
                AttrType::String | AttrType::DateTime | AttrType::Reference | AttrType::Binary,
                Value::String(_),
            ) => true,
            (AttrType::Complex, Value::Object(_)) => true,
            _ => false,
        }
    }

    /// The RFC 7643 §7 spelling (`"string"`, `"dateTime"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Decimal => "decimal",
            AttrType::Integer => "integer",
            AttrType::DateTime => "dateTime",
            AttrType::Reference => "reference",
            AttrType::Complex => "complex",
            AttrType::Binary => "binary",
        }
    }
}

/// Whether and how an attribute may be modified (RFC 7643 §7 `mutability`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutability {
    /// Set by the service provider only.
    ReadOnly,
    /// May be updated and read at any time.
    ReadWrite,
    /// May be set once (at creation or when empty), never changed afterwards.
    Immutable,
    /// May be set, never returned.
    WriteOnly,
}

impl Mutability {
    /// The RFC 7643 §7 spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        }
    }
}

/// When an attribute is returned in a response (RFC 7643 §7 `returned`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Returned {
    /// Always returned, whatever `attributes` / `excludedAttributes` say.
    Always,
    /// Never returned.
    Never,
    /// Returned unless excluded.
    Default,
    /// Returned only when named in `attributes`.
    Request,
}

impl Returned {
    /// The RFC 7643 §7 spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
            Returned::Request => "request",
        }
    }
}

/// How unique an attribute's value must be (RFC 7643 §7 `uniqueness`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uniqueness {
    /// No uniqueness constraint.
    None,
    /// Unique within the service provider's resources of that type.
    Server,
    /// Globally unique.
    Global,
}

impl Uniqueness {
    /// The RFC 7643 §7 spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Uniqueness::None => "none",
            Uniqueness::Server => "server",
            Uniqueness::Global => "global",
        }
    }
}

/// One attribute (or sub-attribute) definition with its RFC 7643 §7 characteristics.
#[derive(Clone, Debug)]
pub struct AttributeDef {
    /// Canonical name, e.g. `givenName`.
    pub name: String,
    /// Data type.
    pub kind: AttrType,
    /// Whether the attribute holds a JSON array of values.
    pub multi_valued: bool,
    /// Human-readable description.
    pub description: String,
    /// Whether the attribute is required.
    pub required: bool,
    /// Whether string comparisons are case-sensitive.
    pub case_exact: bool,
    /// Mutability.
    pub mutability: Mutability,
    /// When the attribute is returned.
    pub returned: Returned,
    /// Uniqueness constraint.
    pub uniqueness: Uniqueness,
    /// Suggested canonical values (e.g. `work`, `home`), empty when none.
    pub canonical_values: Vec<String>,
    /// Reference targets for `reference` attributes (`User`, `Group`, `external`, `uri`).
    pub reference_types: Vec<String>,
    /// Sub-attributes of a `complex` attribute, empty otherwise.
    pub sub_attributes: Vec<AttributeDef>,
}

impl AttributeDef {
    /// A single-valued, optional, case-insensitive, readWrite, returned-by-default string
    /// attribute without uniqueness: the most common shape, refined with the builder methods.
    pub fn new(name: &str, kind: AttrType, description: &str) -> AttributeDef {
        AttributeDef {
            name: name.to_owned(),
            kind,
            multi_valued: false,
            description: description.to_owned(),
            required: false,
            case_exact: false,
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            uniqueness: Uniqueness::None,
            canonical_values: Vec::new(),
            reference_types: Vec::new(),
            sub_attributes: Vec::new(),
        }
    }

    /// Builder: marks the attribute multi-valued.
    pub fn multi(mut self) -> Self {
        self.multi_valued = true;
        self
    }

    /// Builder: marks the attribute required.
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// Builder: marks string comparisons case-sensitive.
    pub fn case_exact(mut self) -> Self {
        self.case_exact = true;
        self
    }

    /// Builder: sets the mutability.
    pub fn mutability(mut self, m: Mutability) -> Self {
        self.mutability = m;
        self
    }

    /// Builder: sets when the attribute is returned.
    pub fn returned(mut self, r: Returned) -> Self {
        self.returned = r;
        self
    }

    /// Builder: sets the uniqueness.
    pub fn uniqueness(mut self, u: Uniqueness) -> Self {
        self.uniqueness = u;
        self
    }

    /// Builder: sets the canonical values.
    pub fn canonical(mut self, values: &[&str]) -> Self {
        self.canonical_values = values.iter().map(|v| (*v).to_owned()).collect();
        self
    }

    /// Builder: sets the reference types.
    pub fn refs(mut self, types: &[&str]) -> Self {
        self.reference_types = types.iter().map(|v| (*v).to_owned()).collect();
        self
    }

    /// Builder: sets the sub-attributes.
    pub fn subs(mut self, subs: Vec<AttributeDef>) -> Self {
        self.sub_attributes = subs;
        self
    }

    /// The sub-attribute called `name` (case-insensitive).
    pub fn sub(&self, name: &str) -> Option<&AttributeDef> {
        self.sub_attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// RFC 7643 §7 attribute representation. `caseExact` is emitted for every non-complex
    /// attribute, `canonicalValues` only when non-empty, `referenceTypes` for references and
    /// `subAttributes` for complex attributes.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        m.insert("type".into(), json!(self.kind.as_str()));
        m.insert("multiValued".into(), json!(self.multi_valued));
        m.insert("description".into(), json!(self.description));
        m.insert("required".into(), json!(self.required));
        if self.kind != AttrType::Complex {
            m.insert("caseExact".into(), json!(self.case_exact));
        }
        if !self.canonical_values.is_empty() {
            m.insert("canonicalValues".into(), json!(self.canonical_values));
        }
        if self.kind == AttrType::Reference {
            m.insert("referenceTypes".into(), json!(self.reference_types));
        }
        if self.kind == AttrType::Complex {
            let subs: Vec<Value> = self
                .sub_attributes
                .iter()
                .map(AttributeDef::to_json)
                .collect();
            m.insert("subAttributes".into(), Value::Array(subs));
        }
        m.insert("mutability".into(), json!(self.mutability.as_str()));
        m.insert("returned".into(), json!(self.returned.as_str()));
        m.insert("uniqueness".into(), json!(self.uniqueness.as_str()));
        Value::Object(m)
    }
}

/// A schema (RFC 7643 §7): its URN, name, description and top-level attributes.
#[derive(Clone, Debug)]
pub struct SchemaDef {
    /// The schema URN, e.g. [`USER`].
    pub id: String,
    /// Human-readable name, e.g. `User`.
    pub name: String,
    /// Human-readable description.
    pub description: String,
    /// Top-level attributes (without the common attributes `id`, `externalId`, `meta`).
    pub attributes: Vec<AttributeDef>,
}

impl SchemaDef {
    /// The top-level attribute called `name` (case-insensitive).
    pub fn attribute(&self, name: &str) -> Option<&AttributeDef> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// RFC 7643 §7 representation incl. `"schemas": [SCHEMA]` and
    /// `meta {resourceType: "Schema", location: "{base}/Schemas/{id}"}`.
    pub fn to_json(&self, base_url: &str) -> Value {
        let attrs: Vec<Value> = self.attributes.iter().map(AttributeDef::to_json).collect();
        json!({
            "schemas": [SCHEMA],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": attrs,
            "meta": {
                "resourceType": "Schema",
                "location": format!("{}/Schemas/{}", base_url.trim_end_matches('/'), self.id),
            },
        })
    }
}

fn string(name: &str, description: &str) -> AttributeDef {
    AttributeDef::new(name, AttrType::String, description)
}

fn boolean(name: &str, description: &str) -> AttributeDef {
    AttributeDef::new(name, AttrType::Boolean, description)
}

fn reference(name: &str, description: &str, types: &[&str]) -> AttributeDef {
    AttributeDef::new(name, AttrType::Reference, description).refs(types)
}

fn complex(name: &str, description: &str, subs: Vec<AttributeDef>) -> AttributeDef {
    AttributeDef::new(name, AttrType::Complex, description).subs(subs)
}

/// The usual `value` / `display` / `type` / `primary` quartet of a multi-valued attribute
/// (RFC 7643 §2.4); `value` has type `value_kind`.
fn multi_valued(
    name: &str,
    description: &str,
    value_kind: AttrType,
    value_description: &str,
    types: &[&str],
) -> AttributeDef {
    let mut value = AttributeDef::new("value", value_kind, value_description);
    if value_kind == AttrType::Reference {
        value = value.refs(&["external"]);
    }
    complex(
        name,
        description,
        vec![
            value,
            string(
                "display",
                "A human-readable name, primarily used for display purposes.",
            ),
            string("type", "A label indicating the attribute's function.").canonical(types),
            boolean(
                "primary",
                "A Boolean value indicating the 'primary' or preferred attribute value for this \
                 attribute. The primary attribute value 'true' MUST appear no more than once.",
            ),
        ],
    )
    .multi()
}

fn common_defs() -> Vec<AttributeDef> {
    use Mutability::ReadOnly;
    let ro = |a: AttributeDef| a.mutability(ReadOnly);
    vec![
        string(
            "id",
            "Unique identifier for the SCIM resource as defined by the service provider. \
             REQUIRED.",
        )
        .case_exact()
        .mutability(ReadOnly)
        .returned(Returned::Always)
        .uniqueness(Uniqueness::Server),
        string(
            "externalId",
            "A String that is an identifier for the resource as defined by the provisioning \
             client.",
        )
        .case_exact(),
        complex(
            "meta",
            "A complex attribute containing resource metadata.",
            vec![
                ro(string(
                    "resourceType",
                    "The name of the resource type of the resource.",
                )
                .case_exact()),
                ro(AttributeDef::new(
                    "created",
                    AttrType::DateTime,
                    "The DateTime that the resource was added to the service provider.",
                )),
                ro(AttributeDef::new(
                    "lastModified",
                    AttrType::DateTime,
                    "The most recent DateTime that the details of this resource were updated at \
                     the service provider.",
                )),
                ro(reference(
                    "location",
                    "The URI of the resource being returned.",
                    &["uri"],
                )
                .case_exact()),
                ro(string("version", "The version of the resource being returned.").case_exact()),
            ],
        )
        .mutability(ReadOnly),
    ]
}

/// Common attributes (RFC 7643 §3.1): `id` (readOnly, caseExact, returned always, uniqueness
/// server), `externalId` (caseExact, readWrite) and `meta` (complex, readOnly: `resourceType`,
/// `created` and `lastModified` (dateTime), `location` (reference), `version`).
pub fn common_attributes() -> Vec<AttributeDef> {
    common_defs()
}

/// The common attributes, built once, for path resolution.
fn common_static() -> &'static [AttributeDef] {
    static COMMON: OnceLock<Vec<AttributeDef>> = OnceLock::new();
    COMMON.get_or_init(common_defs)
}

/// RFC 7643 §4.1 User schema with every attribute and sub-attribute.
pub fn user_schema() -> SchemaDef {
    use AttrType::{Binary, Reference};
    let name_part = |n: &str, d: &str| string(n, d);
    let attributes =
        vec![
        string(
            "userName",
            "Unique identifier for the User, typically used by the user to directly authenticate \
             to the service provider. Each User MUST include a non-empty userName value. This \
             identifier MUST be unique across the service provider's entire set of Users. \
             REQUIRED.",
        )
        .required()
        .uniqueness(Uniqueness::Server),
        complex(
            "name",
            "The components of the user's real name.",
            vec![
                name_part("formatted", "The full name, including all middle names, titles, and \
                     suffixes as appropriate, formatted for display."),
                name_part("familyName", "The family name of the User, or last name."),
                name_part("givenName", "The given name of the User, or first name."),
                name_part("middleName", "The middle name(s) of the User."),
                name_part("honorificPrefix", "The honorific prefix(es) of the User, or title."),
                name_part("honorificSuffix", "The honorific suffix(es) of the User, or suffix."),
            ],
        ),
        string("displayName", "The name of the User, suitable for display to end-users."),
        string("nickName", "The casual way to address the user in real life."),
        reference(
            "profileUrl",
            "A fully qualified URL pointing to a page representing the User's online profile.",
            &["external"],
        ),
        string("title", "The user's title, such as \"Vice President\"."),
        string(
            "userType",
            "Used to identify the relationship between the organization and the user.",
        ),
        string(
            "preferredLanguage",
            "Indicates the User's preferred written or spoken language (RFC 7231 \
             Accept-Language format).",
        ),
        string(
            "locale",
            "Used to indicate the User's default location for purposes of localizing items \
             such as currency, date time format, or numerical representations.",
        ),
        string("timezone", "The User's time zone in the 'Olson' time zone database format."),
        boolean("active", "A Boolean value indicating the User's administrative status."),
        string(
            "password",
            "The User's cleartext password. This attribute is intended to be used as a means to \
             specify an initial password when creating a new User or to reset an existing \
             User's password.",
        )
        .mutability(Mutability::WriteOnly)
        .returned(Returned::Never),
        multi_valued(
            "emails",
            "Email addresses for the user.",
            AttrType::String,
            "Email addresses for the user. Canonical type values of 'work', 'home', and 'other'.",
            &["work", "home", "other"],
        ),
        multi_valued(
            "phoneNumbers",
            "Phone numbers for the User.",
            AttrType::String,
            "Phone number of the User.",
            &["work", "home", "mobile", "fax", "pager", "other"],
        ),
        multi_valued(
            "ims",
            "Instant messaging addresses for the User.",
            AttrType::String,
            "Instant messaging address for the User.",
            &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"],
        ),
        multi_valued(
            "photos",
            "URLs of photos of the User.",
            Reference,
            "URL of a photo of the User.",
            &["photo", "thumbnail"],
        ),
        complex(
            "addresses",
            "A physical mailing address for this User.",
            vec![
                string("formatted", "The full mailing address, formatted for display."),
                string("streetAddress", "The full street address component."),
                string("locality", "The city or locality component."),
                string("region", "The state or region component."),
                string("postalCode", "The zip code or postal code component."),
                string("country", "The country name component (ISO 3166-1 alpha-2)."),
                string("type", "A label indicating the attribute's function.")
                    .canonical(&["work", "home", "other"]),
                boolean("primary", "A Boolean value indicating the preferred address."),
            ],
        )
        .multi(),
        complex(
            "groups",
            "A list of groups to which the user belongs, either through direct membership, \
             through nested groups, or dynamically calculated.",
            vec![
                string("value", "The identifier of the User's group.")
                    .mutability(Mutability::ReadOnly),
                reference(
                    "$ref",
                    "The URI of the corresponding 'Group' resource to which the user belongs.",
                    &["User", "Group"],
                )
                .mutability(Mutability::ReadOnly),
                string("display", "A human-readable name, primarily used for display purposes.")
                    .mutability(Mutability::ReadOnly),
                string("type", "A label indicating the attribute's function.")
                    .canonical(&["direct", "indirect"])
                    .mutability(Mutability::ReadOnly),
            ],
        )
        .multi()
        .mutability(Mutability::ReadOnly),
        multi_valued(
            "entitlements",
            "A list of entitlements for the User that represent a thing the User has.",
            AttrType::String,
            "The value of an entitlement.",
            &[],
        ),
        multi_valued(
            "roles",
            "A list of roles for the User that collectively represent who the User is.",
            AttrType::String,
            "The value of a role.",
            &[],
        ),
        multi_valued(
            "x509Certificates",
            "A list of certificates issued to the User.",
            Binary,
            "The value of an X.509 certificate (base64 DER).",
            &[],
        ),
    ];
    SchemaDef {
        id: USER.to_owned(),
        name: "User".to_owned(),
        description: "User Account".to_owned(),
        attributes,
    }
}

/// RFC 7643 §4.3 Enterprise User extension.
pub fn enterprise_user_schema() -> SchemaDef {
    let attributes = vec![
        string(
            "employeeNumber",
            "Numeric or alphanumeric identifier assigned to a person, typically based on order \
             of hire or association with an organization.",
        ),
        string("costCenter", "Identifies the name of a cost center."),
        string("organization", "Identifies the name of an organization."),
        string("division", "Identifies the name of a division."),
        string("department", "Identifies the name of a department."),
        complex(
            "manager",
            "The User's manager. A complex type that optionally allows service providers to \
             represent organizational hierarchy by referencing the 'id' attribute of another \
             User.",
            vec![
                string(
                    "value",
                    "The id of the SCIM resource representing the User's manager.",
                ),
                reference(
                    "$ref",
                    "The URI of the SCIM resource representing the User's manager.",
                    &["User"],
                ),
                string("displayName", "The displayName of the User's manager.")
                    .mutability(Mutability::ReadOnly),
            ],
        ),
    ];
    SchemaDef {
        id: ENTERPRISE_USER.to_owned(),
        name: "EnterpriseUser".to_owned(),
        description: "Enterprise User".to_owned(),
        attributes,
    }
}

/// RFC 7643 §4.2 Group schema. `displayName` is marked required as §4.2 states (the §8.7.1
/// listing says `required: false`), and `members` carries a `display` sub-attribute as sent
/// by Okta and Entra ID.
pub fn group_schema() -> SchemaDef {
    use Mutability::Immutable;
    let attributes = vec![
        string(
            "displayName",
            "A human-readable name for the Group. REQUIRED.",
        )
        .required(),
        complex(
            "members",
            "A list of members of the Group.",
            vec![
                string("value", "Identifier of the member of this Group.").mutability(Immutable),
                reference(
                    "$ref",
                    "The URI corresponding to a SCIM resource that is a member of this Group.",
                    &["User", "Group"],
                )
                .mutability(Immutable),
                string(
                    "display",
                    "A human-readable name, primarily used for display purposes.",
                )
                .mutability(Immutable),
                string(
                    "type",
                    "A label indicating the type of resource, e.g., 'User' or 'Group'.",
                )
                .canonical(&["User", "Group"])
                .mutability(Immutable),
            ],
        )
        .multi(),
    ];
    SchemaDef {
        id: GROUP.to_owned(),
        name: "Group".to_owned(),
        description: "Group".to_owned(),
        attributes,
    }
}

/// A resource type's schema: core + extensions. Resource JSON keeps core attributes at top
/// level (canonical names) and each extension's attributes under a key equal to the
/// extension URN.
#[derive(Clone, Debug)]
pub struct ResourceSchema {
    /// The core schema (e.g. [`user_schema`]).
    pub core: SchemaDef,
    /// Schema extensions (e.g. [`enterprise_user_schema`]).
    pub extensions: Vec<SchemaDef>,
}

/// The result of [`ResourceSchema::resolve`].
#[derive(Clone, Copy, Debug)]
pub struct Resolved<'a> {
    /// `Some(urn)` when the attribute lives in an extension (the canonical URN).
    pub extension: Option<&'a str>,
    /// The top-level attribute.
    pub attr: &'a AttributeDef,
    /// The sub-attribute when the path names one.
    pub sub: Option<&'a AttributeDef>,
}

impl<'a> Resolved<'a> {
    /// The sub-attribute if the path names one, else the top-level attribute (borrowed from
    /// the schema, not from `self`).
    pub fn leaf(&self) -> &'a AttributeDef {
        self.sub.unwrap_or(self.attr)
    }
}

impl ResourceSchema {
    /// User core schema with the Enterprise User extension.
    pub fn user() -> ResourceSchema {
        ResourceSchema {
            core: user_schema(),
            extensions: vec![enterprise_user_schema()],
        }
    }

    /// Group core schema without extensions.
    pub fn group() -> ResourceSchema {
        ResourceSchema {
            core: group_schema(),
            extensions: Vec::new(),
        }
    }

    /// The extension whose URN is `urn` (case-insensitive).
    pub fn extension(&self, urn: &str) -> Option<&SchemaDef> {
        self.extensions
            .iter()
            .find(|e| e.id.eq_ignore_ascii_case(urn))
    }

    /// Resolves `path` (URN optional; names case-insensitive; common attributes
    /// id/externalId/meta too). A URN equal to the core schema id means "core"; an
    /// unqualified name is looked up in the core schema, then the common attributes, then the
    /// extensions. Returns `None` for unknown attributes and unknown sub-attributes.
    pub fn resolve(&self, path: &AttrPath) -> Option<Resolved<'_>> {
        let (extension, attr) = match &path.urn {
            Some(urn) if urn.eq_ignore_ascii_case(&self.core.id) => {
                (None, self.core_or_common(&path.name)?)
            }
            Some(urn) => {
                let ext = self.extension(urn)?;
                (Some(ext.id.as_str()), ext.attribute(&path.name)?)
            }
            None => match self.core_or_common(&path.name) {
                Some(attr) => (None, attr),
                None => self
                    .extensions
                    .iter()
                    .find_map(|e| e.attribute(&path.name).map(|a| (Some(e.id.as_str()), a)))?,
            },
        };
        let sub = match &path.sub {
            Some(name) => Some(attr.sub(name)?),
            None => None,
        };
        Some(Resolved {
            extension,
            attr,
            sub,
        })
    }

    fn core_or_common(&self, name: &str) -> Option<&AttributeDef> {
        self.core.attribute(name).or_else(|| {
            common_static()
                .iter()
                .find(|a| a.name.eq_ignore_ascii_case(name))
        })
    }
}

#[cfg(test)]
mod tests;

/// What a JSON value is, for error details (`"a string"`, `"an object"`).
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
