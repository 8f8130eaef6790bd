//! Recursive-descent parser over the token stream. Recursion happens only when entering
//! parentheses, `not (` or `[`; the depth is counted on the way down and input nested deeper
//! than [`MAX_FILTER_DEPTH`] is rejected before recursing further. `and`/`or` chains are
//! built iteratively.

use serde_json::{Number, Value};

use super::lexer::{Tok, Token, tokenize};
use super::{AttrPath, CompareOp, Filter, FilterError, MAX_FILTER_DEPTH, MAX_FILTER_LEN, too_long};
use crate::attr::parse_attr_path;

const EXPECT_EXPR: &str = "attribute path, 'not' or '('";
const EXPECT_OP: &str = "comparison operator (eq, ne, co, sw, ew, gt, ge, lt, le) or 'pr'";
const EXPECT_VALUE: &str = "comparison value (string, number, true, false or null)";

/// Parses a whole filter; `in_value` means "already inside `[..]`" (no nested value paths).
pub(super) fn parse(input: &str, in_value: bool) -> Result<Filter, FilterError> {
    let len = input.chars().count();
    if len > MAX_FILTER_LEN {
        return Err(FilterError::new(0, too_long()));
    }
    let tokens = tokenize(input)?;
    let mut p = Parser {
        tokens,
        i: 0,
        depth: 0,
        end: len,
        in_value,
    };
    let filter = p.or_expr()?;
    match p.peek() {
        None => Ok(filter),
        Some(t) => Err(FilterError::new(t.pos, "'and', 'or' or end of filter")),
    }
}

struct Parser {
    tokens: Vec<Token>,
    i: usize,
    depth: usize,
    /// Position reported for "unexpected end of input".
    end: usize,
    in_value: bool,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.i)
    }

    fn peek_tok(&self) -> Option<&Tok> {
        self.peek().map(|t| &t.tok)
    }

    fn pos(&self) -> usize {
        self.peek().map_or(self.end, |t| t.pos)
    }

    fn peek_keyword(&self, kw: &str) -> bool {
        matches!(self.peek_tok(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn expect(&mut self, tok: &Tok, what: &str) -> Result<(), FilterError> {
        if self.peek_tok() == Some(tok) {
            self.i += 1;
            Ok(())
        } else {
            Err(FilterError::new(self.pos(), what))
        }
    }

    fn descend(&mut self) -> Result<(), FilterError> {
        if self.depth >= MAX_FILTER_DEPTH {
            return Err(FilterError::new(
                self.pos(),
                format!("nesting of at most {MAX_FILTER_DEPTH} levels"),
            ));
        }
        self.depth += 1;
        Ok(())
    }

    fn or_expr(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.and_expr()?;
        while self.peek_keyword("or") {
            self.i += 1;
            let right = self.and_expr()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.unary()?;
        while self.peek_keyword("and") {
            self.i += 1;
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// Parses `( filter )`; the current token is the `(`. The caller accounts for depth.
    fn parenthesized(&mut self) -> Result<Filter, FilterError> {
        self.i += 1; // '('
        let inner = self.or_expr()?;
        self.expect(&Tok::RParen, "')'")?;
        Ok(inner)
    }

    fn unary(&mut self) -> Result<Filter, FilterError> {
        let Some(token) = self.peek() else {
            return Err(FilterError::new(self.end, EXPECT_EXPR));
        };
        let pos = token.pos;
        match &token.tok {
            Tok::LParen => {
                self.descend()?;
                let inner = self.parenthesized()?;
                self.depth -= 1;
                Ok(inner)
            }
            // `not` is the operator only when a '(' follows; otherwise it is an attribute name.
            Tok::Word(w)
                if w.eq_ignore_ascii_case("not")
                    && matches!(
                        self.tokens.get(self.i + 1).map(|t| &t.tok),
                        Some(Tok::LParen)
                    ) =>
            {
                self.descend()?;
                self.i += 1; // 'not'
                let inner = self.parenthesized()?;
                self.depth -= 1;
                Ok(Filter::Not(Box::new(inner)))
            }
            Tok::Word(w) => {
                let path = parse_attr_path(w, pos)?;
                self.i += 1;
                if self.peek_tok() == Some(&Tok::LBracket) {
                    self.value_path(path)
                } else {
                    self.attr_exp(path)
                }
            }
            _ => Err(FilterError::new(pos, EXPECT_EXPR)),
        }
    }

    fn value_path(&mut self, path: AttrPath) -> Result<Filter, FilterError> {
        if self.in_value {
            return Err(FilterError::new(
                self.pos(),
                "no nested value filter '[' inside '[..]'",
            ));
        }
        self.descend()?;
        self.i += 1; // '['
        self.in_value = true;
        let inner = self.or_expr()?;
        self.in_value = false;
        self.expect(&Tok::RBracket, "']'")?;
        self.depth -= 1;
        // Not RFC grammar, but Entra ID sends it for matching lookups:
        // `emails[type eq "work"].value eq "x"` means
        // `emails[type eq "work" and value eq "x"]`.
        if let Some(Token {
            tok: Tok::Word(w),
            pos,
        }) = self.peek()
            && let Some(sub) = w.strip_prefix('.')
        {
            let pos = *pos + 1;
            let sub = parse_attr_path(sub, pos)?;
            if sub.urn.is_some() || sub.sub.is_some() {
                return Err(FilterError::new(pos, "a sub-attribute name after ']'"));
            }
            self.i += 1;
            let cmp = self.attr_exp(sub)?;
            return Ok(Filter::ValuePath(
                path,
                Box::new(Filter::And(Box::new(inner), Box::new(cmp))),
            ));
        }
        Ok(Filter::ValuePath(path, Box::new(inner)))
    }

    fn attr_exp(&mut self, path: AttrPath) -> Result<Filter, FilterError> {
        let pos = self.pos();
        let op = match self.peek_tok() {
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("pr") => {
                self.i += 1;
                return Ok(Filter::Present(path));
            }
            Some(Tok::Word(w)) => CompareOp::from_keyword(w),
            _ => None,
        };
        let op = op.ok_or_else(|| FilterError::new(pos, EXPECT_OP))?;
        self.i += 1;
        let pos = self.pos();
        let value = match self.peek_tok() {
            Some(Tok::Str(s)) => Value::String(s.clone()),
            Some(Tok::Word(w)) => literal(w).ok_or_else(|| FilterError::new(pos, EXPECT_VALUE))?,
            _ => return Err(FilterError::new(pos, EXPECT_VALUE)),
        };
        self.i += 1;
        Ok(Filter::Compare(path, op, value))
    }
}

/// `true` / `false` / `null` (case-insensitive) or a JSON number.
fn literal(w: &str) -> Option<Value> {
    if w.eq_ignore_ascii_case("true") {
        Some(Value::Bool(true))
    } else if w.eq_ignore_ascii_case("false") {
        Some(Value::Bool(false))
    } else if w.eq_ignore_ascii_case("null") {
        Some(Value::Null)
    } else if is_json_number(w) {
        w.parse::<Number>().ok().map(Value::Number)
    } else {
        None
    }
}

/// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
fn is_json_number(w: &str) -> bool {
    let b = w.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    let int_start = i;
    let n = digits(&mut i);
    if n == 0 || (n > 1 && b.get(int_start) == Some(&b'0')) {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}
