use half::bf16;
use robovlm_kernels::{PackedBf16, PeakKind, matmul_bf16, peak_gflops};
use std::time::Instant;

const SHAPES: &[(&str, usize, usize, usize)] = &[
    ("siglip_qkvo", 256, 1152, 1152),
    ("siglip_fc1", 256, 1152, 4304),
    ("siglip_fc2", 256, 4304, 1152),
    ("gemma_q", 272, 2048, 2048),
    ("gemma_kv", 272, 2048, 256),
    ("gemma_gate", 272, 2048, 16384),
    ("gemma_down", 272, 16384, 2048),
];

fn main() {
    let threads = rayon::current_num_threads();
    let peak = peak_gflops(PeakKind::Bf16Dot, threads, 500).unwrap_or(f64::NAN);
    println!("peak {peak:.0}");
    for &(name, m, k, n) in SHAPES {
        let lhs: Vec<bf16> =
            (0..m * k).map(|i| bf16::from_f32(((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.05)).collect();
        let w: Vec<f32> = (0..k * n).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.05).collect();
        let packed = PackedBf16::from_kn(&w, k, n).unwrap();
        let bias: Vec<f32> = vec![0.1; n];
        let mut out = vec![bf16::ZERO; m * n];
        for _ in 0..3 {
            matmul_bf16(&lhs, m, &packed, Some(&bias), &mut out).unwrap();
        }
        let iters = (20e9 / (2.0 * (m * k * n) as f64)).max(5.0) as usize;
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t = Instant::now();
            for _ in 0..iters {
                matmul_bf16(&lhs, m, &packed, Some(&bias), &mut out).unwrap();
            }
            best = best.min(t.elapsed().as_secs_f64() / iters as f64);
        }
        let gf = 2.0 * (m * k * n) as f64 / best / 1e9;
        println!("{name:12} {:8.3} ms {gf:7.0} GF/s {:5.1}%", best * 1e3, 100.0 * gf / peak);
    }
}
