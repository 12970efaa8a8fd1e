//! A recogniser for the common shapes of a JSON inference request: what
//! curl, wrk, tritonclient and perf_analyzer send, in JSON or as the JSON
//! header of a binary request:
//!
//! ```json
//! {"id": "…", "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}
//! {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}],
//!  "outputs": [{"name": "y", "parameters": {"binary_data": true}}], "parameters": {"binary_data_output": true}}
//! ```
//!
//! It yields the same [`RequestJson`] that serde's derived parser would, or
//! `None`, and then serde parses the document as before. `None` is the
//! answer to anything outside those shapes: an unknown or repeated key, a
//! string with an escape or a control character, a shape entry that is not
//! a small plain integer (or is `-0`, which serde_json reads as a float), a
//! parameter that is not `true`, `false` or a small unsigned integer, `data`
//! that is not nested arrays of numbers, a syntax error anywhere. So it
//! never produces an error of its own: every message still comes from serde
//! and from the checks both paths share, and it cannot accept a document
//! serde would refuse (the agreement is tested on generated documents and
//! checked by the fuzz target on every input). For iris it takes the
//! request parse from about 3,600 instructions to about 2,200.
//!
//! Like serde's `RawValue`, `data` is only delimited and checked against the
//! JSON grammar here; its numbers are read by `json_tensor`, for both paths.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::decode::{InputJson, OutputJson, RequestJson};

/// Nesting of `data` arrays beyond this is left to serde (whose own limit
/// is 128); `check_depth` has already applied the configured one.
const MAX_DATA_DEPTH: usize = 32;

/// Digits in a shape entry or a parameter: 18 always fit an `i64`.
const MAX_DIGITS: usize = 18;

/// The request, if `text` has the shape this module recognises.
pub(super) fn parse(text: &str) -> Option<RequestJson<'_>> {
    let mut p = Parser { text, at: 0 };
    p.ws();
    let (mut id, mut inputs, mut outputs, mut parameters) = (None, None, None, None);
    p.object(|p, key| {
        match key {
            "id" if id.is_none() => id = Some(p.string()?.to_owned()),
            "inputs" if inputs.is_none() => inputs = Some(p.inputs()?),
            "outputs" if outputs.is_none() => outputs = Some(p.outputs()?),
            "parameters" if parameters.is_none() => parameters = Some(p.parameters()?),
            _ => return None,
        }
        Some(())
    })?;
    p.ws();
    if p.at != text.len() {
        return None;
    }
    Some(RequestJson { id, parameters, inputs: inputs?, outputs })
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek() == Some(b)).then(|| self.at += 1)
    }

    /// JSON's whitespace: space, tab, line feed, carriage return.
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// A string without escapes or control characters, borrowed.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' | 0..0x20 => return None,
                _ => self.at += 1,
            }
        }
        let s = &self.text[start..self.at];
        self.at += 1;
        Some(s)
    }

    /// `{` member (`,` member)* `}`, at least one; `member` reads the value
    /// of each key (the parser is after the colon) or gives up.
    fn object(&mut self, mut member: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        loop {
            self.ws();
            let key = self.string()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            member(self, key)?;
            self.ws();
            if self.eat(b',').is_none() {
                return self.eat(b'}');
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        self.at - start
    }

    /// `[` input (`,` input)* `]`, at least one.
    fn inputs(&mut self) -> Option<Vec<InputJson<'a>>> {
        let mut inputs = Vec::with_capacity(1);
        self.list(false, |p| p.input().map(|i| inputs.push(i)))?;
        Some(inputs)
    }

    /// `[` item (`,` item)* `]`, or `[]` when `empty` allows it.
    fn list(&mut self, empty: bool, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        self.ws();
        if empty && self.eat(b']').is_some() {
            return Some(());
        }
        loop {
            self.ws();
            item(self)?;
            self.ws();
            if self.eat(b',').is_none() {
                return self.eat(b']');
            }
        }
    }

    /// An object with `name`, `shape`, `datatype` and optionally
    /// `parameters` and `data`, in any order.
    fn input(&mut self) -> Option<InputJson<'a>> {
        let (mut name, mut shape, mut datatype, mut parameters, mut data) = (None, None, None, None, None);
        self.object(|p, key| {
            match key {
                "name" if name.is_none() => name = Some(p.string()?.to_owned()),
                "shape" if shape.is_none() => shape = Some(p.shape()?),
                "datatype" if datatype.is_none() => datatype = Some(Cow::Borrowed(p.string()?)),
                "parameters" if parameters.is_none() => parameters = Some(p.parameters()?),
                "data" if data.is_none() => data = Some(p.data()?),
                _ => return None,
            }
            Some(())
        })?;
        Some(InputJson { name: name?, shape: shape?, datatype: datatype?, parameters, data })
    }

    /// `[` output (`,` output)* `]`, each `name` and optionally `parameters`.
    fn outputs(&mut self) -> Option<Vec<OutputJson>> {
        let mut outputs = Vec::with_capacity(1);
        self.list(false, |p| {
            let (mut name, mut parameters) = (None, None);
            p.object(|p, key| {
                match key {
                    "name" if name.is_none() => name = Some(p.string()?.to_owned()),
                    "parameters" if parameters.is_none() => parameters = Some(p.parameters()?),
                    _ => return None,
                }
                Some(())
            })?;
            outputs.push(OutputJson { name: name?, parameters });
            Some(())
        })?;
        Some(outputs)
    }

    /// `{}` or an object of distinct keys whose values are `true`, `false`
    /// or unsigned integers (what serde reads as `Bool` and `Number`).
    fn parameters(&mut self) -> Option<Map<String, Value>> {
        let mut map = Map::new();
        let start = self.at;
        self.eat(b'{')?;
        self.ws();
        if self.eat(b'}').is_some() {
            return Some(map);
        }
        self.at = start;
        self.object(|p, key| {
            let value = match p.peek()? {
                b't' => p.word("true").map(|()| Value::Bool(true))?,
                b'f' => p.word("false").map(|()| Value::Bool(false))?,
                _ => Value::from(p.unsigned()?),
            };
            // serde keeps the last of repeated keys; leave those to it.
            map.insert(key.to_owned(), value).is_none().then_some(())
        })?;
        Some(map)
    }

    fn word(&mut self, word: &str) -> Option<()> {
        self.text.as_bytes()[self.at..].starts_with(word.as_bytes()).then(|| self.at += word.len())
    }

    /// `[` integer (`,` integer)* `]` or `[]`.
    fn shape(&mut self) -> Option<Vec<i64>> {
        let mut dims = Vec::with_capacity(4);
        self.list(true, |p| p.integer().map(|d| dims.push(d)))?;
        Some(dims)
    }

    /// `-`? (`0` | [1-9][0-9]*), at most [`MAX_DIGITS`] digits, not
    /// followed by a fraction or exponent, and not `-0`.
    fn integer(&mut self) -> Option<i64> {
        let negative = self.eat(b'-').is_some();
        let v = i64::try_from(self.unsigned()?).ok()?;
        match (negative, v) {
            (true, 0) => None,
            (true, v) => Some(-v),
            (false, v) => Some(v),
        }
    }

    /// (`0` | [1-9][0-9]*), at most [`MAX_DIGITS`] digits, not followed by a
    /// fraction or exponent.
    fn unsigned(&mut self) -> Option<u64> {
        let start = self.at;
        let n = self.digits();
        let digits = &self.text[start..self.at];
        if n == 0 || n > MAX_DIGITS || (n > 1 && digits.starts_with('0')) || matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        digits.parse().ok()
    }

    /// Nested arrays of JSON numbers, checked against the grammar and
    /// returned as text (what `RawValue` would hold).
    fn data(&mut self) -> Option<&'a str> {
        let start = self.at;
        self.eat(b'[')?;
        let mut depth = 1;
        // After `[` a value or `]`; after `,` a value; after a value `,` or `]`.
        let mut after_value = false;
        let mut after_comma = false;
        loop {
            self.ws();
            match self.peek()? {
                b']' if !after_comma => {
                    self.at += 1;
                    depth -= 1;
                    if depth == 0 {
                        return Some(&self.text[start..self.at]);
                    }
                    after_value = true;
                }
                b',' if after_value => {
                    self.at += 1;
                    after_value = false;
                    after_comma = true;
                }
                b'[' if !after_value => {
                    self.at += 1;
                    depth += 1;
                    if depth > MAX_DATA_DEPTH {
                        return None;
                    }
                    after_comma = false;
                }
                b'-' | b'0'..=b'9' if !after_value => {
                    self.number()?;
                    after_value = true;
                    after_comma = false;
                }
                _ => return None,
            }
        }
    }

    /// `-`? (`0` | [1-9][0-9]*) (`.` [0-9]+)? ([eE] [+-]? [0-9]+)?
    fn number(&mut self) -> Option<()> {
        self.eat(b'-');
        let start = self.at;
        let n = self.digits();
        if n == 0 || (n > 1 && self.text.as_bytes()[start] == b'0') {
            return None;
        }
        if self.eat(b'.').is_some() && self.digits() == 0 {
            return None;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde(text: &str) -> Option<RequestJson<'_>> {
        serde_json::from_str(text).ok()
    }

    const IRIS: &str = r#"{"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}"#;

    #[test]
    fn the_plain_request_is_recognised_as_serde_reads_it() {
        for text in [
            IRIS,
            r#"{"inputs":[{"name":"x","shape":[2,2],"datatype":"INT64","data":[[1,-2],[3,4e2]]}]}"#,
            " \t\r\n{\"id\" : \"r-1\" , \"inputs\" : [ { \"data\" : [ ] , \"datatype\" : \"FP64\" , \"shape\" : [ 0 ] , \"name\" : \"é\" } ] } \n",
            r#"{"inputs":[{"name":"a","shape":[],"datatype":"FP32","data":[-0.0]},{"name":"b","shape":[1],"datatype":"BOOL","data":[1]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[-3],"datatype":"NOPE","data":[[[]]]}]}"#,
            // What tritonclient and perf_analyzer add: outputs, parameters, binary inputs (no `data`).
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"outputs":[{"name":"y"}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1],"parameters":{}}]}"#,
            r#"{"parameters":{"binary_data_output":true},"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}}],"outputs":[{"name":"label","parameters":{"binary_data":true}},{"parameters":{"binary_data":false},"name":"probabilities"}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32"}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"a":0,"b":false,"c":123456789012345678}}]}"#,
        ] {
            let fast = parse(text).unwrap_or_else(|| panic!("not recognised: {text}"));
            assert_eq!(Some(fast), serde(text), "{text}");
        }
        let fast = parse(IRIS).unwrap();
        assert_eq!(fast.inputs[0].data, Some("[5.1, 3.5, 1.4, 0.2]"));
        assert!(matches!(fast.inputs[0].datatype, Cow::Borrowed("FP32")));
    }

    #[test]
    fn anything_else_is_left_to_serde() {
        for text in [
            // Valid requests of another shape.
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"outputs":[]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"outputs":[{"name":"y","x":1}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"parameters":null}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1],"parameters":{"a":"s"}}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1],"parameters":{"a":-1}}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1],"parameters":{"a":1.5}}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1],"parameters":{"a":{}}}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1],"parameters":{"a":1,"a":2}}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1],"parameters":{"a":tru}}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1],"parameters":{"a":1,}}]}"#,
            r#"{"inputs":[{"name":"x\u0041","shape":[1],"datatype":"FP32","data":[1]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"BYTES","data":["a"]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"BOOL","data":[true]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":1}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":null}]}"#,
            r#"{"id":null,"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}"#,
            r#"{"inputs":[],"id":"a"}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"extra":1}"#,
            // Shapes serde reads differently or refuses.
            r#"{"inputs":[{"name":"x","shape":[-0],"datatype":"FP32","data":[1]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1.0],"datatype":"FP32","data":[1]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1e0],"datatype":"FP32","data":[1]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[01],"datatype":"FP32","data":[1]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[9999999999999999999],"datatype":"FP32","data":[1]}]}"#,
            // Syntax errors and repeated keys.
            r#"{"inputs":[{"name":"x","name":"y","shape":[1],"datatype":"FP32","data":[1]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"inputs":[]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1,]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1 2]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[.5]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1.]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1e]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[NaN]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]} x"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]},]}"#,
            "{\"inputs\":[{\"name\":\"a\tb\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}",
            "{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}\u{a0}",
        ] {
            assert!(parse(text).is_none(), "recognised: {text}");
        }
        let deep = format!(r#"{{"inputs":[{{"name":"x","shape":[1],"datatype":"FP32","data":{}1{}}}]}}"#, "[".repeat(40), "]".repeat(40));
        assert!(parse(&deep).is_none());
    }

    /// Documents made by editing valid requests at random: whatever the fast
    /// parser accepts, serde accepts and reads the same way; and it accepts
    /// enough of them for that to mean something.
    #[test]
    fn generated_documents_agree_with_serde() {
        let seeds = [
            IRIS,
            r#"{"id":"7","inputs":[{"name":"a","shape":[2,1],"datatype":"INT32","data":[[1],[-20]]},{"shape":[1],"name":"b","data":[0.5e-3],"datatype":"FP64"}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}}],"outputs":[{"name":"y","parameters":{"binary_data":true}}],"parameters":{"binary_data_output":false}}"#,
        ];
        let alphabet = b"{}[]\",:-+.eE0159 \nabflnrstu\\";
        let mut next = crate::protocol::test_rng(0x9e37_79b9_7f4a_7c15);
        let mut recognised = 0;
        for round in 0..100_000 {
            let mut doc = seeds[round % seeds.len()].as_bytes().to_vec();
            for _ in 0..1 + next() % 3 {
                let at = (next() % (doc.len() as u64 + 1)) as usize;
                let b = alphabet[(next() % alphabet.len() as u64) as usize];
                match next() % 3 {
                    0 if at < doc.len() => doc[at] = b,
                    1 if at < doc.len() => {
                        doc.remove(at);
                    }
                    _ => doc.insert(at, b),
                }
            }
            assert!(crate::protocol::fast_path_agrees(&doc), "disagreement on {}", String::from_utf8_lossy(&doc));
            recognised += usize::from(std::str::from_utf8(&doc).ok().and_then(parse).is_some());
        }
        assert!(recognised > 5_000, "only {recognised} of 100000 edited documents recognised");
    }
}
