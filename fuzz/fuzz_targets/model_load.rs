//! Model loading from arbitrary bytes: tract's ONNX parser and optimiser,
//! the ONNX-ML operators and warden's own fact handling read files that an
//! operator may not have produced.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden::model::LoadedModel;
use warden::model::engine::LoadOptions;

use std::sync::atomic::{AtomicU64, Ordering};

static HOOK: std::sync::Once = std::sync::Once::new();
static CAUGHT: AtomicU64 = AtomicU64::new(0);

fuzz_target!(|data: &[u8]| {
    // libfuzzer-sys installs a panic hook that aborts, so even a panic
    // warden catches (loading turns a panic in tract into a parse error, as
    // in production) would end the run. Replace it with one that counts
    // them and prints the 1st, 2nd, 4th, 8th...: a panic that escapes
    // warden still reaches libfuzzer-sys's catch_unwind, which aborts and
    // reports the input.
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let n = CAUGHT.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                eprintln!("panic {n} while loading (a caught one is a parse error; an escaped one ends the run): {info}");
            }
        }))
    });
    // Small batch limit: one specialised plan per batch size is costly and
    // adds nothing here.
    let opts = LoadOptions { default_max_batch_size: 2, max_model_bytes: 1 << 20 };
    if let Ok(m) = LoadedModel::from_bytes("fuzz", 1, data, None, &opts) {
        let _ = m.warm_up();
    }
});
