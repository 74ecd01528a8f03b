//! Word expansion as sh does it: quotes, `~`, parameters, command substitution, arithmetic,
//! then field splitting of what was unquoted, then globbing over the sandbox's files. Words
//! are read into pieces by brush-parser; shell patterns become regular expressions by its
//! pattern translator.

use super::{Boxed, Input, Io, MAX_DEPTH, Shell, Stream, parser_options};
use brush_parser::ast::{ArithmeticExpr, ArithmeticTarget, BinaryOperator, UnaryAssignmentOperator, UnaryOperator};
use brush_parser::word::{Parameter, ParameterExpr, ParameterTestType, SpecialParameter, TildeExpr, WordPiece};

/// A run of a word's text: whether it was quoted, and whether field splitting applies.
struct Segment {
    text: String,
    quoted: bool,
    split: bool,
}

/// A field being made: its text, and the same text as a pattern (quoted characters escaped).
#[derive(Default)]
struct Field {
    text: String,
    pattern: String,
    globbed: bool,
    kept: bool,
}

/// Characters that make a word a pattern.
fn is_glob(c: char) -> bool {
    matches!(c, '*' | '?' | '[')
}

/// `text` as a pattern that matches only itself.
fn escape_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A whole-string matcher for a shell pattern.
pub(super) fn pattern_regex(pattern: &str) -> Result<regex::Regex, String> {
    let body = brush_parser::pattern::pattern_to_regex_str(pattern, false).map_err(|e| e.to_string())?;
    regex::Regex::new(&format!("^(?s:{body})$")).map_err(|e| format!("bad pattern '{pattern}': {e}"))
}

impl Shell {
    /// Expands words into fields (split and globbed).
    pub(super) async fn expand_words<'w>(
        &mut self,
        words: impl Iterator<Item = &'w str>,
        io: &Io,
    ) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        for word in words {
            let fields = self.fields(word, io).await?;
            for field in fields {
                if field.globbed {
                    let matched = self.glob(&field.pattern).await;
                    if !matched.is_empty() {
                        out.extend(matched);
                        continue;
                    }
                }
                out.push(field.text);
            }
        }
        Ok(out)
    }

    /// Expands a word into one string: no splitting, no globbing (assignments, redirection
    /// targets, `case` words).
    pub(super) async fn expand_one(&mut self, word: &str, io: &Io) -> Result<String, String> {
        let pieces = brush_parser::word::parse(word, &parser_options()).map_err(|e| e.to_string())?;
        let segments = self.segments(pieces.into_iter().map(|p| p.piece).collect(), false, io).await?;
        Ok(segments.into_iter().map(|s| s.text).collect())
    }

    /// A here-document's body with its parameters and substitutions expanded.
    pub(super) async fn expand_heredoc(&mut self, body: &str, io: &Io) -> Result<String, String> {
        let pieces = brush_parser::word::parse_heredoc(body, &parser_options()).map_err(|e| e.to_string())?;
        let segments = self.segments(pieces.into_iter().map(|p| p.piece).collect(), true, io).await?;
        Ok(segments.into_iter().map(|s| s.text).collect())
    }

    /// Whether `value` matches the pattern word (its quoted parts literally).
    pub(super) async fn matches_pattern(&mut self, word: &str, value: &str, io: &Io) -> Result<bool, String> {
        let pattern = self.expand_pattern(word, io).await?;
        Ok(pattern_regex(&pattern)?.is_match(value))
    }

    async fn expand_pattern(&mut self, word: &str, io: &Io) -> Result<String, String> {
        let pieces = brush_parser::word::parse(word, &parser_options()).map_err(|e| e.to_string())?;
        let segments = self.segments(pieces.into_iter().map(|p| p.piece).collect(), false, io).await?;
        Ok(segments.iter().map(|s| if s.quoted { escape_pattern(&s.text) } else { s.text.clone() }).collect())
    }

    async fn fields(&mut self, word: &str, io: &Io) -> Result<Vec<Field>, String> {
        let pieces = brush_parser::word::parse(word, &parser_options()).map_err(|e| e.to_string())?;
        let segments = self.segments(pieces.into_iter().map(|p| p.piece).collect(), false, io).await?;
        let ifs = self.vars.get("IFS").cloned().unwrap_or_else(|| " \t\n".into());
        let mut fields = Vec::new();
        let mut current = Field::default();
        for s in segments {
            if s.quoted {
                current.kept = true;
            }
            for c in s.text.chars() {
                if s.split && ifs.contains(c) {
                    if current.kept || !current.text.is_empty() {
                        fields.push(std::mem::take(&mut current));
                    }
                    continue;
                }
                current.text.push(c);
                if s.quoted || (s.split && matches!(c, ']' | '\\')) {
                    current.pattern.push_str(&escape_pattern(&c.to_string()));
                } else {
                    current.globbed |= is_glob(c);
                    current.pattern.push(c);
                }
            }
        }
        if current.kept || !current.text.is_empty() {
            fields.push(current);
        }
        Ok(fields)
    }

    /// The segments of a word's pieces; `quoted` inside double quotes.
    fn segments<'a>(
        &'a mut self,
        pieces: Vec<WordPiece>,
        quoted: bool,
        io: &'a Io,
    ) -> Boxed<'a, Result<Vec<Segment>, String>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for piece in pieces {
                let literal = |text: String, q: bool| Segment { text, quoted: q, split: false };
                match piece {
                    WordPiece::Text(t) => out.push(literal(t, quoted)),
                    WordPiece::SingleQuotedText(t) => out.push(literal(t, true)),
                    WordPiece::AnsiCQuotedText(t) => out.push(literal(super::printf::unescape(&t).0, true)),
                    WordPiece::EscapeSequence(e) => {
                        let c = e.strip_prefix('\\').unwrap_or(&e);
                        if c != "\n" {
                            out.push(literal(c.to_string(), true));
                        }
                    }
                    WordPiece::DoubleQuotedSequence(inner) | WordPiece::GettextDoubleQuotedSequence(inner) => {
                        let inner = self.segments(inner.into_iter().map(|p| p.piece).collect(), true, io).await?;
                        out.push(literal(inner.into_iter().map(|s| s.text).collect(), true));
                    }
                    WordPiece::TildeExpansion(t) => {
                        let text = match t {
                            TildeExpr::Home => self.vars.get("HOME").cloned().unwrap_or_default(),
                            TildeExpr::WorkingDir => self.cwd.clone(),
                            TildeExpr::OldWorkingDir => self.vars.get("OLDPWD").cloned().unwrap_or_default(),
                            TildeExpr::UserHome(user) if user == "user" => self.files.home.clone(),
                            TildeExpr::UserHome(user) => format!("~{user}"),
                            _ => "~".into(),
                        };
                        out.push(literal(text, true));
                    }
                    WordPiece::ParameterExpansion(expr) => {
                        let text = self.parameter(expr, io).await?;
                        out.push(Segment { text, quoted, split: !quoted });
                    }
                    WordPiece::CommandSubstitution(line) | WordPiece::BackquotedCommandSubstitution(line) => {
                        let text = self.substitute(&line, io).await?;
                        out.push(Segment { text, quoted, split: !quoted });
                    }
                    WordPiece::ArithmeticExpression(expr) => {
                        let text = self.arithmetic(&expr.value, io).await?.to_string();
                        out.push(Segment { text, quoted, split: !quoted });
                    }
                }
            }
            Ok(out)
        })
    }

    /// `$(LINE)`: its output, less its trailing newlines; `$?` is its status after.
    async fn substitute(&mut self, line: &str, io: &Io) -> Result<String, String> {
        if self.depth >= MAX_DEPTH {
            return Err("command substitutions nest too deep".into());
        }
        let out = Stream::buffer();
        let sub_io = Io { stdin: Input::new(Vec::new()), out: out.clone(), err: io.err.clone() };
        let mut sub = self.subshell();
        let status = sub.source(line, &sub_io).await;
        if sub.exit == Some(124) {
            self.exit = Some(124);
        }
        self.status = status;
        self.substituted = true;
        let text = String::from_utf8_lossy(&out.take()).into_owned();
        Ok(text.trim_end_matches('\n').to_string())
    }

    fn lookup(&self, parameter: &Parameter) -> Option<String> {
        match parameter {
            Parameter::Named(name) => self.vars.get(name).cloned(),
            Parameter::Positional(0) => Some("sh".into()),
            Parameter::Positional(n) => self.positional.get(*n as usize - 1).cloned(),
            Parameter::Special(s) => Some(match s {
                SpecialParameter::AllPositionalParameters { .. } => self.positional.join(" "),
                SpecialParameter::PositionalParameterCount => self.positional.len().to_string(),
                SpecialParameter::LastExitStatus => self.status.to_string(),
                SpecialParameter::ProcessId => "1".into(),
                SpecialParameter::ShellName => "sh".into(),
                SpecialParameter::CurrentOptionFlags | SpecialParameter::LastBackgroundProcessId => String::new(),
            }),
            Parameter::NamedWithIndex { .. } | Parameter::NamedWithAllIndices { .. } => None,
        }
    }

    async fn parameter(&mut self, expr: ParameterExpr, io: &Io) -> Result<String, String> {
        let unset = |value: &Option<String>, test: &ParameterTestType| match test {
            ParameterTestType::UnsetOrNull => value.as_deref().is_none_or(str::is_empty),
            ParameterTestType::Unset => value.is_none(),
        };
        Ok(match expr {
            ParameterExpr::Parameter { parameter, indirect: false } => self.lookup(&parameter).unwrap_or_default(),
            ParameterExpr::UseDefaultValues { parameter, test_type, default_value, .. } => {
                let value = self.lookup(&parameter);
                if unset(&value, &test_type) {
                    self.expand_one(default_value.as_deref().unwrap_or(""), io).await?
                } else {
                    value.unwrap_or_default()
                }
            }
            ParameterExpr::AssignDefaultValues { parameter, test_type, default_value, .. } => {
                let value = self.lookup(&parameter);
                if unset(&value, &test_type) {
                    let v = self.expand_one(default_value.as_deref().unwrap_or(""), io).await?;
                    if let Parameter::Named(name) = &parameter {
                        self.vars.insert(name.clone(), v.clone());
                    }
                    v
                } else {
                    value.unwrap_or_default()
                }
            }
            ParameterExpr::UseAlternativeValue { parameter, test_type, alternative_value, .. } => {
                let value = self.lookup(&parameter);
                if unset(&value, &test_type) {
                    String::new()
                } else {
                    self.expand_one(alternative_value.as_deref().unwrap_or(""), io).await?
                }
            }
            ParameterExpr::IndicateErrorIfNullOrUnset { parameter, test_type, error_message, .. } => {
                let value = self.lookup(&parameter);
                if unset(&value, &test_type) {
                    let message = match error_message {
                        Some(m) => self.expand_one(&m, io).await?,
                        None => "parameter not set".into(),
                    };
                    let name = parameter.to_string();
                    return Err(format!("{}: {message}", name.trim_start_matches("${").trim_end_matches('}')));
                }
                value.unwrap_or_default()
            }
            ParameterExpr::ParameterLength { parameter, .. } => {
                self.lookup(&parameter).unwrap_or_default().chars().count().to_string()
            }
            ParameterExpr::RemoveSmallestSuffixPattern { parameter, pattern, .. } => {
                self.trim(&parameter, pattern, false, false, io).await?
            }
            ParameterExpr::RemoveLargestSuffixPattern { parameter, pattern, .. } => {
                self.trim(&parameter, pattern, false, true, io).await?
            }
            ParameterExpr::RemoveSmallestPrefixPattern { parameter, pattern, .. } => {
                self.trim(&parameter, pattern, true, false, io).await?
            }
            ParameterExpr::RemoveLargestPrefixPattern { parameter, pattern, .. } => {
                self.trim(&parameter, pattern, true, true, io).await?
            }
            other => return Err(format!("{other:?}: this parameter expansion is not offered")),
        })
    }

    /// `${x#p}`, `${x##p}`, `${x%p}`, `${x%%p}`.
    async fn trim(
        &mut self,
        parameter: &Parameter,
        pattern: Option<String>,
        prefix: bool,
        largest: bool,
        io: &Io,
    ) -> Result<String, String> {
        let value = self.lookup(parameter).unwrap_or_default();
        let pattern = self.expand_pattern(pattern.as_deref().unwrap_or(""), io).await?;
        let re = pattern_regex(&pattern)?;
        let mut cuts: Vec<usize> = value.char_indices().map(|(i, _)| i).chain([value.len()]).collect();
        // Prefixes are tried shortest first, suffixes from the end (shortest) on.
        if !prefix {
            cuts.reverse();
        }
        if largest {
            cuts.reverse();
        }
        for at in cuts {
            let (head, tail) = value.split_at(at);
            if prefix && re.is_match(head) {
                return Ok(tail.to_string());
            }
            if !prefix && re.is_match(tail) {
                return Ok(head.to_string());
            }
        }
        Ok(value)
    }

    /// `$(( EXPR ))` and `(( EXPR ))`.
    pub(super) async fn arithmetic(&mut self, text: &str, io: &Io) -> Result<i64, String> {
        let expanded = self.expand_one(text, io).await?;
        let expr = brush_parser::arithmetic::parse(&expanded).map_err(|e| format!("arithmetic: {e}"))?;
        self.evaluate(&expr)
    }

    fn variable(&self, target: &ArithmeticTarget) -> Result<(String, i64), String> {
        let ArithmeticTarget::Variable(name) = target else {
            return Err("arrays are not offered".into());
        };
        let text = self.vars.get(name).cloned().unwrap_or_default();
        let value = if text.trim().is_empty() {
            0
        } else {
            text.trim().parse().map_err(|_| format!("{text}: not a number"))?
        };
        Ok((name.clone(), value))
    }

    fn evaluate(&mut self, expr: &ArithmeticExpr) -> Result<i64, String> {
        Ok(match expr {
            ArithmeticExpr::Literal(n) => *n,
            ArithmeticExpr::Reference(t) => self.variable(t)?.1,
            ArithmeticExpr::UnaryOp(op, e) => {
                let v = self.evaluate(e)?;
                match op {
                    UnaryOperator::UnaryPlus => v,
                    UnaryOperator::UnaryMinus => v.wrapping_neg(),
                    UnaryOperator::BitwiseNot => !v,
                    UnaryOperator::LogicalNot => i64::from(v == 0),
                }
            }
            ArithmeticExpr::BinaryOp(op, a, b) => {
                let a = self.evaluate(a)?;
                if matches!(op, BinaryOperator::LogicalAnd) && a == 0 {
                    return Ok(0);
                }
                if matches!(op, BinaryOperator::LogicalOr) && a != 0 {
                    return Ok(1);
                }
                let b = self.evaluate(b)?;
                binary(op, a, b)?
            }
            ArithmeticExpr::Conditional(c, a, b) => {
                if self.evaluate(c)? != 0 {
                    self.evaluate(a)?
                } else {
                    self.evaluate(b)?
                }
            }
            ArithmeticExpr::Assignment(t, e) => {
                let v = self.evaluate(e)?;
                let (name, _) = self.variable(t).map_err(|_| "arrays are not offered".to_string())?;
                self.vars.insert(name, v.to_string());
                v
            }
            ArithmeticExpr::BinaryAssignment(op, t, e) => {
                let (name, old) = self.variable(t)?;
                let v = binary(op, old, self.evaluate(e)?)?;
                self.vars.insert(name, v.to_string());
                v
            }
            ArithmeticExpr::UnaryAssignment(op, t) => {
                let (name, old) = self.variable(t)?;
                let new = match op {
                    UnaryAssignmentOperator::PrefixIncrement | UnaryAssignmentOperator::PostfixIncrement => old + 1,
                    _ => old - 1,
                };
                self.vars.insert(name, new.to_string());
                match op {
                    UnaryAssignmentOperator::PrefixIncrement | UnaryAssignmentOperator::PrefixDecrement => new,
                    _ => old,
                }
            }
        })
    }

    /// The paths a pattern matches, sorted; none when nothing does (the word stays).
    async fn glob(&self, pattern: &str) -> Vec<String> {
        let (cwd, pattern) = (self.cwd.clone(), pattern.to_string());
        self.files.run(move |f| Ok(glob_in(f, &cwd, &pattern))).await.unwrap_or_default()
    }
}

fn binary(op: &BinaryOperator, a: i64, b: i64) -> Result<i64, String> {
    Ok(match op {
        BinaryOperator::Power => a.wrapping_pow(u32::try_from(b).map_err(|_| "negative exponent".to_string())?),
        BinaryOperator::Multiply => a.wrapping_mul(b),
        BinaryOperator::Divide | BinaryOperator::Modulo if b == 0 => return Err("division by 0".into()),
        BinaryOperator::Divide => a.wrapping_div(b),
        BinaryOperator::Modulo => a.wrapping_rem(b),
        BinaryOperator::Comma => b,
        BinaryOperator::Add => a.wrapping_add(b),
        BinaryOperator::Subtract => a.wrapping_sub(b),
        BinaryOperator::ShiftLeft => a.wrapping_shl(b as u32),
        BinaryOperator::ShiftRight => a.wrapping_shr(b as u32),
        BinaryOperator::LessThan => i64::from(a < b),
        BinaryOperator::LessThanOrEqualTo => i64::from(a <= b),
        BinaryOperator::GreaterThan => i64::from(a > b),
        BinaryOperator::GreaterThanOrEqualTo => i64::from(a >= b),
        BinaryOperator::Equals => i64::from(a == b),
        BinaryOperator::NotEquals => i64::from(a != b),
        BinaryOperator::BitwiseAnd => a & b,
        BinaryOperator::BitwiseXor => a ^ b,
        BinaryOperator::BitwiseOr => a | b,
        BinaryOperator::LogicalAnd => i64::from(a != 0 && b != 0),
        BinaryOperator::LogicalOr => i64::from(a != 0 || b != 0),
    })
}

/// Globbing over the files: each pattern component matched against a directory's names
/// (hidden ones only by a pattern that starts with a dot).
fn glob_in(f: &crate::sandboxes::Files, cwd: &str, pattern: &str) -> Vec<String> {
    let absolute = pattern.starts_with('/');
    // (what is shown, the guest path it names)
    let mut found: Vec<(String, String)> =
        vec![(if absolute { "/".into() } else { String::new() }, if absolute { "/".into() } else { cwd.to_string() })];
    let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let mut next = Vec::new();
        let has_glob = part.chars().any(is_glob);
        for (shown, guest) in &found {
            let join = |name: &str| {
                let shown = if shown.is_empty() || shown.ends_with('/') {
                    format!("{shown}{name}")
                } else {
                    format!("{shown}/{name}")
                };
                (shown, format!("{}/{name}", guest.trim_end_matches('/')))
            };
            if !has_glob {
                let name = part.replace('\\', "");
                let (s, g) = join(&name);
                if f.stat(&g).is_ok() || !last {
                    next.push((s, g));
                }
                continue;
            }
            let Ok(re) = pattern_regex(part) else { return Vec::new() };
            let Ok(entries) = f.list(guest, 1) else { continue };
            for e in entries {
                if e.name.starts_with('.') && !part.starts_with('.') {
                    continue;
                }
                if re.is_match(&e.name) && (last || e.kind == crate::sandboxes::Kind::Dir) {
                    next.push(join(&e.name));
                }
            }
        }
        found = next;
    }
    let mut out: Vec<String> = found.into_iter().map(|(s, _)| s).collect();
    out.sort();
    if pattern.ends_with('/') {
        out.iter_mut().for_each(|p| p.push('/'));
    }
    out
}
