//! Tree ensembles through warden's engine (parse, optimise, run with a
//! reused plan state), at batch 1 and 32, on models made by the
//! scikit-learn zoo:
//!
//!     tests/sklearn_zoo/run.sh --keep target/sklearn-zoo
//!     .venv/bin/python benches/tree_ensemble_v5.py target/sklearn-zoo
//!     cargo bench --bench trees
//!     .venv/bin/python tests/sklearn_zoo/bench_ort.py target/sklearn-zoo
//!
//! The last command times ONNX Runtime (one thread) on the same files and
//! rows, for the side-by-side comparison. `WARDEN_ZOO_DIR` overrides the
//! model directory. The second command writes the diabetes forest again as
//! one `TreeEnsemble` (ai.onnx.ml opset 5), which skl2onnx does not emit, so
//! the two encodings of the same trees are timed side by side.

use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use tract_onnx::prelude::*;
use warden::model::engine::{LoadOptions, LoadedModel, Scratch};

/// (zoo model, features, operator it exercises)
const MODELS: [(&str, usize, &str); 3] = [
    ("random_forest_iris", 4, "TreeEnsembleClassifier"),
    ("random_forest_reg_diabetes", 10, "TreeEnsembleRegressor"),
    ("random_forest_reg_diabetes_v5", 10, "TreeEnsemble"),
];

fn zoo_dir() -> PathBuf {
    std::env::var_os("WARDEN_ZOO_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/sklearn-zoo"))
}

/// Deterministic rows in the data sets' ranges (iris: 0..8 cm; diabetes:
/// standardised, about -0.1..0.1), so the walks reach varied leaves.
fn rows(batch: usize, features: usize, scale: f32) -> Tensor {
    let mut state = 0x2545_f491_u32;
    let v: Vec<f32> = (0..batch * features)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state % 10_000) as f32 / 10_000.0 * scale
        })
        .collect();
    tract_ndarray::Array2::from_shape_vec((batch, features), v).expect("shape matches").into_tensor()
}

fn trees(c: &mut Criterion) {
    for (name, features, op) in MODELS {
        let path = zoo_dir().join(name).join("1").join("model.onnx");
        let bytes = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; generate the zoo first: tests/sklearn_zoo/run.sh --keep target/sklearn-zoo, \
                 then .venv/bin/python benches/tree_ensemble_v5.py target/sklearn-zoo",
                path.display()
            )
        });
        let model = LoadedModel::from_bytes(name, 1, &bytes, None, &LoadOptions::default()).expect("zoo model loads");
        let scale = if features == 4 { 8.0 } else { 0.2 };
        let mut group = c.benchmark_group(op);
        for batch in [1usize, 32] {
            let input = rows(batch, features, scale);
            let mut scratch = Scratch::default();
            group.bench_function(format!("{name}/batch{batch}"), |b| {
                b.iter(|| model.run(&mut scratch, batch, tvec!(input.clone().into_tvalue())).expect("runs"))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, trees);
criterion_main!(benches);
