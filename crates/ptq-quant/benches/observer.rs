//! The observers' hot loops: updating a statistic with one tensor's values, and merging the
//! statistics of two parts of the samples.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ptq_quant::{MinMax, Observer};
use std::hint::black_box;

/// One activation of 1 Mi values (a 16×256×256 feature map), deterministic.
fn activation() -> Vec<f32> {
    (0..1 << 20).map(|i| ((i * 2_654_435_761u64 as usize) % 10_007) as f32 * 1e-3 - 5.0).collect()
}

fn observe(c: &mut Criterion) {
    let values = activation();
    let mut g = c.benchmark_group("min-max");
    g.throughput(Throughput::Elements(values.len() as u64));
    g.bench_function("observe 1 Mi f32", |b| {
        b.iter(|| {
            let mut m = MinMax::default();
            m.observe(black_box(&values));
            m
        })
    });
    g.finish();
}

fn merge(c: &mut Criterion) {
    // A model's worth of tensors (500) from two parts of the samples.
    let a: Vec<MinMax> = (0..500).map(|i| MinMax::of(&[i as f32, -(i as f32)])).collect();
    let b: Vec<MinMax> = (0..500).map(|i| MinMax::of(&[2.0 * i as f32, 1.0])).collect();
    c.bench_function("min-max merge 500 tensors", |bench| {
        bench.iter(|| {
            let mut acc = black_box(a.clone());
            for (x, y) in acc.iter_mut().zip(black_box(&b)) {
                x.merge(y);
            }
            acc
        })
    });
}

criterion_group!(benches, observe, merge);
criterion_main!(benches);
