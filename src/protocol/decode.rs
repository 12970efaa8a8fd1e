//! Request decoding: JSON header, JSON `data`, binary tensors.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{DataType, Limits, TensorData, element_count};

/// Why a request could not be decoded. Every message is safe to show to the
/// client: it names only what the client sent.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    /// `Inference-Header-Content-Length` is larger than the body.
    #[error("Inference-Header-Content-Length {header} is larger than the request body ({body} bytes)")]
    HeaderLengthTooLarge { header: usize, body: usize },
    /// The JSON header is not valid JSON or does not match the schema.
    #[error("malformed request JSON: {0}")]
    Json(String),
    /// JSON nesting deeper than the limit.
    #[error("request JSON is nested deeper than {0} levels")]
    TooDeep(usize),
    /// More inputs than the limit.
    #[error("request has {count} inputs, more than the limit of {limit}")]
    TooManyInputs { count: usize, limit: usize },
    /// The same input name twice.
    #[error("input '{0}' appears more than once")]
    DuplicateInput(String),
    /// A datatype name the protocol does not define.
    #[error("input '{name}': unknown datatype '{datatype}'")]
    UnknownDatatype { name: String, datatype: String },
    /// A negative dimension.
    #[error("input '{name}': shape dimension {dim} is negative")]
    NegativeDimension { name: String, dim: i64 },
    /// The shape's element count overflows or exceeds the limit.
    #[error("input '{name}': shape {shape:?} declares more elements than the limit of {limit}")]
    TooManyElements { name: String, shape: Vec<i64>, limit: u64 },
    /// The request as a whole declares too many elements.
    #[error("request declares more than {0} elements in total")]
    RequestTooLarge(u64),
    /// Neither `data` nor `binary_data_size`.
    #[error("input '{0}' has neither 'data' nor a 'binary_data_size' parameter")]
    MissingData(String),
    /// Both `data` and `binary_data_size`.
    #[error("input '{0}' has both 'data' and a 'binary_data_size' parameter")]
    BothData(String),
    /// `binary_data_size` without the binary extension header.
    #[error("input '{0}' has 'binary_data_size' but the request has no Inference-Header-Content-Length header")]
    BinaryWithoutHeader(String),
    /// The binary section is shorter than the sizes declared.
    #[error("input '{name}': binary_data_size {size} exceeds the {left} bytes of binary data left in the body")]
    BinaryTruncated { name: String, size: u64, left: usize },
    /// Bytes left over after the last binary input.
    #[error("request body has {0} bytes of binary data that no input claims")]
    BinaryTrailing(usize),
    /// The binary size does not match shape × element size.
    #[error("input '{name}': binary_data_size {actual} does not match shape {shape:?} of {datatype} ({expected} bytes)")]
    BinarySizeMismatch { name: String, shape: Vec<usize>, datatype: DataType, expected: u64, actual: u64 },
    /// A BYTES element whose length prefix runs past the tensor.
    #[error("input '{0}': malformed BYTES data (an element's length runs past the end of the tensor)")]
    BadBytesLength(String),
    /// BYTES element count does not match the shape.
    #[error("input '{name}': {actual} BYTES elements given, shape {shape:?} needs {expected}")]
    BytesCountMismatch { name: String, shape: Vec<usize>, expected: u64, actual: u64 },
    /// FP16/BF16 in JSON.
    #[error("input '{name}': datatype {datatype} can only be sent as binary data (binary tensor extension), not as JSON")]
    BinaryOnlyDatatype { name: String, datatype: DataType },
    /// A JSON value that does not fit the datatype.
    #[error("input '{name}': {reason}")]
    BadData { name: String, reason: String },
    /// JSON element count does not match the shape.
    #[error("input '{name}': 'data' has {actual} elements, shape {shape:?} needs {expected}")]
    DataCountMismatch { name: String, shape: Vec<usize>, expected: u64, actual: u64 },
    /// A parameter with the wrong type.
    #[error("parameter '{0}' has the wrong type")]
    BadParameter(String),
    /// Raw binary mode (header length 0) cannot be used for this model.
    #[error("{0}")]
    RawMode(String),
}

impl DecodeError {
    /// The configured limit this error breaks, as a bounded metrics label.
    pub fn limit(&self) -> Option<&'static str> {
        match self {
            DecodeError::TooDeep(_) => Some("json_depth"),
            DecodeError::TooManyInputs { .. } => Some("inputs"),
            DecodeError::TooManyElements { .. } | DecodeError::RequestTooLarge(_) => Some("elements"),
            _ => None,
        }
    }
}

/// One decoded input tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct InputTensor {
    pub name: String,
    pub datatype: DataType,
    pub shape: Vec<usize>,
    pub data: TensorData,
}

/// An output the client asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestedOutput {
    pub name: String,
    /// `binary_data` of the output, overriding the request-level default.
    pub binary: Option<bool>,
}

/// A decoded inference request.
#[derive(Debug, Clone, PartialEq)]
pub struct InferRequest {
    pub id: Option<String>,
    pub inputs: Vec<InputTensor>,
    /// `None`: every output.
    pub outputs: Option<Vec<RequestedOutput>>,
    /// Request-level `binary_data_output`.
    pub binary_output: bool,
}

/// The single input of a model, for raw mode (`Inference-Header-Content-Length: 0`).
#[derive(Debug, Clone)]
pub struct RawInput<'a> {
    pub name: &'a str,
    pub datatype: DataType,
    /// Model dimensions, -1 where variable.
    pub dims: &'a [i64],
}

/// The request as parsed, by serde or by [`super::fast_json`] (which must
/// produce exactly what serde would).
#[derive(Debug, PartialEq, Deserialize)]
pub(super) struct RequestJson<'a> {
    #[serde(default)]
    pub(super) id: Option<String>,
    #[serde(default)]
    pub(super) parameters: Option<Map<String, Value>>,
    #[serde(borrow)]
    pub(super) inputs: Vec<InputJson<'a>>,
    #[serde(default)]
    pub(super) outputs: Option<Vec<OutputJson>>,
}

#[derive(Debug, PartialEq, Deserialize)]
pub(super) struct InputJson<'a> {
    pub(super) name: String,
    pub(super) shape: Vec<i64>,
    /// Borrowed from the body unless it holds escapes: no copy per request.
    #[serde(borrow)]
    pub(super) datatype: Cow<'a, str>,
    #[serde(default)]
    pub(super) parameters: Option<Map<String, Value>>,
    /// The text of the `data` value, parsed once the datatype is known.
    #[serde(borrow, default, deserialize_with = "raw_text")]
    pub(super) data: Option<&'a str>,
}

/// `data`'s text (`null` is no data, as for any optional field).
fn raw_text<'de: 'a, 'a, D: de::Deserializer<'de>>(d: D) -> Result<Option<&'a str>, D::Error> {
    Ok(Option::<&'de RawValue>::deserialize(d)?.map(RawValue::get))
}

#[derive(Debug, PartialEq, Deserialize)]
pub(super) struct OutputJson {
    pub(super) name: String,
    #[serde(default)]
    pub(super) parameters: Option<Map<String, Value>>,
}

/// Decodes a request body. `header_len` is the value of
/// `Inference-Header-Content-Length` when present; `raw_input` is the
/// model's single input, used only when `header_len` is `Some(0)`.
pub fn decode_request(
    body: Bytes,
    header_len: Option<usize>,
    limits: &Limits,
    raw_input: Option<RawInput<'_>>,
) -> Result<InferRequest, DecodeError> {
    let (json, binary) = match header_len {
        Some(0) => return decode_raw(body, limits, raw_input),
        Some(n) if n > body.len() => {
            return Err(DecodeError::HeaderLengthTooLarge { header: n, body: body.len() });
        }
        Some(n) => (body.slice(..n), Some(body.slice(n..))),
        None => (body, None),
    };
    let json = if check_depth(&json, limits.max_json_depth)? { quote_non_finite(&json) } else { json };
    // One UTF-8 check of the whole document (fast on ASCII) instead of one
    // per string, which is what serde_json does when given bytes.
    let text = std::str::from_utf8(&json).map_err(|e| DecodeError::Json(format!("invalid UTF-8 at byte {}", e.valid_up_to())))?;
    let req = match super::fast_json::parse(text) {
        Some(req) => req,
        None => serde_json::from_str::<RequestJson<'_>>(text).map_err(|e| DecodeError::Json(e.to_string()))?,
    };
    if req.inputs.len() > limits.max_inputs {
        return Err(DecodeError::TooManyInputs { count: req.inputs.len(), limit: limits.max_inputs });
    }
    let binary_output = match req.parameters.as_ref().and_then(|p| p.get("binary_data_output")) {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(DecodeError::BadParameter("binary_data_output".into())),
    };

    let mut cursor = Cursor { rest: binary.clone().unwrap_or_default() };
    let mut total: u64 = 0;
    let mut inputs = Vec::with_capacity(req.inputs.len());
    for input in req.inputs {
        if inputs.iter().any(|i: &InputTensor| i.name == input.name) {
            return Err(DecodeError::DuplicateInput(input.name));
        }
        let datatype: DataType = input
            .datatype
            .parse()
            .map_err(|()| DecodeError::UnknownDatatype { name: input.name.clone(), datatype: input.datatype.to_string() })?;
        let shape = checked_shape(&input.name, &input.shape, limits.max_elements_per_tensor)?;
        let count = element_count(&shape).expect("checked_shape bounds the product");
        total = total.saturating_add(count);
        if total > limits.max_elements_per_request {
            return Err(DecodeError::RequestTooLarge(limits.max_elements_per_request));
        }
        let binary_size = match input.parameters.as_ref().and_then(|p| p.get("binary_data_size")) {
            None => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| DecodeError::BadParameter("binary_data_size".into()))?),
        };
        let data = match (binary_size, input.data) {
            (Some(_), Some(_)) => return Err(DecodeError::BothData(input.name)),
            (None, None) => return Err(DecodeError::MissingData(input.name)),
            (Some(size), None) => {
                if binary.is_none() {
                    return Err(DecodeError::BinaryWithoutHeader(input.name));
                }
                let bytes = cursor.take(&input.name, size)?;
                binary_tensor(&input.name, datatype, &shape, count, bytes)?
            }
            (None, Some(raw)) => json_tensor(&input.name, datatype, &shape, count, raw)?,
        };
        inputs.push(InputTensor { name: input.name, datatype, shape, data });
    }
    if !cursor.rest.is_empty() {
        return Err(DecodeError::BinaryTrailing(cursor.rest.len()));
    }

    let outputs = match req.outputs {
        None => None,
        Some(outs) => {
            let mut v = Vec::with_capacity(outs.len());
            for o in outs {
                let binary = match o.parameters.as_ref().and_then(|p| p.get("binary_data")) {
                    None => None,
                    Some(Value::Bool(b)) => Some(*b),
                    Some(_) => return Err(DecodeError::BadParameter("binary_data".into())),
                };
                v.push(RequestedOutput { name: o.name, binary });
            }
            Some(v)
        }
    };
    Ok(InferRequest { id: req.id, inputs, outputs, binary_output })
}

/// For the fuzz target and tests: whether the fast parser, when it accepts
/// `json`, yields what serde yields (and serde accepts it too).
#[doc(hidden)]
pub fn fast_path_agrees(json: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(json) else { return true };
    match super::fast_json::parse(text) {
        None => true,
        Some(fast) => serde_json::from_str::<RequestJson<'_>>(text).is_ok_and(|slow| slow == fast),
    }
}

/// Raw mode: the whole body is the single input's tensor; binary answer.
fn decode_raw(body: Bytes, limits: &Limits, raw_input: Option<RawInput<'_>>) -> Result<InferRequest, DecodeError> {
    let input = raw_input.ok_or_else(|| {
        DecodeError::RawMode("Inference-Header-Content-Length: 0 (raw binary input) needs a model with exactly one input".into())
    })?;
    let size = input.datatype.size().ok_or_else(|| DecodeError::RawMode("raw binary input is not supported for BYTES inputs".into()))?;
    let variable: Vec<usize> = (0..input.dims.len()).filter(|&i| input.dims[i] < 0).collect();
    let fixed: u64 = input.dims.iter().filter(|&&d| d >= 0).try_fold(size as u64, |a, &d| a.checked_mul(d as u64)).unwrap_or(u64::MAX);
    let len = body.len() as u64;
    let mut shape: Vec<usize> = input.dims.iter().map(|&d| d.max(1) as usize).collect();
    match variable.as_slice() {
        [] if fixed == len => {}
        [i] if fixed > 0 && len.is_multiple_of(fixed) => shape[*i] = (len / fixed) as usize,
        _ => {
            return Err(DecodeError::RawMode(format!(
                "raw binary input of {len} bytes does not fit input '{}' ({} {:?})",
                input.name, input.datatype, input.dims
            )));
        }
    }
    let count = element_count(&shape).unwrap_or(u64::MAX);
    if count > limits.max_elements_per_tensor {
        return Err(DecodeError::RequestTooLarge(limits.max_elements_per_tensor));
    }
    Ok(InferRequest {
        id: None,
        inputs: vec![InputTensor { name: input.name.to_owned(), datatype: input.datatype, shape, data: TensorData::Raw(body) }],
        outputs: None,
        binary_output: true,
    })
}

struct Cursor {
    rest: Bytes,
}

impl Cursor {
    fn take(&mut self, name: &str, size: u64) -> Result<Bytes, DecodeError> {
        if size > self.rest.len() as u64 {
            return Err(DecodeError::BinaryTruncated { name: name.into(), size, left: self.rest.len() });
        }
        Ok(self.rest.split_to(size as usize))
    }
}

fn checked_shape(name: &str, dims: &[i64], limit: u64) -> Result<Vec<usize>, DecodeError> {
    let mut product: u64 = 1;
    let mut shape = Vec::with_capacity(dims.len());
    for &d in dims {
        if d < 0 {
            return Err(DecodeError::NegativeDimension { name: name.into(), dim: d });
        }
        product = product.checked_mul(d as u64).filter(|&p| p <= limit).ok_or_else(|| DecodeError::TooManyElements {
            name: name.into(),
            shape: dims.to_vec(),
            limit,
        })?;
        shape.push(d as usize);
    }
    Ok(shape)
}

fn binary_tensor(name: &str, datatype: DataType, shape: &[usize], count: u64, bytes: Bytes) -> Result<TensorData, DecodeError> {
    match datatype.size() {
        Some(size) => {
            // `count` is bounded by the element limit, so this cannot overflow u64.
            let expected = count * size as u64;
            if bytes.len() as u64 != expected {
                return Err(DecodeError::BinarySizeMismatch {
                    name: name.into(),
                    shape: shape.to_vec(),
                    datatype,
                    expected,
                    actual: bytes.len() as u64,
                });
            }
            Ok(TensorData::Raw(bytes))
        }
        None => {
            // Each element needs at least its 4-byte length prefix, so the
            // element count bounds the allocation by the body size.
            let mut out = Vec::with_capacity((count as usize).min(bytes.len() / 4));
            let mut rest = bytes;
            while !rest.is_empty() {
                if rest.len() < 4 {
                    return Err(DecodeError::BadBytesLength(name.into()));
                }
                let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                if len > rest.len() - 4 {
                    return Err(DecodeError::BadBytesLength(name.into()));
                }
                let _ = rest.split_to(4);
                out.push(rest.split_to(len));
                if out.len() as u64 > count {
                    break;
                }
            }
            if out.len() as u64 != count {
                return Err(DecodeError::BytesCountMismatch {
                    name: name.into(),
                    shape: shape.to_vec(),
                    expected: count,
                    actual: out.len() as u64,
                });
            }
            Ok(TensorData::Strings(out))
        }
    }
}

fn json_tensor(name: &str, datatype: DataType, shape: &[usize], count: u64, text: &str) -> Result<TensorData, DecodeError> {
    if !datatype.json_capable() {
        return Err(DecodeError::BinaryOnlyDatatype { name: name.into(), datatype });
    }
    // A JSON element takes at least one byte of text, so the body size bounds
    // what a lying shape can make us reserve.
    let cap = (count as usize).min(text.len());
    let mut sink = match datatype.size() {
        Some(size) => Sink::Raw { buf: Vec::with_capacity(cap * size), n: 0 },
        None => Sink::Strings(Vec::with_capacity(cap)),
    };
    let seed = DataSeed { datatype, sink: &mut sink, max: count };
    let mut de = serde_json::Deserializer::from_str(text);
    let result = seed.deserialize(&mut de).and_then(|()| de.end());
    if let Err(e) = result {
        // Too many elements is reported as a count mismatch, not a parse error.
        if sink.len() > count {
            return Err(DecodeError::DataCountMismatch { name: name.into(), shape: shape.to_vec(), expected: count, actual: sink.len() });
        }
        return Err(DecodeError::BadData { name: name.into(), reason: strip_position(&e.to_string()) });
    }
    if sink.len() != count {
        return Err(DecodeError::DataCountMismatch { name: name.into(), shape: shape.to_vec(), expected: count, actual: sink.len() });
    }
    Ok(match sink {
        Sink::Raw { buf, .. } => TensorData::Raw(Bytes::from(buf)),
        Sink::Strings(v) => TensorData::Strings(v),
    })
}

/// serde_json appends "at line 1 column N" relative to the `data` fragment,
/// which would mislead; the input name is the useful locator.
fn strip_position(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

enum Sink {
    Raw { buf: Vec<u8>, n: u64 },
    Strings(Vec<Bytes>),
}

impl Sink {
    fn len(&self) -> u64 {
        match self {
            Sink::Raw { n, .. } => *n,
            Sink::Strings(v) => v.len() as u64,
        }
    }
}

struct DataSeed<'s> {
    datatype: DataType,
    sink: &'s mut Sink,
    max: u64,
}

impl<'de> DeserializeSeed<'de> for DataSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl DataSeed<'_> {
    fn push_raw<E: de::Error>(&mut self, bytes: &[u8]) -> Result<(), E> {
        match self.sink {
            Sink::Raw { buf, n } => {
                if *n >= self.max {
                    *n += 1;
                    return Err(E::custom("too many elements"));
                }
                buf.extend_from_slice(bytes);
                *n += 1;
                Ok(())
            }
            Sink::Strings(_) => Err(E::custom(format!("expected a string for {}", self.datatype))),
        }
    }

    fn push_int<E: de::Error>(&mut self, v: i128) -> Result<(), E> {
        macro_rules! int {
            ($t:ty) => {
                <$t>::try_from(v).map_err(|_| E::custom(format!("value {v} is out of range for {}", self.datatype)))?.to_le_bytes()
            };
        }
        match self.datatype {
            DataType::U8 => self.push_raw(&int!(u8)),
            DataType::U16 => self.push_raw(&int!(u16)),
            DataType::U32 => self.push_raw(&int!(u32)),
            DataType::U64 => self.push_raw(&int!(u64)),
            DataType::I8 => self.push_raw(&int!(i8)),
            DataType::I16 => self.push_raw(&int!(i16)),
            DataType::I32 => self.push_raw(&int!(i32)),
            DataType::I64 => self.push_raw(&int!(i64)),
            DataType::F32 => self.push_raw(&(v as f32).to_le_bytes()),
            DataType::F64 => self.push_raw(&(v as f64).to_le_bytes()),
            dt => Err(E::custom(format!("expected {} but found a number", json_kind(dt)))),
        }
    }
}

fn json_kind(dt: DataType) -> &'static str {
    match dt {
        DataType::Bool => "a boolean (true/false)",
        DataType::Bytes => "a string",
        _ => "a number",
    }
}

impl<'de> Visitor<'de> for DataSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} or an array of them", json_kind(self.datatype))
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(DataSeed { datatype: self.datatype, sink: &mut *self.sink, max: self.max })?.is_some() {}
        let _ = &mut self;
        Ok(())
    }

    fn visit_bool<E: de::Error>(mut self, v: bool) -> Result<(), E> {
        match self.datatype {
            DataType::Bool => self.push_raw(&[u8::from(v)]),
            dt => Err(E::custom(format!("expected {} but found a boolean", json_kind(dt)))),
        }
    }

    fn visit_i64<E: de::Error>(mut self, v: i64) -> Result<(), E> {
        self.push_int(i128::from(v))
    }

    fn visit_u64<E: de::Error>(mut self, v: u64) -> Result<(), E> {
        self.push_int(i128::from(v))
    }

    fn visit_f64<E: de::Error>(mut self, v: f64) -> Result<(), E> {
        match self.datatype {
            DataType::F32 => self.push_raw(&(v as f32).to_le_bytes()),
            DataType::F64 => self.push_raw(&v.to_le_bytes()),
            DataType::Bool | DataType::Bytes => Err(E::custom(format!("expected {} but found a number", json_kind(self.datatype)))),
            dt => Err(E::custom(format!("expected an integer for {dt} but found {v}"))),
        }
    }

    fn visit_str<E: de::Error>(mut self, v: &str) -> Result<(), E> {
        match self.sink {
            Sink::Strings(out) => {
                if out.len() as u64 >= self.max {
                    out.push(Bytes::new());
                    return Err(E::custom("too many elements"));
                }
                out.push(Bytes::copy_from_slice(v.as_bytes()));
                Ok(())
            }
            Sink::Raw { .. } => {
                // `NaN`, `Infinity` and `-Infinity`, quoted by `quote_non_finite`.
                let non_finite = match v {
                    "NaN" => Some(f64::NAN),
                    "Infinity" => Some(f64::INFINITY),
                    "-Infinity" => Some(f64::NEG_INFINITY),
                    _ => None,
                };
                match (non_finite, self.datatype) {
                    (Some(x), DataType::F32) => self.push_raw(&(x as f32).to_le_bytes()),
                    (Some(x), DataType::F64) => self.push_raw(&x.to_le_bytes()),
                    _ => Err(E::custom(format!("expected {} but found a string", json_kind(self.datatype)))),
                }
            }
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(format!("expected {} but found null", json_kind(self.datatype))))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, _map: A) -> Result<(), A::Error> {
        Err(de::Error::custom(format!("expected {} but found an object", json_kind(self.datatype))))
    }
}

/// Tracks whether a byte of a JSON document is inside a string, so
/// `quote_non_finite` can look at structure only.
#[derive(Default)]
struct StringTracker {
    in_string: bool,
    escaped: bool,
}

impl StringTracker {
    /// Feeds one byte; true when it is structure (outside any string,
    /// opening quotes included).
    fn structural(&mut self, b: u8) -> bool {
        if self.in_string {
            if self.escaped {
                self.escaped = false;
            } else if b == b'\\' {
                self.escaped = true;
            } else if b == b'"' {
                self.in_string = false;
            }
            return false;
        }
        if b == b'"' {
            self.in_string = true;
        }
        true
    }
}

/// Rejects JSON nested deeper than `max` before serde sees it, so a deep
/// document costs one linear scan and no recursion. Returns whether the
/// document has a bare `N` or `I` outside strings: the `NaN` / `Infinity`
/// literals that Triton (rapidjson) accepts and perf_analyzer sends.
fn check_depth(json: &[u8], max: usize) -> Result<bool, DecodeError> {
    let mut non_finite = false;
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&b) = json.get(i) {
        i += 1;
        match b {
            b'"' => {
                // Skip the string (as `StringTracker` would, a byte at a time
                // with no state to keep): it ends at a quote no backslash escapes.
                while let Some(&c) = json.get(i) {
                    i += 1;
                    match c {
                        b'\\' => i += 1,
                        b'"' => break,
                        _ => {}
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(DecodeError::TooDeep(max));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'N' | b'I' => non_finite = true,
            _ => {}
        }
    }
    Ok(non_finite)
}

/// Rewrites the non-standard literals `NaN`, `Infinity` and `-Infinity`
/// outside strings as JSON strings, which the data visitor turns back into
/// floats. Anything else is left for serde to reject.
fn quote_non_finite(json: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(json.len() + 64);
    let mut strings = StringTracker::default();
    let mut i = 0;
    while i < json.len() {
        let rest = &json[i..];
        if !strings.in_string
            && let Some(lit) = [&b"-Infinity"[..], b"Infinity", b"NaN"].into_iter().find(|l| rest.starts_with(l))
        {
            out.push(b'"');
            out.extend_from_slice(lit);
            out.push(b'"');
            i += lit.len();
            continue;
        }
        strings.structural(json[i]);
        out.push(json[i]);
        i += 1;
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(body: &str) -> Result<InferRequest, DecodeError> {
        decode_request(Bytes::copy_from_slice(body.as_bytes()), None, &Limits::default(), None)
    }

    fn binary(header: &str, tail: &[u8]) -> Result<InferRequest, DecodeError> {
        let mut body = header.as_bytes().to_vec();
        body.extend_from_slice(tail);
        decode_request(Bytes::from(body), Some(header.len()), &Limits::default(), None)
    }

    fn f32s(v: &[f32]) -> Bytes {
        Bytes::from(v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>())
    }

    #[test]
    fn flat_and_nested_json_decode_the_same() {
        let flat = decode(r#"{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[1,2,3.5,4]}]}"#).unwrap();
        let nested = decode(r#"{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3.5,4]]}]}"#).unwrap();
        assert_eq!(flat, nested);
        assert_eq!(flat.inputs[0].data, TensorData::Raw(f32s(&[1.0, 2.0, 3.5, 4.0])));
        assert_eq!(flat.inputs[0].shape, vec![2, 2]);
        assert!(flat.outputs.is_none());
        assert!(!flat.binary_output);
    }

    #[test]
    fn every_json_datatype_decodes() {
        let cases: &[(&str, &str, Vec<u8>)] = &[
            ("BOOL", "[true,false]", vec![1, 0]),
            ("UINT8", "[0,255]", vec![0, 255]),
            ("INT8", "[-128,127]", vec![0x80, 0x7f]),
            ("UINT16", "[1,65535]", vec![1, 0, 255, 255]),
            ("INT16", "[-1,2]", vec![255, 255, 2, 0]),
            ("UINT32", "[1,2]", vec![1, 0, 0, 0, 2, 0, 0, 0]),
            ("INT32", "[-1,2]", vec![255, 255, 255, 255, 2, 0, 0, 0]),
            ("UINT64", "[18446744073709551615,0]", [u64::MAX.to_le_bytes(), 0u64.to_le_bytes()].concat()),
            ("INT64", "[-9223372036854775808,1]", [i64::MIN.to_le_bytes(), 1i64.to_le_bytes()].concat()),
            ("FP32", "[0.5,-2]", [0.5f32.to_le_bytes(), (-2f32).to_le_bytes()].concat()),
            ("FP64", "[0.1,1e300]", [0.1f64.to_le_bytes(), 1e300f64.to_le_bytes()].concat()),
        ];
        for (dt, data, want) in cases {
            let body = format!(r#"{{"inputs":[{{"name":"x","shape":[2],"datatype":"{dt}","data":{data}}}]}}"#);
            let req = decode(&body).unwrap_or_else(|e| panic!("{dt}: {e}"));
            assert_eq!(req.inputs[0].data, TensorData::Raw(Bytes::from(want.clone())), "{dt}");
        }
        let req = decode(r#"{"inputs":[{"name":"s","shape":[2],"datatype":"BYTES","data":["ab","é"]}]}"#).unwrap();
        assert_eq!(req.inputs[0].data, TensorData::Strings(vec![Bytes::from("ab"), Bytes::from("é")]));
    }

    #[test]
    fn wrong_json_types_are_rejected() {
        for (dt, data) in [
            ("INT32", "[1.5,2]"),
            ("UINT8", "[256,1]"),
            ("UINT8", "[-1,1]"),
            ("FP32", r#"["a",1]"#),
            ("FP32", "[null,1]"),
            ("FP32", "[{},1]"),
            ("BOOL", "[1,0]"),
            ("BYTES", "[1,2]"),
            ("INT64", "[true,false]"),
        ] {
            let body = format!(r#"{{"inputs":[{{"name":"x","shape":[2],"datatype":"{dt}","data":{data}}}]}}"#);
            let err = decode(&body).unwrap_err();
            assert!(matches!(err, DecodeError::BadData { .. }), "{dt} {data}: {err:?}");
        }
    }

    #[test]
    fn nan_and_infinity_literals_are_accepted_for_floats_like_triton() {
        let body = r#"{"id":"NaN","inputs":[{"name":"x","shape":[4],"datatype":"FP32","data":[NaN,Infinity,-Infinity,1]},{"name":"y","shape":[1],"datatype":"FP64","data":[-Infinity]}]}"#;
        let req = decode(body).unwrap();
        assert_eq!(req.id.as_deref(), Some("NaN"), "strings are untouched");
        let TensorData::Raw(raw) = &req.inputs[0].data else { panic!() };
        let v: Vec<f32> = raw.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        assert!(v[0].is_nan() && v[1] == f32::INFINITY && v[2] == f32::NEG_INFINITY && v[3] == 1.0);
        let TensorData::Raw(raw) = &req.inputs[1].data else { panic!() };
        assert_eq!(f64::from_le_bytes(raw[..8].try_into().unwrap()), f64::NEG_INFINITY);
        // Not for integers, and other bare words stay errors.
        assert!(decode(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"INT32","data":[NaN]}]}"#).is_err());
        assert!(decode(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[Inf]}]}"#).is_err());
        assert!(decode(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[nan]}]}"#).is_err());
    }

    #[test]
    fn element_count_must_match_shape() {
        let err = decode(r#"{"inputs":[{"name":"x","shape":[3],"datatype":"FP32","data":[1,2]}]}"#).unwrap_err();
        assert!(matches!(err, DecodeError::DataCountMismatch { expected: 3, actual: 2, .. }), "{err:?}");
        let err = decode(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1,2,3]}]}"#).unwrap_err();
        assert!(matches!(err, DecodeError::DataCountMismatch { expected: 1, .. }), "{err:?}");
    }

    #[test]
    fn fp16_and_bf16_are_binary_only() {
        for dt in ["FP16", "BF16"] {
            let body = format!(r#"{{"inputs":[{{"name":"x","shape":[1],"datatype":"{dt}","data":[1]}}]}}"#);
            let err = decode(&body).unwrap_err();
            assert!(matches!(err, DecodeError::BinaryOnlyDatatype { .. }), "{err:?}");
            assert!(err.to_string().contains("binary"));
        }
        let header = r#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP16","parameters":{"binary_data_size":4}}]}"#;
        let req = binary(header, &[0, 0x3c, 0, 0x40]).unwrap();
        assert_eq!(req.inputs[0].data, TensorData::Raw(Bytes::from_static(&[0, 0x3c, 0, 0x40])));
    }

    #[test]
    fn shapes_are_checked_before_allocation() {
        let err = decode(r#"{"inputs":[{"name":"x","shape":[-1,4],"datatype":"FP32","data":[1]}]}"#).unwrap_err();
        assert!(matches!(err, DecodeError::NegativeDimension { dim: -1, .. }));
        let err = decode(r#"{"inputs":[{"name":"x","shape":[4294967296,4294967296,16],"datatype":"FP32","data":[1]}]}"#).unwrap_err();
        assert!(matches!(err, DecodeError::TooManyElements { .. }), "{err:?}");
        let err = decode(r#"{"inputs":[{"name":"x","shape":[9223372036854775807,9223372036854775807],"datatype":"FP32","data":[1]}]}"#)
            .unwrap_err();
        assert!(matches!(err, DecodeError::TooManyElements { .. }), "{err:?}");
        // Too large for i64 is a schema error, not a panic.
        assert!(decode(r#"{"inputs":[{"name":"x","shape":[18446744073709551616],"datatype":"FP32","data":[1]}]}"#).is_err());
        // A lying shape within the limit still fails on the count, without reserving its size.
        let err = decode(r#"{"inputs":[{"name":"x","shape":[60000000],"datatype":"FP64","data":[1]}]}"#).unwrap_err();
        assert!(matches!(err, DecodeError::DataCountMismatch { .. }), "{err:?}");
    }

    #[test]
    fn request_level_element_limit() {
        let limits = Limits { max_elements_per_request: 3, ..Limits::default() };
        let body = r#"{"inputs":[{"name":"a","shape":[2],"datatype":"FP32","data":[1,2]},{"name":"b","shape":[2],"datatype":"FP32","data":[1,2]}]}"#;
        let err = decode_request(Bytes::from(body), None, &limits, None).unwrap_err();
        assert_eq!(err, DecodeError::RequestTooLarge(3));
    }

    #[test]
    fn binary_inputs_decode_in_order() {
        let header = r#"{"inputs":[{"name":"a","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}},{"name":"b","shape":[1],"datatype":"INT64","data":[7]},{"name":"c","shape":[1],"datatype":"UINT8","parameters":{"binary_data_size":1}}],"parameters":{"binary_data_output":true},"outputs":[{"name":"y","parameters":{"binary_data":false}}]}"#;
        let mut tail = f32s(&[1.0, 2.0]).to_vec();
        tail.push(9);
        let req = binary(header, &tail).unwrap();
        assert_eq!(req.inputs[0].data, TensorData::Raw(f32s(&[1.0, 2.0])));
        assert_eq!(req.inputs[1].data, TensorData::Raw(Bytes::from(7i64.to_le_bytes().to_vec())));
        assert_eq!(req.inputs[2].data, TensorData::Raw(Bytes::from_static(&[9])));
        assert!(req.binary_output);
        assert_eq!(req.outputs, Some(vec![RequestedOutput { name: "y".into(), binary: Some(false) }]));
    }

    #[test]
    fn binary_sizes_are_checked() {
        let h = r#"{"inputs":[{"name":"a","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}}]}"#;
        assert!(matches!(binary(h, &[0; 4]).unwrap_err(), DecodeError::BinaryTruncated { .. }));
        assert_eq!(binary(h, &[0; 12]).unwrap_err(), DecodeError::BinaryTrailing(4));
        let h = r#"{"inputs":[{"name":"a","shape":[3],"datatype":"FP32","parameters":{"binary_data_size":8}}]}"#;
        assert!(matches!(binary(h, &[0; 8]).unwrap_err(), DecodeError::BinarySizeMismatch { expected: 12, actual: 8, .. }));
        let h = r#"{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":18446744073709551615}}]}"#;
        assert!(matches!(binary(h, &[0; 4]).unwrap_err(), DecodeError::BinaryTruncated { .. }));
        let h = r#"{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":-4}}]}"#;
        assert!(matches!(binary(h, &[0; 4]).unwrap_err(), DecodeError::BadParameter(_)));
    }

    #[test]
    fn header_length_beyond_body_is_rejected() {
        let err = decode_request(Bytes::from_static(b"{}"), Some(100), &Limits::default(), None).unwrap_err();
        assert_eq!(err, DecodeError::HeaderLengthTooLarge { header: 100, body: 2 });
    }

    #[test]
    fn binary_size_without_header_is_rejected() {
        let err = decode(r#"{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}}]}"#).unwrap_err();
        assert!(matches!(err, DecodeError::BinaryWithoutHeader(_)));
    }

    #[test]
    fn bytes_binary_layout() {
        let h = r#"{"inputs":[{"name":"s","shape":[2],"datatype":"BYTES","parameters":{"binary_data_size":11}}]}"#;
        let mut tail = 2u32.to_le_bytes().to_vec();
        tail.extend_from_slice(b"hi");
        tail.extend_from_slice(&1u32.to_le_bytes());
        tail.push(b'x');
        let req = binary(h, &tail).unwrap();
        assert_eq!(req.inputs[0].data, TensorData::Strings(vec![Bytes::from("hi"), Bytes::from("x")]));
        // Length prefix past the end.
        let mut bad = 200u32.to_le_bytes().to_vec();
        bad.extend_from_slice(&[0; 7]);
        assert!(matches!(binary(h, &bad).unwrap_err(), DecodeError::BadBytesLength(_)));
        // Truncated prefix.
        let h3 = r#"{"inputs":[{"name":"s","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":3}}]}"#;
        assert!(matches!(binary(h3, &[1, 0, 0]).unwrap_err(), DecodeError::BadBytesLength(_)));
        // Wrong element count.
        let h1 = r#"{"inputs":[{"name":"s","shape":[3],"datatype":"BYTES","parameters":{"binary_data_size":11}}]}"#;
        assert!(matches!(binary(h1, &tail).unwrap_err(), DecodeError::BytesCountMismatch { expected: 3, actual: 2, .. }));
    }

    #[test]
    fn deep_json_is_rejected_without_recursion() {
        let deep = format!(
            r#"{{"inputs":[{{"name":"x","shape":[1],"datatype":"FP32","data":{}1{}}}]}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(decode(&deep).unwrap_err(), DecodeError::TooDeep(100));
        // Brackets inside strings do not count.
        let s = format!(r#"{{"id":"{}","inputs":[{{"name":"x","shape":[1],"datatype":"FP32","data":[1]}}]}}"#, "[".repeat(500));
        assert!(decode(&s).is_ok());
    }

    /// `check_depth` against the byte-at-a-time `StringTracker` scan it
    /// replaced, on documents made of the bytes that matter: brackets,
    /// quotes, backslashes, the non-finite initials and filler.
    #[test]
    fn depth_scan_matches_the_string_tracker_scan() {
        fn reference(json: &[u8], max: usize) -> Result<bool, DecodeError> {
            let (mut non_finite, mut depth, mut strings) = (false, 0usize, StringTracker::default());
            for &b in json {
                if !strings.structural(b) {
                    continue;
                }
                match b {
                    b'[' | b'{' => {
                        depth += 1;
                        if depth > max {
                            return Err(DecodeError::TooDeep(max));
                        }
                    }
                    b']' | b'}' => depth = depth.saturating_sub(1),
                    b'N' | b'I' => non_finite = true,
                    _ => {}
                }
            }
            Ok(non_finite)
        }
        let alphabet = b"[]{}\"\\NIa1,";
        let mut next = crate::protocol::test_rng(0x2545_f491_4f6c_dd1d);
        for _ in 0..200_000 {
            let len = (next() % 24) as usize;
            let doc: Vec<u8> = (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
            let max = (next() % 4) as usize;
            assert_eq!(check_depth(&doc, max), reference(&doc, max), "{:?}", String::from_utf8_lossy(&doc));
        }
        // The cases by name: an escaped quote does not end a string, an escaped backslash does not escape the quote.
        assert_eq!(check_depth(br#""a\"[[[" [N"#, 1), Ok(true));
        assert_eq!(check_depth(br#""a\\"[[ "#, 1), Err(DecodeError::TooDeep(1)));
        assert_eq!(check_depth(br#""NaN" I"#, 1), Ok(true));
        assert_eq!(check_depth(br#""unterminated [[[["#, 1), Ok(false));
    }

    #[test]
    fn malformed_documents() {
        for body in [
            "",
            "null",
            "[]",
            "{",
            r#"{"inputs":{}}"#,
            r#"{"inputs":[{"name":"x"}]}"#,
            "\u{0}",
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]} trailing"#,
        ] {
            assert!(matches!(decode(body), Err(DecodeError::Json(_))), "{body:?}");
        }
        assert!(decode_request(Bytes::from_static(b"{\"inputs\":[\xff]}"), None, &Limits::default(), None).is_err());
        let err = decode(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FLOAT","data":[1]}]}"#).unwrap_err();
        assert!(matches!(err, DecodeError::UnknownDatatype { .. }));
        // A datatype written with escapes cannot be borrowed from the body: it still decodes.
        let req = decode(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP\u00332","data":[1]}]}"#).unwrap();
        assert_eq!(req.inputs[0].datatype, DataType::F32);
        let err = decode(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32"}]}"#).unwrap_err();
        assert!(matches!(err, DecodeError::MissingData(_)));
        let err = decode(
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]},{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}"#,
        )
        .unwrap_err();
        assert!(matches!(err, DecodeError::DuplicateInput(_)));
        let err = decode(r#"{"inputs":[],"parameters":{"binary_data_output":"yes"}}"#).unwrap_err();
        assert!(matches!(err, DecodeError::BadParameter(_)));
    }

    #[test]
    fn id_is_kept() {
        let req = decode(r#"{"id":"r1","inputs":[]}"#).unwrap();
        assert_eq!(req.id.as_deref(), Some("r1"));
    }

    #[test]
    fn raw_mode_fills_the_variable_dimension() {
        let input = RawInput { name: "x", datatype: DataType::F32, dims: &[-1, 2] };
        let req = decode_request(f32s(&[1.0, 2.0, 3.0, 4.0]), Some(0), &Limits::default(), Some(input.clone())).unwrap();
        assert_eq!(req.inputs[0].shape, vec![2, 2]);
        assert!(req.binary_output);
        let err = decode_request(Bytes::from_static(&[0; 5]), Some(0), &Limits::default(), Some(input)).unwrap_err();
        assert!(matches!(err, DecodeError::RawMode(_)));
        let err = decode_request(Bytes::from_static(&[0; 8]), Some(0), &Limits::default(), None).unwrap_err();
        assert!(matches!(err, DecodeError::RawMode(_)));
    }
}
