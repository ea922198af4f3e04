//! Vision preprocessing on one core: encoded PNG (the simulator's 64x64 grey camera images,
//! `models/vision/simset`) to the model's normalised tensor, images per second. This is the
//! work the vision processor does per image besides inference.
//!
//! `cargo bench -p twinline-models --bench preprocess`

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use twinline_models::vision::{decode_grey, normalise_into, preprocess_into, INPUT_LEN};

fn images() -> Vec<Vec<u8>> {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("vision/simset");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("models/vision/simset")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| std::fs::read(p).expect("image"))
        .collect()
}

fn bench(c: &mut Criterion) {
    let imgs = images();
    assert!(!imgs.is_empty(), "no simulator images");
    let mut g = c.benchmark_group("vision_preprocess");
    g.throughput(Throughput::Elements(imgs.len() as u64));
    let mut out = vec![0f32; INPUT_LEN];
    g.bench_function("png_to_tensor", |b| {
        b.iter(|| {
            for img in &imgs {
                preprocess_into(black_box(img), &mut out).expect("decodes");
            }
            black_box(&out);
        })
    });
    g.bench_function("png_decode_only", |b| {
        b.iter(|| {
            for img in &imgs {
                black_box(decode_grey(black_box(img)).expect("decodes"));
            }
        })
    });
    let grey = decode_grey(&imgs[0]).expect("decodes");
    g.bench_function("normalise_only", |b| {
        b.iter(|| {
            for _ in &imgs {
                normalise_into(black_box(&grey), &mut out);
            }
            black_box(&out);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
