//! Request inputs for the benchmark: random data that fits the model's
//! metadata (fixed seed), or perf_analyzer's `--input-data` JSON.
//!
//! Both produce a small set of distinct requests that the measurement cycles
//! through, so the cost of generating data is never measured.

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::Value;

use crate::model::{ModelMeta, TensorMeta};
use crate::protocol::{DataType, InputTensor, TensorData};

/// Distinct random requests generated per batch size: enough that caches do
/// not see the same bytes every time, few enough to stay small.
const RANDOM_VARIANTS: usize = 8;

/// Largest tensor the benchmark generates, so a model with huge fixed
/// dimensions fails clearly instead of exhausting memory.
const MAX_TENSOR_BYTES: u64 = 1 << 30;

/// One request: the inputs of one inference call.
pub type Request = Vec<InputTensor>;

/// splitmix64: tiny, deterministic, and good enough for benchmark inputs.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The concrete shape of one input for a batch: the batch dimension is the
/// batch size, other variable dimensions are 1.
pub(crate) fn concrete_shape(meta: &ModelMeta, t: &TensorMeta, batch: usize) -> Vec<usize> {
    t.shape
        .iter()
        .enumerate()
        .map(|(k, &d)| {
            if k == 0 && meta.max_batch_size > 0 {
                batch
            } else if d < 0 {
                1
            } else {
                d as usize
            }
        })
        .collect()
}

fn random_tensor(rng: &mut Rng, t: &TensorMeta, shape: Vec<usize>) -> Result<InputTensor, String> {
    let count = crate::protocol::element_count(&shape).ok_or_else(|| format!("input '{}': shape {shape:?} overflows", t.name))?;
    let data = match t.datatype.size() {
        None => TensorData::Strings(
            (0..count).map(|_| Bytes::from((0..8).map(|_| b'a' + (rng.next() % 26) as u8).collect::<Vec<u8>>())).collect(),
        ),
        Some(size) => {
            let bytes = count
                .checked_mul(size as u64)
                .filter(|&b| b <= MAX_TENSOR_BYTES)
                .ok_or_else(|| format!("input '{}': shape {shape:?} needs more than {MAX_TENSOR_BYTES} bytes", t.name))?;
            let mut v = Vec::with_capacity(bytes as usize);
            for _ in 0..count {
                push_random(rng, t.datatype, &mut v);
            }
            TensorData::Raw(Bytes::from(v))
        }
    };
    Ok(InputTensor { name: t.name.clone(), datatype: t.datatype, shape, data })
}

/// Floats uniform in [0, 1), integers in 0..10 (valid indices and labels for
/// most models), booleans 0 or 1.
fn push_random(rng: &mut Rng, dt: DataType, out: &mut Vec<u8>) {
    let small = rng.next() % 10;
    match dt {
        DataType::Bool => out.push((small & 1) as u8),
        DataType::U8 | DataType::I8 => out.push(small as u8),
        DataType::U16 | DataType::I16 => out.extend_from_slice(&(small as u16).to_le_bytes()),
        DataType::U32 | DataType::I32 => out.extend_from_slice(&(small as u32).to_le_bytes()),
        DataType::U64 | DataType::I64 => out.extend_from_slice(&small.to_le_bytes()),
        DataType::F32 => out.extend_from_slice(&(rng.unit() as f32).to_le_bytes()),
        DataType::F64 => out.extend_from_slice(&rng.unit().to_le_bytes()),
        DataType::Bf16 => out.extend_from_slice(&(((rng.unit() as f32).to_bits() >> 16) as u16).to_le_bytes()),
        DataType::F16 => out.extend_from_slice(&f16_bits(rng.unit() as f32).to_le_bytes()),
        DataType::Bytes => {}
    }
}

/// IEEE half-precision bits of a value in [0, 1) (truncated; zero below 2^-14).
fn f16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    let exp = ((bits >> 23) & 0xff) as i32 - 127 + 15;
    if exp <= 0 { 0 } else { ((exp as u16) << 10) | ((bits >> 13) & 0x3ff) as u16 }
}

/// Random requests for one batch size.
pub fn random_requests(meta: &ModelMeta, batch: usize, seed: u64) -> Result<Vec<Request>, String> {
    let mut rng = Rng(seed ^ (batch as u64).wrapping_mul(0x1000_0000_01B3));
    (0..RANDOM_VARIANTS).map(|_| meta.inputs.iter().map(|t| random_tensor(&mut rng, t, concrete_shape(meta, t, batch))).collect()).collect()
}

/// One input of one `--input-data` entry.
#[derive(Debug, Clone)]
struct Sample {
    values: Vec<Value>,
    shape: Option<Vec<usize>>,
}

/// perf_analyzer's `--input-data` file: `{"data": [{"INPUT": [..] | {"content": [..], "shape": [..]}}, ..]}`.
/// Each entry is one sample (without the batch dimension); a batch stacks
/// consecutive entries, as perf_analyzer does.
#[derive(Debug, Clone)]
pub struct InputData {
    entries: Vec<HashMap<String, Sample>>,
}

fn flatten(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| flatten(x, out)),
        x => out.push(x.clone()),
    }
}

impl InputData {
    pub fn parse(bytes: &[u8]) -> Result<InputData, String> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        let data = v.get("data").and_then(Value::as_array).ok_or("expected an object with a \"data\" array")?;
        if data.is_empty() {
            return Err("\"data\" is empty".into());
        }
        let mut entries = Vec::with_capacity(data.len());
        for (i, entry) in data.iter().enumerate() {
            let obj = entry.as_object().ok_or_else(|| format!("data[{i}] is not an object"))?;
            let mut map = HashMap::new();
            for (name, t) in obj {
                let (content, shape) = match t {
                    Value::Object(o) if o.contains_key("b64") => {
                        return Err(format!("data[{i}].{name}: \"b64\" content is not supported; use \"content\""));
                    }
                    Value::Object(o) => {
                        let content = o.get("content").ok_or_else(|| format!("data[{i}].{name}: expected \"content\""))?;
                        let shape = o
                            .get("shape")
                            .map(|s| {
                                serde_json::from_value::<Vec<usize>>(s.clone())
                                    .map_err(|_| format!("data[{i}].{name}: \"shape\" must be a list of non-negative integers"))
                            })
                            .transpose()?;
                        (content, shape)
                    }
                    other => (other, None),
                };
                let mut values = Vec::new();
                flatten(content, &mut values);
                map.insert(name.clone(), Sample { values, shape });
            }
            entries.push(map);
        }
        Ok(InputData { entries })
    }

    /// Requests for one batch size: one per entry (cycling to fill batches).
    pub(crate) fn requests(&self, meta: &ModelMeta, batch: usize) -> Result<Vec<Request>, String> {
        let n = self.entries.len();
        let mut out = Vec::with_capacity(n);
        for r in 0..n {
            let mut req = Vec::with_capacity(meta.inputs.len());
            for t in &meta.inputs {
                let mut shape: Option<Vec<usize>> = None;
                let mut raw = Vec::new();
                let mut strings = Vec::new();
                for k in 0..batch {
                    let idx = (r * batch + k) % n;
                    let s = self.entries[idx].get(&t.name).ok_or_else(|| format!("data[{idx}] has no input '{}'", t.name))?;
                    let sample_shape = match &s.shape {
                        Some(sh) => sh.clone(),
                        None => infer_shape(meta, t, s.values.len())?,
                    };
                    let want = crate::protocol::element_count(&sample_shape).unwrap_or(u64::MAX);
                    if want != s.values.len() as u64 {
                        return Err(format!("data[{idx}].{}: shape {sample_shape:?} needs {want} values, got {}", t.name, s.values.len()));
                    }
                    if *shape.get_or_insert_with(|| sample_shape.clone()) != sample_shape {
                        return Err(format!("input '{}': entries stacked into one batch have different shapes", t.name));
                    }
                    for v in &s.values {
                        encode_value(t.datatype, v, &mut raw, &mut strings).map_err(|e| format!("data[{idx}].{}: {e}", t.name))?;
                    }
                }
                let mut full = shape.unwrap_or_default();
                if meta.max_batch_size > 0 {
                    full.insert(0, batch);
                }
                let data = if t.datatype == DataType::Bytes { TensorData::Strings(strings) } else { TensorData::Raw(Bytes::from(raw)) };
                req.push(InputTensor { name: t.name.clone(), datatype: t.datatype, shape: full, data });
            }
            out.push(req);
        }
        Ok(out)
    }
}

/// The per-sample shape from the model's dimensions: at most one variable
/// dimension, inferred from the number of values.
fn infer_shape(meta: &ModelMeta, t: &TensorMeta, values: usize) -> Result<Vec<usize>, String> {
    let dims = if meta.max_batch_size > 0 { &t.shape[1..] } else { &t.shape[..] };
    let fixed: usize = dims.iter().filter(|&&d| d >= 0).map(|&d| d as usize).product();
    let variable = dims.iter().filter(|&&d| d < 0).count();
    match variable {
        0 => Ok(dims.iter().map(|&d| d as usize).collect()),
        1 if fixed > 0 && values.is_multiple_of(fixed) => {
            Ok(dims.iter().map(|&d| if d < 0 { values / fixed } else { d as usize }).collect())
        }
        _ => Err(format!("input '{}' has variable dimensions {dims:?}: give \"shape\" with \"content\"", t.name)),
    }
}

fn encode_value(dt: DataType, v: &Value, raw: &mut Vec<u8>, strings: &mut Vec<Bytes>) -> Result<(), String> {
    let num = || v.as_f64().ok_or_else(|| format!("{v} is not a number"));
    let int = || v.as_i64().or_else(|| v.as_u64().map(|u| u as i64)).ok_or_else(|| format!("{v} is not an integer"));
    match dt {
        DataType::Bytes => strings.push(match v {
            Value::String(s) => Bytes::from(s.clone().into_bytes()),
            other => Bytes::from(other.to_string().into_bytes()),
        }),
        DataType::Bool => raw.push(u8::from(v.as_bool().ok_or_else(|| format!("{v} is not a boolean"))?)),
        DataType::U8 => raw.push(int()? as u8),
        DataType::I8 => raw.push(int()? as i8 as u8),
        DataType::U16 => raw.extend_from_slice(&(int()? as u16).to_le_bytes()),
        DataType::I16 => raw.extend_from_slice(&(int()? as i16).to_le_bytes()),
        DataType::U32 => raw.extend_from_slice(&(int()? as u32).to_le_bytes()),
        DataType::I32 => raw.extend_from_slice(&(int()? as i32).to_le_bytes()),
        DataType::U64 => raw.extend_from_slice(&(int()? as u64).to_le_bytes()),
        DataType::I64 => raw.extend_from_slice(&int()?.to_le_bytes()),
        DataType::F32 => raw.extend_from_slice(&(num()? as f32).to_le_bytes()),
        DataType::F64 => raw.extend_from_slice(&num()?.to_le_bytes()),
        DataType::F16 | DataType::Bf16 => return Err("FP16/BF16 input data is not supported; use random inputs".into()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iris() -> ModelMeta {
        ModelMeta {
            name: "iris".into(),
            version: 1,
            max_batch_size: 64,
            inputs: vec![TensorMeta { name: "float_input".into(), datatype: DataType::F32, shape: vec![-1, 4] }],
            outputs: vec![],
        }
    }

    #[test]
    fn random_inputs_fit_the_metadata_and_are_reproducible() {
        let a = random_requests(&iris(), 8, 1).unwrap();
        let b = random_requests(&iris(), 8, 1).unwrap();
        assert_eq!(a, b);
        assert_eq!(a[0][0].shape, vec![8, 4]);
        assert_eq!(a[0][0].data.payload_len(), 8 * 4 * 4);
        assert_ne!(a[0], a[1], "variants differ");
        assert_ne!(a, random_requests(&iris(), 8, 2).unwrap(), "the seed matters");
    }

    #[test]
    fn input_data_stacks_entries_into_batches() {
        let d =
            InputData::parse(br#"{"data": [{"float_input": [1, 2, 3, 4]}, {"float_input": {"content": [[5, 6, 7, 8]], "shape": [4]}}]}"#)
                .unwrap();
        let r = d.requests(&iris(), 3).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0][0].shape, vec![3, 4]);
        let TensorData::Raw(raw) = &r[0][0].data else { panic!("raw") };
        let floats: Vec<f32> = raw.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(floats, [1., 2., 3., 4., 5., 6., 7., 8., 1., 2., 3., 4.]);
    }

    #[test]
    fn bad_input_data_is_a_clear_error() {
        assert!(InputData::parse(b"[]").unwrap_err().contains("\"data\""));
        let d = InputData::parse(br#"{"data": [{"float_input": [1, 2, 3]}]}"#).unwrap();
        assert!(d.requests(&iris(), 1).unwrap_err().contains("needs 4 values"));
        let d = InputData::parse(br#"{"data": [{"other": [1, 2, 3, 4]}]}"#).unwrap();
        assert!(d.requests(&iris(), 1).unwrap_err().contains("no input 'float_input'"));
    }
}
