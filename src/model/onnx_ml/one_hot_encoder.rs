//! `OneHotEncoder`: each element becomes a row of `len(cats)` floats with a
//! 1 at its category. An unknown category gives a row of zeros, or an error
//! when `zeros` is 0.

use std::collections::HashMap;

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::{Kernel, OutShape, OutType, ints, strings};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Categories {
    Ints(HashMap<i64, usize>),
    Strings(HashMap<String, usize>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OneHotEncoder {
    cats: Categories,
    n: usize,
    unknown_is_zeros: bool,
}

pub(crate) fn build(_ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    super::op(OneHotEncoder::parse(node)?)
}

impl OneHotEncoder {
    fn parse(node: &NodeProto) -> TractResult<OneHotEncoder> {
        let (n, cats) =
            match (ints(node, "cats_int64s")?.filter(|v| !v.is_empty()), strings(node, "cats_strings")?.filter(|v| !v.is_empty())) {
                (Some(v), None) => (v.len(), Categories::Ints(v.into_iter().enumerate().map(|(i, c)| (c, i)).collect())),
                (None, Some(v)) => (v.len(), Categories::Strings(v.into_iter().enumerate().map(|(i, c)| (c, i)).collect())),
                _ => bail!("OneHotEncoder {}: exactly one of cats_int64s and cats_strings must be set", node.name),
            };
        Ok(OneHotEncoder { cats, n, unknown_is_zeros: node.get_attr_opt::<i64>("zeros")?.unwrap_or(1) != 0 })
    }
}

impl Kernel for OneHotEncoder {
    fn name(&self) -> &'static str {
        "OneHotEncoder"
    }

    fn outputs(&self) -> TVec<(OutType, OutShape)> {
        tvec![(OutType::Fixed(DatumType::F32), OutShape::InputAnd(self.n))]
    }

    fn check_input(&self, dt: DatumType, _features: Option<usize>) -> TractResult<()> {
        match self.cats {
            Categories::Strings(_) => ensure!(dt == DatumType::String, "OneHotEncoder with string categories takes strings, not {dt:?}"),
            Categories::Ints(_) => super::check_numeric(self.name(), dt, None, 0)?,
        }
        Ok(())
    }

    fn eval(&self, input: &Tensor) -> TractResult<TVec<Tensor>> {
        self.check_input(input.datum_type(), None)?;
        let slots: Vec<Option<usize>> = match &self.cats {
            Categories::Strings(m) => input.try_as_plain_ram()?.as_slice::<String>()?.iter().map(|s| m.get(s).copied()).collect(),
            Categories::Ints(m) => {
                // Floats match an integer category only when they are one.
                let x = input.cast_to::<f64>()?;
                x.try_as_plain_ram()?
                    .as_slice::<f64>()?
                    .iter()
                    .map(|&v| if v.fract() == 0.0 { m.get(&(v as i64)).copied() } else { None })
                    .collect()
            }
        };
        let mut out = vec![0f32; slots.len() * self.n];
        for (i, slot) in slots.iter().enumerate() {
            match slot {
                Some(j) => out[i * self.n + j] = 1.0,
                None if self.unknown_is_zeros => {}
                None => bail!("OneHotEncoder: element {i} is not one of the known categories"),
            }
        }
        let shape: Vec<usize> = input.shape().iter().copied().chain(std::iter::once(self.n)).collect();
        Ok(tvec!(tensor1(&out).into_shape(&shape)?))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    #[test]
    fn strings_and_ints() {
        let s = OneHotEncoder::parse(&node("OneHotEncoder", vec![a_strs("cats_strings", &["a", "b"])])).unwrap();
        let x = tensor2(&[["b".to_string()], ["zz".to_string()]]);
        assert_eq!(s.eval(&x).unwrap()[0], tensor3(&[[[0.0f32, 1.0]], [[0.0, 0.0]]]));
        let i = OneHotEncoder::parse(&node("OneHotEncoder", vec![a_ints("cats_int64s", &[3, 1, 2])])).unwrap();
        assert_eq!(i.eval(&tensor1(&[1i64, 2])).unwrap()[0], tensor2(&[[0.0f32, 1.0, 0.0], [0.0, 0.0, 1.0]]));
        assert_eq!(i.eval(&tensor1(&[1.5f32])).unwrap()[0], tensor2(&[[0.0f32, 0.0, 0.0]]));
    }

    #[test]
    fn unknown_is_an_error_without_zeros() {
        let s = OneHotEncoder::parse(&node("OneHotEncoder", vec![a_strs("cats_strings", &["a"]), a_int("zeros", 0)])).unwrap();
        assert!(s.eval(&tensor1(&["b".to_string()])).is_err());
        assert!(s.eval(&tensor1(&[1i64])).is_err(), "ints into a string encoder");
    }
}
