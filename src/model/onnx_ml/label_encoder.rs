//! `LabelEncoder` (ai.onnx.ml opsets 2 and 3): maps each element through
//! `keys_*` → `values_*` (strings, int64s or floats), unknown keys giving
//! `default_*`. Opset 1's `classes_strings` form and opset 4's tensor
//! attributes are refused with a message.

use std::collections::HashMap;

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::{Kernel, OutShape, OutType, ints, strings};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Int(i64),
    /// Bits of the f32, with every NaN made the same NaN.
    Float(u32),
    Str(String),
}

fn float_key(v: f32) -> Key {
    Key::Float(if v.is_nan() { f32::NAN.to_bits() } else { (v + 0.0).to_bits() })
}

#[derive(Debug, Clone, PartialEq)]
enum Values {
    Ints(Vec<i64>, i64),
    Floats(Vec<f32>, f32),
    Strings(Vec<String>, String),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LabelEncoder {
    keys: HashMap<Key, usize>,
    key_type: DatumType,
    values: Values,
}

pub(crate) fn build(_ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    super::op(LabelEncoder::parse(node)?)
}

impl LabelEncoder {
    fn parse(node: &NodeProto) -> TractResult<LabelEncoder> {
        let name = &node.name;
        if node.get_attr_opt_vec::<String>("classes_strings")?.is_some() {
            bail!("LabelEncoder {name}: the opset-1 form (classes_strings) is not supported; export with ai.onnx.ml opset 2 or 3");
        }
        if node.attribute.iter().any(|a| a.name == "keys_tensor" || a.name == "values_tensor") {
            bail!(
                "LabelEncoder {name}: tensor keys and values (ai.onnx.ml opset 4) are not supported; export with ai.onnx.ml opset 2 or 3"
            );
        }
        let (keys, key_type): (Vec<Key>, DatumType) = if let Some(k) = ints(node, "keys_int64s")? {
            (k.into_iter().map(Key::Int).collect(), DatumType::I64)
        } else if let Some(k) = node.get_attr_opt_vec::<f32>("keys_floats")? {
            (k.into_iter().map(float_key).collect(), DatumType::F32)
        } else if let Some(k) = strings(node, "keys_strings")? {
            (k.into_iter().map(Key::Str).collect(), DatumType::String)
        } else {
            bail!("LabelEncoder {name}: one of keys_int64s, keys_floats, keys_strings must be set")
        };
        let values = if let Some(v) = ints(node, "values_int64s")? {
            Values::Ints(v, node.get_attr_opt("default_int64")?.unwrap_or(-1))
        } else if let Some(v) = node.get_attr_opt_vec::<f32>("values_floats")? {
            Values::Floats(v, node.get_attr_opt("default_float")?.unwrap_or(-0.0))
        } else if let Some(v) = strings(node, "values_strings")? {
            Values::Strings(v, node.get_attr_opt::<String>("default_string")?.unwrap_or_else(|| "_Unused".into()))
        } else {
            bail!("LabelEncoder {name}: one of values_int64s, values_floats, values_strings must be set")
        };
        let n_values = match &values {
            Values::Ints(v, _) => v.len(),
            Values::Floats(v, _) => v.len(),
            Values::Strings(v, _) => v.len(),
        };
        ensure!(n_values == keys.len(), "LabelEncoder {name}: {} keys but {n_values} values", keys.len());
        // Like a dict built from pairs, a repeated key keeps its last value.
        let keys = keys.into_iter().enumerate().map(|(i, k)| (k, i)).collect();
        Ok(LabelEncoder { keys, key_type, values })
    }
}

impl Kernel for LabelEncoder {
    fn name(&self) -> &'static str {
        "LabelEncoder"
    }

    fn outputs(&self) -> Vec<(OutType, OutShape)> {
        let dt = match self.values {
            Values::Ints(..) => DatumType::I64,
            Values::Floats(..) => DatumType::F32,
            Values::Strings(..) => DatumType::String,
        };
        vec![(OutType::Fixed(dt), OutShape::Input)]
    }

    fn check_input(&self, dt: DatumType, _features: Option<usize>) -> TractResult<()> {
        let ok = match self.key_type {
            DatumType::I64 => matches!(dt, DatumType::I64 | DatumType::I32),
            DatumType::F32 => matches!(dt, DatumType::F32 | DatumType::F64),
            _ => dt == DatumType::String,
        };
        ensure!(ok, "LabelEncoder with {:?} keys cannot take {dt:?} input", self.key_type);
        Ok(())
    }

    fn eval(&self, input: &Tensor) -> TractResult<TVec<Tensor>> {
        self.check_input(input.datum_type(), None)?;
        let found: Vec<Option<usize>> = match self.key_type {
            DatumType::I64 => {
                let x = input.cast_to::<i64>()?;
                x.try_as_plain_ram()?.as_slice::<i64>()?.iter().map(|&v| self.keys.get(&Key::Int(v)).copied()).collect()
            }
            DatumType::F32 => {
                let x = input.cast_to::<f32>()?;
                x.try_as_plain_ram()?.as_slice::<f32>()?.iter().map(|&v| self.keys.get(&float_key(v)).copied()).collect()
            }
            _ => input.try_as_plain_ram()?.as_slice::<String>()?.iter().map(|s| self.keys.get(&Key::Str(s.clone())).copied()).collect(),
        };
        let out = match &self.values {
            Values::Ints(v, d) => tensor1(&found.iter().map(|f| f.map_or(*d, |i| v[i])).collect::<Vec<_>>()),
            Values::Floats(v, d) => tensor1(&found.iter().map(|f| f.map_or(*d, |i| v[i])).collect::<Vec<_>>()),
            Values::Strings(v, d) => tensor1(&found.iter().map(|f| f.map_or_else(|| d.clone(), |i| v[i].clone())).collect::<Vec<_>>()),
        };
        Ok(tvec!(out.into_shape(input.shape())?))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    #[test]
    fn strings_to_ints_with_default() {
        let e = LabelEncoder::parse(&node(
            "LabelEncoder",
            vec![a_strs("keys_strings", &["a", "b"]), a_ints("values_int64s", &[5, 6]), a_int("default_int64", 42)],
        ))
        .unwrap();
        let x = tensor2(&[["b".to_string(), "q".to_string()]]);
        assert_eq!(e.eval(&x).unwrap()[0], tensor2(&[[6i64, 42]]));
        assert!(e.eval(&tensor1(&[1i64])).is_err());
    }

    #[test]
    fn ints_to_strings_and_floats_to_floats() {
        let e = LabelEncoder::parse(&node("LabelEncoder", vec![a_ints("keys_int64s", &[1, 2]), a_strs("values_strings", &["x", "y"])]))
            .unwrap();
        assert_eq!(e.eval(&tensor1(&[2i64, 3])).unwrap()[0], tensor1(&["y".to_string(), "_Unused".to_string()]));
        let f = LabelEncoder::parse(&node(
            "LabelEncoder",
            vec![a_floats("keys_floats", &[0.5, f32::NAN]), a_floats("values_floats", &[1.0, 2.0])],
        ))
        .unwrap();
        assert_eq!(f.eval(&tensor1(&[f32::NAN, 0.5, 7.0])).unwrap()[0], tensor1(&[2.0f32, 1.0, -0.0]));
    }

    #[test]
    fn unsupported_forms_say_what_to_do() {
        let e = LabelEncoder::parse(&node("LabelEncoder", vec![a_strs("classes_strings", &["a"])])).unwrap_err();
        assert!(format!("{e}").contains("opset 2 or 3"), "{e}");
        assert!(LabelEncoder::parse(&node("LabelEncoder", vec![a_ints("keys_int64s", &[1]), a_ints("values_int64s", &[1, 2])])).is_err());
    }
}
