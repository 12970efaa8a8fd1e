//! Response encoding: JSON, or JSON header followed by binary tensors.

use bytes::Bytes;

use super::{DataType, TensorData};

/// One output tensor, ready to encode.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputTensor<'a> {
    /// The model's own output name (borrowed: no copy per request).
    pub name: &'a str,
    pub datatype: DataType,
    pub shape: Vec<usize>,
    pub data: TensorData,
    /// Send as binary (extension) rather than JSON `data`.
    pub binary: bool,
}

/// Writes a JSON string (escaped by serde_json).
fn write_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

/// Writes a float the way Triton does: shortest round-trip digits, and the
/// literals `NaN`, `Infinity`, `-Infinity` (rapidjson's `kWriteNanAndInfFlag`)
/// where serde_json would write `null` and lose the value.
fn write_float(out: &mut Vec<u8>, x: f64, finite_json: impl FnOnce(&mut Vec<u8>)) {
    if x.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if x == f64::INFINITY {
        out.extend_from_slice(b"Infinity");
    } else if x == f64::NEG_INFINITY {
        out.extend_from_slice(b"-Infinity");
    } else {
        finite_json(out);
    }
}

/// A fixed-size element of a little-endian tensor buffer, written as JSON.
trait JsonElem: Sized {
    const SIZE: usize;
    fn from_le(chunk: &[u8]) -> Self;
    fn write_json(self, out: &mut Vec<u8>);
}

macro_rules! json_elem {
    ($($t:ty),*) => {$(
        impl JsonElem for $t {
            const SIZE: usize = size_of::<$t>();
            fn from_le(chunk: &[u8]) -> Self {
                <$t>::from_le_bytes(chunk.try_into().expect("chunk size"))
            }
            fn write_json(self, out: &mut Vec<u8>) {
                write_json_value(out, &self);
            }
        }
    )*};
}
json_elem!(u8, i8, u16, i16, u32, i32, u64, i64);

impl JsonElem for f32 {
    const SIZE: usize = 4;
    fn from_le(chunk: &[u8]) -> Self {
        f32::from_le_bytes(chunk.try_into().expect("chunk size"))
    }
    fn write_json(self, out: &mut Vec<u8>) {
        write_float(out, self.into(), |o| write_json_value(o, &self));
    }
}

impl JsonElem for f64 {
    const SIZE: usize = 8;
    fn from_le(chunk: &[u8]) -> Self {
        f64::from_le_bytes(chunk.try_into().expect("chunk size"))
    }
    fn write_json(self, out: &mut Vec<u8>) {
        write_float(out, self, |o| write_json_value(o, &self));
    }
}

fn write_json_value(out: &mut Vec<u8>, v: &impl serde::Serialize) {
    serde_json::to_writer(out, v).expect("writing to a Vec cannot fail");
}

/// Comma-separated elements of a little-endian buffer (no brackets).
fn write_elems<T: JsonElem>(out: &mut Vec<u8>, raw: &[u8]) {
    for (i, c) in raw.chunks_exact(T::SIZE).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        T::from_le(c).write_json(out);
    }
}

fn write_data(out: &mut Vec<u8>, datatype: DataType, data: &TensorData) {
    out.push(b'[');
    match (data, datatype) {
        (TensorData::Strings(v), _) => {
            for (i, b) in v.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, &String::from_utf8_lossy(b));
            }
        }
        (TensorData::Raw(raw), dt) => match dt {
            DataType::Bool => {
                for (i, &b) in raw.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(if b != 0 { b"true" } else { b"false" });
                }
            }
            DataType::U8 => write_elems::<u8>(out, raw),
            DataType::I8 => write_elems::<i8>(out, raw),
            DataType::U16 => write_elems::<u16>(out, raw),
            DataType::I16 => write_elems::<i16>(out, raw),
            DataType::U32 => write_elems::<u32>(out, raw),
            DataType::I32 => write_elems::<i32>(out, raw),
            DataType::U64 => write_elems::<u64>(out, raw),
            DataType::I64 => write_elems::<i64>(out, raw),
            DataType::F32 => write_elems::<f32>(out, raw),
            DataType::F64 => write_elems::<f64>(out, raw),
            // FP16/BF16 outputs are always sent binary (see `encode_response`).
            DataType::F16 | DataType::Bf16 | DataType::Bytes => {}
        },
    }
    out.push(b']');
}

fn binary_len(data: &TensorData) -> usize {
    match data {
        TensorData::Raw(b) => b.len(),
        TensorData::Strings(v) => v.iter().map(|b| 4 + b.len()).sum(),
    }
}

/// Encodes a response. Returns the body and, when any output is binary, the
/// value of `Inference-Header-Content-Length`.
///
/// FP16/BF16 outputs have no JSON form, so they are sent binary whatever
/// the request asked.
pub fn encode_response(
    model_name: &str,
    model_version: &str,
    id: Option<&str>,
    outputs: &mut [OutputTensor<'_>],
) -> (Bytes, Option<usize>) {
    for o in outputs.iter_mut() {
        if !o.datatype.json_capable() {
            o.binary = true;
        }
    }
    let tail: usize = outputs.iter().filter(|o| o.binary).map(|o| binary_len(&o.data)).sum();
    let mut body = Vec::with_capacity(256 + tail);
    body.extend_from_slice(b"{\"model_name\":");
    write_str(&mut body, model_name);
    body.extend_from_slice(b",\"model_version\":");
    write_str(&mut body, model_version);
    if let Some(id) = id {
        body.extend_from_slice(b",\"id\":");
        write_str(&mut body, id);
    }
    body.extend_from_slice(b",\"outputs\":[");
    for (i, o) in outputs.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(b"{\"name\":");
        write_str(&mut body, o.name);
        body.extend_from_slice(b",\"datatype\":\"");
        body.extend_from_slice(o.datatype.as_str().as_bytes());
        body.extend_from_slice(b"\",\"shape\":");
        serde_json::to_writer(&mut body, &o.shape).expect("writing to a Vec cannot fail");
        if o.binary {
            body.extend_from_slice(format!(",\"parameters\":{{\"binary_data_size\":{}}}}}", binary_len(&o.data)).as_bytes());
        } else {
            body.extend_from_slice(b",\"data\":");
            write_data(&mut body, o.datatype, &o.data);
            body.push(b'}');
        }
    }
    body.extend_from_slice(b"]}");
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

    fn out(name: &str, datatype: DataType, shape: Vec<usize>, data: TensorData, binary: bool) -> OutputTensor<'_> {
        OutputTensor { name, datatype, shape, data, binary }
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
    fn non_finite_floats_are_literals_like_triton() {
        let raw = Bytes::from(
            [f32::NAN.to_le_bytes(), f32::INFINITY.to_le_bytes(), f32::NEG_INFINITY.to_le_bytes(), 0.5f32.to_le_bytes()].concat(),
        );
        let mut outs = vec![out("x", DataType::F32, vec![4], TensorData::Raw(raw), false)];
        let (body, _) = encode_response("m", "1", None, &mut outs);
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(text.contains(r#""data":[NaN,Infinity,-Infinity,0.5]"#), "{text}");
    }

    #[test]
    fn strings_are_escaped() {
        let mut outs = vec![out("q\"x", DataType::Bytes, vec![1], TensorData::Strings(vec![Bytes::from("a\"b\n")]), false)];
        let (body, _) = encode_response("m\"", "1", Some("i\\d"), &mut outs);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["model_name"], "m\"");
        assert_eq!(v["id"], "i\\d");
        assert_eq!(v["outputs"][0]["name"], "q\"x");
        assert_eq!(v["outputs"][0]["data"][0], "a\"b\n");
    }

    #[test]
    fn half_precision_is_always_binary() {
        let mut outs = vec![out("h", DataType::F16, vec![1], TensorData::Raw(Bytes::from_static(&[0, 0x3c])), false)];
        let (body, hl) = encode_response("m", "1", None, &mut outs);
        assert_eq!(&body[hl.unwrap()..], &[0, 0x3c]);
    }
}
