//! A reader for the subset of Triton's `config.pbtxt` (protobuf text format)
//! that warden honours: `name`, `platform`, `backend`, `max_batch_size`,
//! `input`/`output` (`name`, `data_type`, `dims`) and `version_policy`.
//!
//! Parsing has two steps: a generic text-format tree (so any well-formed
//! file parses, and unknown fields can be skipped with a warning), then the
//! mapping of known fields with their types checked.

use crate::protocol::DataType;

/// A syntax or type error, with the 1-based line it was found on.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("line {line}: {reason}")]
pub struct PbtxtError {
    pub line: usize,
    pub reason: String,
}

fn err<T>(line: usize, reason: impl Into<String>) -> Result<T, PbtxtError> {
    Err(PbtxtError { line, reason: reason.into() })
}

/// Which versions of a model to serve (Triton's `version_policy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionPolicy {
    /// The `n` highest versions (Triton's default is `latest { num_versions: 1 }`).
    Latest(u32),
    All,
    Specific(Vec<u64>),
}

impl Default for VersionPolicy {
    fn default() -> Self {
        VersionPolicy::Latest(1)
    }
}

/// One `input` or `output` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorConfig {
    pub name: String,
    pub data_type: Option<DataType>,
    pub dims: Option<Vec<i64>>,
}

/// What warden reads from a `config.pbtxt`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelConfigFile {
    pub name: Option<String>,
    pub platform: Option<String>,
    pub backend: Option<String>,
    pub max_batch_size: Option<u32>,
    pub inputs: Vec<TensorConfig>,
    pub outputs: Vec<TensorConfig>,
    pub version_policy: Option<VersionPolicy>,
    /// Dotted paths of fields that were present but are not honoured.
    pub ignored: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    /// A bare token: number, identifier, `true`.
    Token(String),
    Str(String),
    Message(Vec<Field>),
}

#[derive(Debug, Clone, PartialEq)]
struct Field {
    name: String,
    value: Value,
    line: usize,
}

struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
    line: usize,
}

#[derive(Debug, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Punct(u8),
    Eof,
}

impl<'a> Lexer<'a> {
    fn skip_ws(&mut self) {
        while self.pos < self.s.len() {
            match self.s[self.pos] {
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                b' ' | b'\t' | b'\r' => self.pos += 1,
                b'#' => {
                    while self.pos < self.s.len() && self.s[self.pos] != b'\n' {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
    }

    fn next(&mut self) -> Result<(Tok, usize), PbtxtError> {
        self.skip_ws();
        let line = self.line;
        let Some(&c) = self.s.get(self.pos) else { return Ok((Tok::Eof, line)) };
        match c {
            b'{' | b'}' | b'[' | b']' | b':' | b',' | b';' | b'<' | b'>' => {
                self.pos += 1;
                Ok((Tok::Punct(c), line))
            }
            b'"' | b'\'' => {
                self.pos += 1;
                let mut out = Vec::new();
                loop {
                    let Some(&b) = self.s.get(self.pos) else { return err(line, "unterminated string") };
                    self.pos += 1;
                    match b {
                        b'\n' => return err(line, "unterminated string"),
                        b'\\' => {
                            let Some(&e) = self.s.get(self.pos) else { return err(line, "unterminated string") };
                            self.pos += 1;
                            out.push(match e {
                                b'n' => b'\n',
                                b't' => b'\t',
                                b'r' => b'\r',
                                other => other,
                            });
                        }
                        b if b == c => break,
                        b => out.push(b),
                    }
                }
                match String::from_utf8(out) {
                    Ok(s) => Ok((Tok::Str(s), line)),
                    Err(_) => err(line, "string is not valid UTF-8"),
                }
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'+' || c == b'.' => {
                let start = self.pos;
                while self.pos < self.s.len() {
                    let b = self.s[self.pos];
                    if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+' | b'.') {
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
                let tok = String::from_utf8_lossy(&self.s[start..self.pos]).into_owned();
                Ok((Tok::Ident(tok), line))
            }
            other => err(line, format!("unexpected character '{}'", other.escape_ascii())),
        }
    }

    fn peek(&mut self) -> Result<(Tok, usize), PbtxtError> {
        let (pos, line) = (self.pos, self.line);
        let t = self.next()?;
        self.pos = pos;
        self.line = line;
        Ok(t)
    }
}

/// Nesting limit: a hostile config cannot exhaust the stack.
const MAX_DEPTH: usize = 32;

fn parse_fields(lx: &mut Lexer<'_>, close: Option<u8>, depth: usize) -> Result<Vec<Field>, PbtxtError> {
    if depth > MAX_DEPTH {
        return err(lx.line, format!("nested deeper than {MAX_DEPTH} levels"));
    }
    let mut fields = Vec::new();
    loop {
        let (tok, line) = lx.next()?;
        let name = match tok {
            Tok::Eof if close.is_none() => return Ok(fields),
            Tok::Eof => return err(line, "unexpected end of file: missing '}'"),
            Tok::Punct(c) if Some(c) == close => return Ok(fields),
            Tok::Punct(b',' | b';') => continue,
            Tok::Ident(name) if name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') => name,
            other => return err(line, format!("expected a field name, found {}", describe(&other))),
        };
        let (t, _) = lx.peek()?;
        let had_colon = t == Tok::Punct(b':');
        if had_colon {
            lx.next()?;
        }
        let (t, vline) = lx.next()?;
        match t {
            Tok::Punct(b'[') => loop {
                let (t, l) = lx.next()?;
                let value = match t {
                    Tok::Punct(b']') => break,
                    Tok::Punct(b',') => continue,
                    Tok::Punct(b'{') => Value::Message(parse_fields(lx, Some(b'}'), depth + 1)?),
                    Tok::Punct(b'<') => Value::Message(parse_fields(lx, Some(b'>'), depth + 1)?),
                    Tok::Ident(v) => Value::Token(v),
                    Tok::Str(s) => Value::Str(s),
                    Tok::Eof => return err(l, "unexpected end of file: missing ']'"),
                    other => return err(l, format!("unexpected {} in a list", describe(&other))),
                };
                fields.push(Field { name: name.clone(), value, line: l });
            },
            Tok::Punct(b'{') => fields.push(Field { name, value: Value::Message(parse_fields(lx, Some(b'}'), depth + 1)?), line: vline }),
            Tok::Punct(b'<') => fields.push(Field { name, value: Value::Message(parse_fields(lx, Some(b'>'), depth + 1)?), line: vline }),
            Tok::Ident(v) if had_colon => fields.push(Field { name, value: Value::Token(v), line: vline }),
            Tok::Str(mut s) if had_colon => {
                // Adjacent string literals concatenate.
                while let (Tok::Str(_), _) = lx.peek()? {
                    if let (Tok::Str(more), _) = lx.next()? {
                        s.push_str(&more);
                    }
                }
                fields.push(Field { name, value: Value::Str(s), line: vline })
            }
            other => return err(vline, format!("expected ':' and a value or '{{' after '{name}', found {}", describe(&other))),
        }
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("'{s}'"),
        Tok::Str(_) => "a string".into(),
        Tok::Punct(c) => format!("'{}'", *c as char),
        Tok::Eof => "end of file".into(),
    }
}

/// Parses a `config.pbtxt`.
pub fn parse(text: &str) -> Result<ModelConfigFile, PbtxtError> {
    let mut lx = Lexer { s: text.as_bytes(), pos: 0, line: 1 };
    let fields = parse_fields(&mut lx, None, 0)?;
    let mut cfg = ModelConfigFile::default();
    for f in &fields {
        match f.name.as_str() {
            "name" => cfg.name = Some(string(f)?),
            "platform" => cfg.platform = Some(string(f)?),
            "backend" => cfg.backend = Some(string(f)?),
            "max_batch_size" => {
                cfg.max_batch_size = Some(int(f)?.try_into().or_else(|_| err(f.line, "max_batch_size must be between 0 and 4294967295"))?)
            }
            "input" => cfg.inputs.push(tensor(f, "input", &mut cfg.ignored)?),
            "output" => cfg.outputs.push(tensor(f, "output", &mut cfg.ignored)?),
            "version_policy" => cfg.version_policy = Some(version_policy(f)?),
            other => cfg.ignored.push(other.to_string()),
        }
    }
    Ok(cfg)
}

fn message(f: &Field) -> Result<&[Field], PbtxtError> {
    match &f.value {
        Value::Message(m) => Ok(m),
        _ => err(f.line, format!("'{}' must be a message ({{ ... }})", f.name)),
    }
}

fn string(f: &Field) -> Result<String, PbtxtError> {
    match &f.value {
        Value::Str(s) => Ok(s.clone()),
        _ => err(f.line, format!("'{}' must be a quoted string", f.name)),
    }
}

fn int(f: &Field) -> Result<i64, PbtxtError> {
    match &f.value {
        Value::Token(t) => t.parse().or_else(|_| err(f.line, format!("'{}' must be an integer, found '{t}'", f.name))),
        _ => err(f.line, format!("'{}' must be an integer", f.name)),
    }
}

fn tensor(f: &Field, kind: &str, ignored: &mut Vec<String>) -> Result<TensorConfig, PbtxtError> {
    let mut name = None;
    let mut data_type = None;
    let mut dims: Option<Vec<i64>> = None;
    for g in message(f)? {
        match g.name.as_str() {
            "name" => name = Some(string(g)?),
            "data_type" => {
                let Value::Token(t) = &g.value else { return err(g.line, "data_type must be an enum name such as TYPE_FP32") };
                data_type = Some(DataType::from_config_name(t).map_or_else(|| err(g.line, format!("unknown data_type '{t}'")), Ok)?);
            }
            "dims" => {
                let d = int(g)?;
                if d < -1 {
                    return err(g.line, format!("dims must be -1 or non-negative, found {d}"));
                }
                dims.get_or_insert_with(Vec::new).push(d);
            }
            other => ignored.push(format!("{kind}.{other}")),
        }
    }
    let Some(name) = name else { return err(f.line, format!("{kind} has no name")) };
    Ok(TensorConfig { name, data_type, dims })
}

fn version_policy(f: &Field) -> Result<VersionPolicy, PbtxtError> {
    let m = message(f)?;
    let [g] = m else { return err(f.line, "version_policy must hold exactly one of latest, all, specific") };
    match g.name.as_str() {
        "latest" => {
            let mut n = None;
            for h in message(g)? {
                match h.name.as_str() {
                    "num_versions" => n = Some(int(h)?),
                    other => return err(h.line, format!("unknown field '{other}' in latest")),
                }
            }
            match n {
                Some(n) if n >= 1 && n <= u32::MAX as i64 => Ok(VersionPolicy::Latest(n as u32)),
                Some(n) => err(g.line, format!("num_versions must be at least 1, found {n}")),
                None => err(g.line, "latest needs num_versions"),
            }
        }
        "all" => {
            message(g)?;
            Ok(VersionPolicy::All)
        }
        "specific" => {
            let mut versions = Vec::new();
            for h in message(g)? {
                match h.name.as_str() {
                    "versions" => {
                        let v = int(h)?;
                        if v < 1 {
                            return err(h.line, format!("versions must be positive integers, found {v}"));
                        }
                        versions.push(v as u64);
                    }
                    other => return err(h.line, format!("unknown field '{other}' in specific")),
                }
            }
            if versions.is_empty() {
                return err(g.line, "specific needs at least one version");
            }
            Ok(VersionPolicy::Specific(versions))
        }
        other => err(g.line, format!("unknown version policy '{other}' (expected latest, all or specific)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triton_example_parses() {
        let text = r#"
# a comment
name: "mnist_cnn"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [
  {
    name: "input"
    data_type: TYPE_FP32
    dims: [ 1, 28, 28 ]
  }
]
output [ { name: "logits", data_type: TYPE_FP32, dims: [ 10 ] } ]
version_policy: { specific: { versions: [1, 3] } }
instance_group [ { count: 2 kind: KIND_CPU } ]
dynamic_batching { }
"#;
        let c = parse(text).unwrap();
        assert_eq!(c.name.as_deref(), Some("mnist_cnn"));
        assert_eq!(c.platform.as_deref(), Some("onnxruntime_onnx"));
        assert_eq!(c.max_batch_size, Some(8));
        assert_eq!(c.inputs, vec![TensorConfig { name: "input".into(), data_type: Some(DataType::F32), dims: Some(vec![1, 28, 28]) }]);
        assert_eq!(c.outputs[0].dims, Some(vec![10]));
        assert_eq!(c.version_policy, Some(VersionPolicy::Specific(vec![1, 3])));
        assert_eq!(c.ignored, vec!["instance_group", "dynamic_batching"]);
    }

    #[test]
    fn policies() {
        assert_eq!(parse("version_policy { all { } }").unwrap().version_policy, Some(VersionPolicy::All));
        assert_eq!(parse("version_policy: { latest: { num_versions: 2 } }").unwrap().version_policy, Some(VersionPolicy::Latest(2)));
        assert_eq!(parse("version_policy { latest { num_versions: 0 } }").unwrap_err().line, 1);
        assert!(parse("version_policy { newest { } }").is_err());
        assert!(parse("version_policy { specific { versions: -1 } }").is_err());
    }

    #[test]
    fn errors_carry_lines() {
        let e = parse("name: \"x\"\nmax_batch_size: eight\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.reason.contains("integer"), "{e}");
        let e = parse("input [ { name: \"a\" data_type: TYPE_FLOAT } ]").unwrap_err();
        assert!(e.reason.contains("TYPE_FLOAT"));
        let e = parse("input [\n {\n name: \"a\"\n").unwrap_err();
        assert!(e.reason.contains("end of file"), "{e}");
        assert_eq!(parse("name: \"unterminated\n").unwrap_err().line, 1);
        assert!(parse("name \"x\"").is_err());
        assert!(parse("max_batch_size: -1").is_err());
        assert!(parse("input [ { data_type: TYPE_FP32 } ]").unwrap_err().reason.contains("no name"));
        assert!(parse("input [ { name: \"a\" dims: -2 } ]").is_err());
        assert!(parse("name: 5").is_err());
        assert!(parse("@").is_err());
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = format!("{}{}", "a { ".repeat(10_000), "} ".repeat(10_000));
        assert!(parse(&deep).unwrap_err().reason.contains("nested"));
    }

    #[test]
    fn empty_file_is_an_empty_config() {
        assert_eq!(parse("").unwrap(), ModelConfigFile::default());
        assert_eq!(parse("# only a comment\n").unwrap(), ModelConfigFile::default());
    }
}
