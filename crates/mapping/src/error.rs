//! The mapping crate's errors, split by when they happen: [`CompileError`] when a mapping
//! file is read (every problem, each with its file, line and column), [`TranslateError`] when
//! a request or an answer goes through a compiled mapping.

use std::fmt;

/// One problem of a mapping file, where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file name (or other label of the mapping text).
    pub source_name: String,
    /// 1-based line and column of the key the problem is about, when it can be found.
    pub at: Option<(usize, usize)>,
    /// The problem, starting with the key path it concerns (`users.attributes[4].scim: …`).
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some((line, col)) => write!(f, "{}:{line}:{col}: {}", self.source_name, self.message),
            None => write!(f, "{}: {}", self.source_name, self.message),
        }
    }
}

/// A mapping file that cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// Not valid TOML, or an unknown or missing key.
    #[error("{source_name}:{line}:{column}: {message}")]
    Syntax {
        /// File name or other label of the mapping text.
        source_name: String,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// Semantic problems: all of them, one per line.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

/// A `{placeholder}` template that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template {template:?}: {problem}")]
pub struct TemplateError {
    /// The template text.
    pub template: String,
    /// What is wrong.
    pub problem: String,
}

impl TemplateError {
    pub(crate) fn new(template: &str, problem: &str) -> Self {
        Self {
            template: template.to_owned(),
            problem: problem.to_owned(),
        }
    }
}

/// A value that cannot go through a compiled mapping.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// A SCIM value cannot be written to the legacy app (client input).
    #[error("{attribute}: {problem}")]
    Value {
        /// The SCIM attribute as written in the mapping, e.g. `addresses[primary].region`.
        attribute: String,
        /// What is wrong with the value.
        problem: String,
    },
    /// A required SCIM attribute is missing (client input).
    #[error("{0} is required")]
    Required(String),
    /// A legacy answer does not have the shape the mapping declares (a legacy fault).
    #[error("the legacy answer {0}")]
    Answer(String),
    /// A call was prepared without a value its template needs (a sidecar bug: the compiler
    /// checks which calls may use which placeholders).
    #[error("no value for placeholder {{{0}}}")]
    MissingVar(String),
}
