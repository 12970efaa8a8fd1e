//! `LabelEncoder` (ai.onnx.ml opsets 1 to 4). The flavour is told from the
//! attributes present, since tract does not pass the node's opset:
//!
//! - opset 1: `classes_strings`; a string becomes its index in the list
//!   (`default_int64` if absent) and an int64 becomes the string at that
//!   index (`default_string` if out of range), so the output type depends
//!   on the input's;
//! - opsets 2 and 3: `keys_*` → `values_*` lists (strings, int64s, floats);
//! - opset 4: the same, or `keys_tensor` / `values_tensor` /
//!   `default_tensor`, which also carry doubles (and int32, int16).
//!
//! Unknown keys give the default. Mixing flavours is a load error.

use std::collections::HashMap;

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::{NodeProto, TensorProto};
use tract_onnx::tract_hir::internal::*;

use super::{Kernel, OutShape, OutType, ints, strings};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    Int(i64),
    /// Bits of the value as f64 (f32 keys widen exactly), with every NaN
    /// made the same NaN and -0 made +0.
    Float(u64),
    Str(String),
}

fn float_key(v: f64) -> Key {
    Key::Float(if v.is_nan() { f64::NAN.to_bits() } else { (v + 0.0).to_bits() })
}

/// Values, widened (int64s, f64s), with the default; `LabelEncoder::Map`
/// narrows them back to the declared type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Values {
    Ints(Vec<i64>, i64),
    Floats(Vec<f64>, f64),
    Strings(Vec<String>, String),
}

impl Values {
    fn len(&self) -> usize {
        match self {
            Values::Ints(v, _) => v.len(),
            Values::Floats(v, _) => v.len(),
            Values::Strings(v, _) => v.len(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LabelEncoder {
    /// Opset 1.
    Classes { index: HashMap<String, i64>, classes: Vec<String>, default_int: i64, default_string: String },
    /// Opsets 2 to 4.
    Map { keys: HashMap<Key, usize>, key_type: DatumType, values: Values, value_type: DatumType },
}

pub(crate) fn build(ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    super::op(LabelEncoder::parse(Some(ctx), node).with_context(|| format!("LabelEncoder {}", node.name))?)
}

const KEY_ATTRS: [&str; 4] = ["keys_int64s", "keys_floats", "keys_strings", "keys_tensor"];
const VALUE_ATTRS: [&str; 4] = ["values_int64s", "values_floats", "values_strings", "values_tensor"];

/// Integer and float families: an input of the family matches its keys.
fn family(dt: DatumType) -> u8 {
    match dt {
        DatumType::I64 | DatumType::I32 | DatumType::I16 => 0,
        DatumType::F32 | DatumType::F64 => 1,
        DatumType::String => 2,
        _ => 3,
    }
}

fn load(ctx: Option<&ParsingContext>, node: &NodeProto, name: &str) -> TractResult<Tensor> {
    let proto = node.get_attr::<&TensorProto>(name)?;
    let ctx = ctx.with_context(|| format!("attribute {name} needs a parsing context"))?;
    let t = ctx.load_tensor(proto).with_context(|| format!("attribute {name}"))?;
    ensure!(
        family(t.datum_type()) < 3,
        "attribute {name} has type {:?}; string, int64, int32, int16, float or double expected",
        t.datum_type()
    );
    Ok(t)
}

/// A tensor's elements as keys, and its type.
fn tensor_keys(t: &Tensor) -> TractResult<(Vec<Key>, DatumType)> {
    let keys = match family(t.datum_type()) {
        0 => t.cast_to::<i64>()?.try_as_plain_ram()?.as_slice::<i64>()?.iter().map(|&v| Key::Int(v)).collect(),
        1 => t.cast_to::<f64>()?.try_as_plain_ram()?.as_slice::<f64>()?.iter().map(|&v| float_key(v)).collect(),
        _ => t.try_as_plain_ram()?.as_slice::<String>()?.iter().cloned().map(Key::Str).collect(),
    };
    Ok((keys, t.datum_type()))
}

/// A tensor's elements as values, with the default for that type.
fn tensor_values(t: &Tensor, default: Option<&Tensor>) -> TractResult<Values> {
    if let Some(d) = default {
        ensure!(d.len() == 1, "default_tensor must hold one element, not {}", d.len());
        ensure!(d.datum_type() == t.datum_type(), "default_tensor is {:?} but values_tensor is {:?}", d.datum_type(), t.datum_type());
    }
    Ok(match family(t.datum_type()) {
        0 => Values::Ints(
            t.cast_to::<i64>()?.try_as_plain_ram()?.as_slice::<i64>()?.to_vec(),
            default.map(|d| d.cast_to_scalar::<i64>()).transpose()?.unwrap_or(-1),
        ),
        1 => Values::Floats(
            t.cast_to::<f64>()?.try_as_plain_ram()?.as_slice::<f64>()?.to_vec(),
            default.map(|d| d.cast_to_scalar::<f64>()).transpose()?.unwrap_or(-0.0),
        ),
        _ => Values::Strings(
            t.try_as_plain_ram()?.as_slice::<String>()?.to_vec(),
            default
                .map(|d| Ok::<_, TractError>(d.try_as_plain_ram()?.as_slice::<String>()?[0].clone()))
                .transpose()?
                .unwrap_or_else(|| "_Unused".into()),
        ),
    })
}

impl LabelEncoder {
    fn parse(ctx: Option<&ParsingContext>, node: &NodeProto) -> TractResult<LabelEncoder> {
        let has = |name: &str| node.attribute.iter().any(|a| a.name == name);
        if has("classes_strings") {
            if let Some(other) = KEY_ATTRS.iter().chain(&VALUE_ATTRS).chain(&["default_float", "default_tensor"]).find(|a| has(a)) {
                bail!("classes_strings (opset 1) cannot be combined with {other} (opsets 2 to 4)");
            }
            let classes = strings(node, "classes_strings")?.unwrap_or_default();
            // Like a list's index(), a repeated string maps to its first position.
            let mut index = HashMap::with_capacity(classes.len());
            for (i, c) in classes.iter().enumerate() {
                index.entry(c.clone()).or_insert(i as i64);
            }
            return Ok(LabelEncoder::Classes {
                index,
                classes,
                default_int: node.get_attr_opt("default_int64")?.unwrap_or(-1),
                default_string: node.get_attr_opt::<String>("default_string")?.unwrap_or_else(|| "_Unused".into()),
            });
        }
        let one_of = |names: &[&'static str; 4]| -> TractResult<&'static str> {
            let present: Vec<&str> = names.iter().copied().filter(|a| has(a)).collect();
            match present.as_slice() {
                [one] => Ok(one),
                [] => bail!("one of {} must be set", names.join(", ")),
                _ => bail!("only one of {} may be set", present.join(", ")),
            }
        };
        let (keys, key_type) = match one_of(&KEY_ATTRS)? {
            "keys_int64s" => (ints(node, "keys_int64s")?.unwrap_or_default().into_iter().map(Key::Int).collect(), DatumType::I64),
            "keys_floats" => {
                let k = node.get_attr_opt_vec::<f32>("keys_floats")?.unwrap_or_default();
                (k.into_iter().map(|v| float_key(v.into())).collect(), DatumType::F32)
            }
            "keys_strings" => (strings(node, "keys_strings")?.unwrap_or_default().into_iter().map(Key::Str).collect(), DatumType::String),
            _ => tensor_keys(&load(ctx, node, "keys_tensor")?)?,
        };
        let values_attr = one_of(&VALUE_ATTRS)?;
        if values_attr != "values_tensor" && has("default_tensor") {
            bail!("default_tensor goes with values_tensor, not {values_attr}");
        }
        let (values, value_type) = match values_attr {
            "values_int64s" => (
                Values::Ints(ints(node, values_attr)?.unwrap_or_default(), node.get_attr_opt("default_int64")?.unwrap_or(-1)),
                DatumType::I64,
            ),
            "values_floats" => {
                let v = node.get_attr_opt_vec::<f32>(values_attr)?.unwrap_or_default();
                let d: f32 = node.get_attr_opt("default_float")?.unwrap_or(-0.0);
                (Values::Floats(v.into_iter().map(f64::from).collect(), d.into()), DatumType::F32)
            }
            "values_strings" => {
                let d = node.get_attr_opt::<String>("default_string")?.unwrap_or_else(|| "_Unused".into());
                (Values::Strings(strings(node, values_attr)?.unwrap_or_default(), d), DatumType::String)
            }
            _ => {
                let t = load(ctx, node, "values_tensor")?;
                let default = if has("default_tensor") { Some(load(ctx, node, "default_tensor")?) } else { None };
                (tensor_values(&t, default.as_ref())?, t.datum_type())
            }
        };
        ensure!(values.len() == keys.len(), "{} keys but {} values", keys.len(), values.len());
        // Like a dict built from pairs, a repeated key keeps its last value.
        let keys = keys.into_iter().enumerate().map(|(i, k)| (k, i)).collect();
        Ok(LabelEncoder::Map { keys, key_type, values, value_type })
    }

    /// Index of each input element among the keys.
    fn lookup(keys: &HashMap<Key, usize>, key_type: DatumType, input: &Tensor) -> TractResult<Vec<Option<usize>>> {
        Ok(match family(key_type) {
            0 => {
                let x = input.cast_to::<i64>()?;
                x.try_as_plain_ram()?.as_slice::<i64>()?.iter().map(|&v| keys.get(&Key::Int(v)).copied()).collect()
            }
            1 => {
                // Float keys match an input narrowed to float, as their own
                // values were; double keys match exactly.
                let x = if key_type == DatumType::F32 {
                    input.cast_to::<f32>()?.cast_to::<f64>()?.into_owned()
                } else {
                    input.cast_to::<f64>()?.into_owned()
                };
                x.try_as_plain_ram()?.as_slice::<f64>()?.iter().map(|&v| keys.get(&float_key(v)).copied()).collect()
            }
            _ => input.try_as_plain_ram()?.as_slice::<String>()?.iter().map(|s| keys.get(&Key::Str(s.clone())).copied()).collect(),
        })
    }
}

impl Kernel for LabelEncoder {
    fn name(&self) -> &'static str {
        "LabelEncoder"
    }

    fn outputs(&self) -> TVec<(OutType, OutShape)> {
        let ty = match self {
            LabelEncoder::Classes { .. } => OutType::StringsOrI64,
            LabelEncoder::Map { value_type, .. } => OutType::Fixed(*value_type),
        };
        tvec![(ty, OutShape::Input)]
    }

    fn check_input(&self, dt: DatumType, _features: Option<usize>) -> TractResult<()> {
        match self {
            LabelEncoder::Classes { .. } => {
                ensure!(
                    matches!(dt, DatumType::String | DatumType::I64),
                    "LabelEncoder with classes_strings takes string or int64 input, not {dt:?}"
                )
            }
            LabelEncoder::Map { key_type, .. } => {
                ensure!(family(dt) == family(*key_type), "LabelEncoder with {key_type:?} keys cannot take {dt:?} input")
            }
        }
        Ok(())
    }

    fn eval(&self, input: &Tensor) -> TractResult<TVec<Tensor>> {
        self.check_input(input.datum_type(), None)?;
        let out = match self {
            LabelEncoder::Classes { index, classes, default_int, default_string } => {
                if input.datum_type() == DatumType::String {
                    let x = input.try_as_plain_ram()?.as_slice::<String>()?;
                    tensor1(&x.iter().map(|s| index.get(s).copied().unwrap_or(*default_int)).collect::<Vec<i64>>())
                } else {
                    let x = input.try_as_plain_ram()?.as_slice::<i64>()?;
                    let pick = |&i: &i64| usize::try_from(i).ok().and_then(|i| classes.get(i)).unwrap_or(default_string).clone();
                    tensor1(&x.iter().map(pick).collect::<Vec<String>>())
                }
            }
            LabelEncoder::Map { keys, key_type, values, value_type } => {
                let found = Self::lookup(keys, *key_type, input)?;
                let out = match values {
                    Values::Ints(v, d) => tensor1(&found.iter().map(|f| f.map_or(*d, |i| v[i])).collect::<Vec<_>>()),
                    Values::Floats(v, d) => tensor1(&found.iter().map(|f| f.map_or(*d, |i| v[i])).collect::<Vec<_>>()),
                    Values::Strings(v, d) => {
                        tensor1(&found.iter().map(|f| f.map_or_else(|| d.clone(), |i| v[i].clone())).collect::<Vec<_>>())
                    }
                };
                out.cast_to_dt(*value_type)?.into_owned()
            }
        };
        Ok(tvec!(out.into_shape(input.shape())?))
    }
}

#[cfg(test)]
mod tests {
    use tract_onnx::pb::AttributeProto;
    use tract_onnx::pb::tensor_proto::DataType;

    use super::super::test_util::*;
    use super::*;

    fn parse(attrs: Vec<AttributeProto>) -> TractResult<LabelEncoder> {
        with_ctx(|ctx| LabelEncoder::parse(Some(ctx), &node("LabelEncoder", attrs)))
    }

    fn strs(v: &[&str]) -> Tensor {
        tensor1(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn strings_to_ints_with_default() {
        let e = parse(vec![a_strs("keys_strings", &["a", "b"]), a_ints("values_int64s", &[5, 6]), a_int("default_int64", 42)]).unwrap();
        let x = tensor2(&[["b".to_string(), "q".to_string()]]);
        assert_eq!(e.eval(&x).unwrap()[0], tensor2(&[[6i64, 42]]));
        assert!(e.eval(&tensor1(&[1i64])).is_err());
    }

    #[test]
    fn ints_to_strings_and_floats_to_floats() {
        let e = parse(vec![a_ints("keys_int64s", &[1, 2]), a_strs("values_strings", &["x", "y"])]).unwrap();
        assert_eq!(e.eval(&tensor1(&[2i64, 3])).unwrap()[0], strs(&["y", "_Unused"]));
        let f = parse(vec![a_floats("keys_floats", &[0.5, f32::NAN]), a_floats("values_floats", &[1.0, 2.0])]).unwrap();
        assert_eq!(f.eval(&tensor1(&[f32::NAN, 0.5, 7.0])).unwrap()[0], tensor1(&[2.0f32, 1.0, -0.0]));
        let tenth = parse(vec![a_floats("keys_floats", &[0.1]), a_floats("values_floats", &[1.0])]).unwrap();
        assert_eq!(tenth.eval(&tensor1(&[0.1f64])).unwrap()[0], tensor1(&[1.0f32]), "a double input meets float keys as a float");
    }

    #[test]
    fn opset_1_maps_strings_to_indices_and_back() {
        let e = parse(vec![a_strs("classes_strings", &["cat", "dog", "cat"]), a_int("default_int64", -7), a_string("default_string", "?")])
            .unwrap();
        // The first position of a repeated class wins, as list.index() does.
        assert_eq!(e.eval(&strs(&["dog", "cat", "eel"])).unwrap()[0], tensor1(&[1i64, 0, -7]));
        assert_eq!(
            e.eval(&tensor2(&[[2i64, 0], [3, -1]])).unwrap()[0],
            tensor2(&[["cat", "cat"], ["?", "?"]].map(|r| r.map(String::from)))
        );
        assert_eq!(e.outputs().as_slice(), [(OutType::StringsOrI64, OutShape::Input)]);
        assert!(e.eval(&tensor1(&[1.0f32])).is_err());
        // Spec defaults.
        let d = parse(vec![a_strs("classes_strings", &["a"])]).unwrap();
        assert_eq!(d.eval(&strs(&["z"])).unwrap()[0], tensor1(&[-1i64]));
        assert_eq!(d.eval(&tensor1(&[5i64])).unwrap()[0], strs(&["_Unused"]));
    }

    #[test]
    fn opset_4_tensors_carry_doubles_and_defaults() {
        let e = parse(vec![
            a_tensor("keys_tensor", DataType::Double, &[0.1, 0.2, f64::NAN]),
            a_tensor("values_tensor", DataType::Double, &[10.0, 20.0, 30.0]),
            a_tensor("default_tensor", DataType::Double, &[-5.0]),
        ])
        .unwrap();
        let out = e.eval(&tensor1(&[0.2f64, 0.3, f64::NAN])).unwrap().remove(0);
        assert_eq!(out, tensor1(&[20.0f64, -5.0, 30.0]));
        // 0.1 as a double key is not 0.1f32 widened: doubles match exactly.
        assert_eq!(e.eval(&tensor1(&[0.1f64])).unwrap()[0], tensor1(&[10.0f64]));

        let s = parse(vec![a_str_tensor("keys_tensor", &["x", "y"]), a_tensor("values_tensor", DataType::Int32, &[3.0, 4.0])]).unwrap();
        assert_eq!(s.eval(&strs(&["y", "z"])).unwrap()[0], tensor1(&[4i32, -1]));

        let i = parse(vec![
            a_tensor("keys_tensor", DataType::Int64, &[7.0]),
            a_str_tensor("values_tensor", &["seven"]),
            a_str_tensor("default_tensor", &["none"]),
        ])
        .unwrap();
        assert_eq!(i.eval(&tensor1(&[7i64, 8])).unwrap()[0], strs(&["seven", "none"]));
        // Tensor keys may be mixed with list values.
        let mixed = parse(vec![a_tensor("keys_tensor", DataType::Float, &[1.5]), a_ints("values_int64s", &[9])]).unwrap();
        assert_eq!(mixed.eval(&tensor1(&[1.5f32, 2.0])).unwrap()[0], tensor1(&[9i64, -1]));
    }

    #[test]
    fn bad_or_mixed_attributes_are_clear_load_errors() {
        let err = |attrs: Vec<AttributeProto>| format!("{:#}", parse(attrs).unwrap_err());
        assert!(err(vec![a_strs("classes_strings", &["a"]), a_ints("keys_int64s", &[1])]).contains("cannot be combined with keys_int64s"));
        assert!(err(vec![a_ints("keys_int64s", &[1]), a_ints("values_int64s", &[1, 2])]).contains("1 keys but 2 values"));
        assert!(err(vec![a_ints("values_int64s", &[1])]).contains("one of keys_int64s"));
        assert!(
            err(vec![a_ints("keys_int64s", &[1]), a_tensor("keys_tensor", DataType::Int64, &[1.0]), a_ints("values_int64s", &[1])])
                .contains("only one of keys_int64s, keys_tensor")
        );
        let wrong_default = vec![
            a_tensor("keys_tensor", DataType::Int64, &[1.0]),
            a_tensor("values_tensor", DataType::Double, &[1.0]),
            a_tensor("default_tensor", DataType::Float, &[0.0]),
        ];
        assert!(err(wrong_default).contains("default_tensor is F32 but values_tensor is F64"));
        let two_defaults = vec![
            a_tensor("keys_tensor", DataType::Int64, &[1.0]),
            a_tensor("values_tensor", DataType::Int64, &[1.0]),
            a_tensor("default_tensor", DataType::Int64, &[0.0, 1.0]),
        ];
        assert!(err(two_defaults).contains("one element"));
        let stray_default =
            vec![a_ints("keys_int64s", &[1]), a_ints("values_int64s", &[1]), a_tensor("default_tensor", DataType::Int64, &[0.0])];
        assert!(err(stray_default).contains("default_tensor goes with values_tensor"));
        assert!(err(vec![a_tensor("keys_tensor", DataType::Uint8, &[1.0]), a_ints("values_int64s", &[1])]).contains("U8"));
    }
}
