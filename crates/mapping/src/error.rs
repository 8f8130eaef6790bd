//! Errors of the mapping module: a mapping file that cannot be compiled, or a value that
//! cannot be translated.

/// What can go wrong compiling a mapping or translating through it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MappingError {
    /// The file is not valid TOML or has unknown/missing keys (message has line and column).
    #[error("{source_name}:{message}")]
    Syntax {
        /// File name or other label of the mapping text.
        source_name: String,
        /// The parser's message, with position.
        message: String,
    },
    /// A semantic problem in the mapping file.
    #[error("{0}")]
    Invalid(String),
    /// A template could not be parsed.
    #[error("template {template:?}: {problem}")]
    Template {
        /// The template text.
        template: String,
        /// What is wrong.
        problem: String,
    },
    /// A template was rendered without a value for one of its placeholders.
    #[error("no value for placeholder {{{0}}}")]
    MissingVar(&'static str),
    /// A SCIM value cannot be written to the legacy app (client input: 400 invalidValue).
    #[error("{attribute}: {problem}")]
    Value {
        /// The SCIM attribute as written in the mapping, e.g. `addresses[primary].region`.
        attribute: String,
        /// What is wrong with the value.
        problem: String,
    },
    /// A required SCIM attribute is missing (client input: 400 invalidValue).
    #[error("{0} is required")]
    Required(String),
    /// A legacy answer does not have the shape the mapping declares (legacy fault: 502).
    #[error("the legacy answer {0}")]
    Answer(String),
}

impl MappingError {
    pub(crate) fn template(template: &str, problem: &str) -> Self {
        Self::Template {
            template: template.to_owned(),
            problem: problem.to_owned(),
        }
    }
}
