//! Response encoding: JSON, or JSON header followed by binary tensors.

use bytes::Bytes;
use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};

use super::{DataType, TensorData};

/// One output tensor, ready to encode.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputTensor {
    pub name: String,
    pub datatype: DataType,
    pub shape: Vec<usize>,
    pub data: TensorData,
    /// Send as binary (extension) rather than JSON `data`.
    pub binary: bool,
}

struct Outputs<'a>(&'a [OutputTensor]);

impl Serialize for Outputs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for o in self.0 {
            seq.serialize_element(&Output(o))?;
        }
        seq.end()
    }
}

struct Output<'a>(&'a OutputTensor);

#[derive(Serialize)]
struct BinaryParams {
    binary_data_size: usize,
}

impl Serialize for Output<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let o = self.0;
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("name", &o.name)?;
        m.serialize_entry("datatype", o.datatype.as_str())?;
        m.serialize_entry("shape", &o.shape)?;
        if o.binary {
            m.serialize_entry("parameters", &BinaryParams { binary_data_size: binary_len(&o.data) })?;
        } else {
            m.serialize_entry("data", &Data { datatype: o.datatype, data: &o.data })?;
        }
        m.end()
    }
}

struct Data<'a> {
    datatype: DataType,
    data: &'a TensorData,
}

impl Serialize for Data<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        macro_rules! elems {
            ($raw:expr, $t:ty, $n:literal) => {{
                let mut seq = s.serialize_seq(Some($raw.len() / $n))?;
                for c in $raw.chunks_exact($n) {
                    seq.serialize_element(&<$t>::from_le_bytes(c.try_into().expect("chunk size")))?;
                }
                seq.end()
            }};
        }
        match (self.data, self.datatype) {
            (TensorData::Strings(v), _) => {
                let mut seq = s.serialize_seq(Some(v.len()))?;
                for b in v {
                    seq.serialize_element(&String::from_utf8_lossy(b))?;
                }
                seq.end()
            }
            (TensorData::Raw(raw), dt) => match dt {
                DataType::Bool => {
                    let mut seq = s.serialize_seq(Some(raw.len()))?;
                    for &b in raw.iter() {
                        seq.serialize_element(&(b != 0))?;
                    }
                    seq.end()
                }
                DataType::U8 => elems!(raw, u8, 1),
                DataType::I8 => elems!(raw, i8, 1),
                DataType::U16 => elems!(raw, u16, 2),
                DataType::I16 => elems!(raw, i16, 2),
                DataType::U32 => elems!(raw, u32, 4),
                DataType::I32 => elems!(raw, i32, 4),
                DataType::U64 => elems!(raw, u64, 8),
                DataType::I64 => elems!(raw, i64, 8),
                DataType::F32 => elems!(raw, f32, 4),
                DataType::F64 => elems!(raw, f64, 8),
                // FP16/BF16 outputs are always sent binary (see `encode_response`).
                DataType::F16 | DataType::Bf16 | DataType::Bytes => s.serialize_seq(Some(0))?.end(),
            },
        }
    }
}

fn binary_len(data: &TensorData) -> usize {
    match data {
        TensorData::Raw(b) => b.len(),
        TensorData::Strings(v) => v.iter().map(|b| 4 + b.len()).sum(),
    }
}

#[derive(Serialize)]
struct Response<'a> {
    model_name: &'a str,
    model_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    outputs: Outputs<'a>,
}

/// Encodes a response. Returns the body and, when any output is binary, the
/// value of `Inference-Header-Content-Length`.
///
/// FP16/BF16 outputs have no JSON form, so they are sent binary whatever
/// the request asked.
pub fn encode_response(model_name: &str, model_version: &str, id: Option<&str>, outputs: &mut [OutputTensor]) -> (Bytes, Option<usize>) {
    for o in outputs.iter_mut() {
        if !o.datatype.json_capable() {
            o.binary = true;
        }
    }
    let resp = Response { model_name, model_version, id, outputs: Outputs(outputs) };
    let tail: usize = outputs.iter().filter(|o| o.binary).map(|o| binary_len(&o.data)).sum();
    let mut body = Vec::with_capacity(256 + tail);
    serde_json::to_writer(&mut body, &resp).expect("serialising to a Vec cannot fail");
    if !outputs.iter().any(|o| o.binary) {
        return (Bytes::from(body), None);
    }
    let header_len = body.len();
    for o in outputs.iter().filter(|o| o.binary) {
        match &o.data {
            TensorData::Raw(b) => body.extend_from_slice(b),
            TensorData::Strings(v) => {
                for b in v {
                    body.extend_from_slice(&(b.len() as u32).to_le_bytes());
                    body.extend_from_slice(b);
                }
            }
        }
    }
    (Bytes::from(body), Some(header_len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn out(name: &str, datatype: DataType, shape: Vec<usize>, data: TensorData, binary: bool) -> OutputTensor {
        OutputTensor { name: name.into(), datatype, shape, data, binary }
    }

    #[test]
    fn json_response() {
        let mut outs = vec![
            out("label", DataType::I64, vec![2], TensorData::Raw(Bytes::from([3i64.to_le_bytes(), (-1i64).to_le_bytes()].concat())), false),
            out(
                "p",
                DataType::F32,
                vec![1, 2],
                TensorData::Raw(Bytes::from([0.25f32.to_le_bytes(), 0.75f32.to_le_bytes()].concat())),
                false,
            ),
            out("b", DataType::Bool, vec![2], TensorData::Raw(Bytes::from_static(&[1, 0])), false),
            out("s", DataType::Bytes, vec![1], TensorData::Strings(vec![Bytes::from("cat")]), false),
        ];
        let (body, hl) = encode_response("m", "1", Some("r"), &mut outs);
        assert_eq!(hl, None);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            json!({"model_name":"m","model_version":"1","id":"r","outputs":[
                {"name":"label","datatype":"INT64","shape":[2],"data":[3,-1]},
                {"name":"p","datatype":"FP32","shape":[1,2],"data":[0.25,0.75]},
                {"name":"b","datatype":"BOOL","shape":[2],"data":[true,false]},
                {"name":"s","datatype":"BYTES","shape":[1],"data":["cat"]}]})
        );
    }

    #[test]
    fn binary_response_layout() {
        let raw = Bytes::from([1.5f32.to_le_bytes(), 2.5f32.to_le_bytes()].concat());
        let mut outs = vec![
            out("a", DataType::F32, vec![2], TensorData::Raw(raw.clone()), true),
            out("j", DataType::I32, vec![1], TensorData::Raw(Bytes::from(5i32.to_le_bytes().to_vec())), false),
            out("s", DataType::Bytes, vec![1], TensorData::Strings(vec![Bytes::from("xy")]), true),
        ];
        let (body, hl) = encode_response("m", "2", None, &mut outs);
        let hl = hl.unwrap();
        let v: Value = serde_json::from_slice(&body[..hl]).unwrap();
        assert!(v.get("id").is_none());
        assert_eq!(v["outputs"][0]["parameters"]["binary_data_size"], 8);
        assert!(v["outputs"][0].get("data").is_none());
        assert_eq!(v["outputs"][1]["data"], json!([5]));
        assert_eq!(v["outputs"][2]["parameters"]["binary_data_size"], 6);
        assert_eq!(&body[hl..hl + 8], &raw[..]);
        assert_eq!(&body[hl + 8..], &[2, 0, 0, 0, b'x', b'y']);
    }

    #[test]
    fn half_precision_is_always_binary() {
        let mut outs = vec![out("h", DataType::F16, vec![1], TensorData::Raw(Bytes::from_static(&[0, 0x3c])), false)];
        let (body, hl) = encode_response("m", "1", None, &mut outs);
        assert_eq!(&body[hl.unwrap()..], &[0, 0x3c]);
    }
}
