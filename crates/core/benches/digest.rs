//! sha256 throughput of the streaming `Verifier`, in the chunk size the transports use.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ferry_core::digest::{Digest, Verifier};

fn verifier(c: &mut Criterion) {
    let data = vec![0x5au8; 64 * 1024 * 1024];
    let digest = Digest::sha256(&data);
    let mut group = c.benchmark_group("verifier");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.sample_size(10);
    group.bench_function("sha256 64 MiB in 64 KiB chunks", |b| {
        b.iter(|| {
            let mut v = Verifier::new(digest.clone(), data.len() as u64);
            for chunk in data.chunks(64 * 1024) {
                v.update(chunk).unwrap();
            }
            v.finish().unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, verifier);
criterion_main!(benches);
