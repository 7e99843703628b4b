//! bf16 GEMM / GEMV on PaliGemma-3B-224's shapes against the machine's measured peak and
//! against Flex's f32 matmul (what the models run today) on the same shapes.
//!
//! `cargo bench -p robovlm-kernels --bench gemm` (add `-- <filter>` for one, e.g. `-- gemv`).
//! Criterion's throughput is FLOP/s for the GEMMs ("elem" = FLOP) and bytes of weights read
//! per second for the GEMVs (`m = 1`: a decode step is memory-bound by design).

use std::hint::black_box;

use burn::tensor::{Distribution, Tensor};
use burn_flex::Flex;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use robovlm_kernels::{CpuFeatures, Isa, PackedBf16, PeakKind, matmul, peak_gflops};

/// (name, m, k, n): 256 image tokens through SigLIP So400m (width 1152, MLP 4304), a 272-token
/// prompt through Gemma-2B (width 2048, MLP 16384, one KV head of 256), then one decode row.
const SHAPES: &[(&str, usize, usize, usize)] = &[
    ("siglip_attn_proj_256x1152x1152", 256, 1152, 1152),
    ("siglip_fc1_256x1152x4304", 256, 1152, 4304),
    ("siglip_fc2_256x4304x1152", 256, 4304, 1152),
    ("gemma_q_272x2048x2048", 272, 2048, 2048),
    ("gemma_kv_272x2048x256", 272, 2048, 256),
    ("gemma_gate_272x2048x16384", 272, 2048, 16384),
    ("gemma_down_272x16384x2048", 272, 16384, 2048),
    ("gemv_gate_1x2048x16384", 1, 2048, 16384),
    ("gemv_down_1x16384x2048", 1, 16384, 2048),
];

fn values(len: usize) -> Vec<f32> {
    (0..len).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.05).collect()
}

fn gemm(c: &mut Criterion) {
    let threads = rayon::current_num_threads();
    println!("CPU: {}", CpuFeatures::get().summary());
    println!("kernel: {:?}, {threads} threads", Isa::best());
    for kind in [PeakKind::AmxBf16, PeakKind::Bf16Dot, PeakKind::F32Fma] {
        match peak_gflops(kind, threads, 500) {
            Some(peak) => println!("measured peak {kind:?}: {peak:.0} GFLOP/s ({threads} threads, registers only)"),
            None => println!("measured peak {kind:?}: not available on this CPU"),
        }
    }
    let device = Default::default();
    let mut g = c.benchmark_group("gemm");
    g.sample_size(10).warm_up_time(std::time::Duration::from_secs(1));
    g.measurement_time(std::time::Duration::from_secs(3));
    for &(name, m, k, n) in SHAPES {
        let lhs = values(m * k);
        let w = values(k * n);
        let packed = PackedBf16::from_kn(&w, k, n).unwrap();
        let mut out = vec![0.0; m * n];
        g.throughput(if m == 1 {
            Throughput::Bytes(packed.bytes() as u64)
        } else {
            Throughput::Elements((2 * m * k * n) as u64)
        });
        g.bench_function(format!("bf16/{name}"), |b| b.iter(|| matmul(black_box(&lhs), m, &packed, &mut out).unwrap()));
        // Flex f32 reads 4 bytes per weight: its GEMV throughput is reported in the same unit
        // (bytes of weights read), so the two are comparable by time, not by this number.
        g.throughput(if m == 1 {
            Throughput::Bytes((k * n * 4) as u64)
        } else {
            Throughput::Elements((2 * m * k * n) as u64)
        });
        let x: Tensor<Flex, 2> = Tensor::random([m, k], Distribution::Normal(0.0, 1.0), &device);
        let wt: Tensor<Flex, 2> = Tensor::random([k, n], Distribution::Normal(0.0, 1.0), &device);
        g.bench_function(format!("flex_f32/{name}"), |b| b.iter(|| black_box(x.clone().matmul(wt.clone()))));
    }
    g.finish();
}

criterion_group!(benches, gemm);
criterion_main!(benches);
