//! The engine alone, per bundled model and batch size, on the worker's
//! path: `check_inputs` → `prepare` → `run` → `outputs`.

mod common;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use warden::model::Scratch;

fn engine(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine");
    for model in common::load_models() {
        let max = model.meta.max_batch_size.max(1) as usize;
        let wanted: Vec<(usize, bool)> = (0..model.meta.outputs.len()).map(|i| (i, true)).collect();
        for batch in [1usize, 8, 32].into_iter().filter(|&b| b <= max) {
            let requests = warden::bench::random_requests(&model.meta, batch, 1).expect("inputs fit the model");
            let mut scratch = Scratch::default();
            let mut i = 0;
            g.throughput(Throughput::Elements(batch as u64));
            g.bench_function(BenchmarkId::new(&model.meta.name, batch), |b| {
                b.iter(|| {
                    let req = requests[i % requests.len()].clone();
                    i += 1;
                    model.check_inputs(&req).unwrap();
                    let values = model.prepare(req).unwrap();
                    let out = model.run(&mut scratch, batch, values).unwrap();
                    black_box(model.outputs(out, &wanted).unwrap())
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
