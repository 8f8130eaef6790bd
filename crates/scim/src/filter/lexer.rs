//! Tokenizer for the filter language: parentheses, brackets, JSON string literals and
//! "words" (attribute paths, keywords, numbers, `true`/`false`/`null`). Positions are
//! character offsets. Iterative, never panics.

use super::FilterError;

/// A token kind.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok {
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `[`
    LBracket,
    /// `]`
    RBracket,
    /// A JSON string literal, unescaped.
    Str(String),
    /// A maximal run of characters that are not whitespace, `()[]` or `"`.
    Word(String),
}

/// A token and the character offset where it starts.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Token {
    pub(super) tok: Tok,
    pub(super) pos: usize,
}

/// Splits `input` into tokens.
pub(super) fn tokenize(input: &str) -> Result<Vec<Token>, FilterError> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let pos = i;
        let single = match c {
            '(' => Some(Tok::LParen),
            ')' => Some(Tok::RParen),
            '[' => Some(Tok::LBracket),
            ']' => Some(Tok::RBracket),
            _ => None,
        };
        if let Some(tok) = single {
            tokens.push(Token { tok, pos });
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '"' {
            let (s, next) = string_literal(&chars, i)?;
            tokens.push(Token {
                tok: Tok::Str(s),
                pos,
            });
            i = next;
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.get(i) {
                if c.is_whitespace() || matches!(c, '(' | ')' | '[' | ']' | '"') {
                    break;
                }
                word.push(c);
                i += 1;
            }
            tokens.push(Token {
                tok: Tok::Word(word),
                pos,
            });
        }
    }
    Ok(tokens)
}

/// Reads the JSON string literal whose opening quote is at `start`; returns the unescaped
/// text and the index after the closing quote.
fn string_literal(chars: &[char], start: usize) -> Result<(String, usize), FilterError> {
    let mut out = String::new();
    let mut i = start + 1;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err(FilterError::new(
                start,
                "closing '\"' of unterminated string",
            ));
        };
        match c {
            '"' => return Ok((out, i + 1)),
            '\\' => {
                let Some(&e) = chars.get(i + 1) else {
                    return Err(FilterError::new(
                        start,
                        "closing '\"' of unterminated string",
                    ));
                };
                let simple = match e {
                    '"' => Some('"'),
                    '\\' => Some('\\'),
                    '/' => Some('/'),
                    'b' => Some('\u{8}'),
                    'f' => Some('\u{c}'),
                    'n' => Some('\n'),
                    'r' => Some('\r'),
                    't' => Some('\t'),
                    _ => None,
                };
                if let Some(ch) = simple {
                    out.push(ch);
                    i += 2;
                } else if e == 'u' {
                    let (ch, next) = unicode_escape(chars, i)?;
                    out.push(ch);
                    i = next;
                } else {
                    return Err(FilterError::new(
                        i,
                        "a valid escape sequence (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)",
                    ));
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
}

/// Decodes `\uXXXX` (and a following low surrogate `\uXXXX` when the first is a high
/// surrogate) starting at the backslash at `at`.
fn unicode_escape(chars: &[char], at: usize) -> Result<(char, usize), FilterError> {
    let bad = || FilterError::new(at, "a valid \\uXXXX escape");
    let first = hex4(chars, at + 2).ok_or_else(bad)?;
    let mut next = at + 6;
    let code = if (0xD800..0xDC00).contains(&first) {
        let is_pair = chars.get(next) == Some(&'\\') && chars.get(next + 1) == Some(&'u');
        let low = if is_pair { hex4(chars, next + 2) } else { None };
        match low {
            Some(low) if (0xDC00..0xE000).contains(&low) => {
                next += 6;
                0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00)
            }
            _ => return Err(bad()),
        }
    } else {
        first
    };
    let ch = char::from_u32(code).ok_or_else(bad)?;
    Ok((ch, next))
}

fn hex4(chars: &[char], from: usize) -> Option<u32> {
    let digits = chars.get(from..from + 4)?;
    digits
        .iter()
        .try_fold(0u32, |acc, c| Some(acc * 16 + c.to_digit(16)?))
}
