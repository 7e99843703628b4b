//! ndarray vs flex on representative PaliGemma-3B shapes (f32): the SigLIP MLP matmul, the Gemma
//! MLP matmul, a 256-token 16-head attention, and a one-token decode matmul. Prints medians and
//! GFLOP/s; the faster backend is the default (`crates/cli/Cargo.toml`).
//!
//! `cargo bench -p robovlm-cli --bench cpu_backends --features ndarray` (both backends compiled).

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::activation::softmax;

fn median_ms(iters: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..iters)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn matmul<B: Backend>(device: &B::Device, m: usize, k: usize, n: usize, iters: usize) -> (f64, f64) {
    let a = Tensor::<B, 2>::random([m, k], burn::tensor::Distribution::Default, device);
    let b = Tensor::<B, 2>::random([k, n], burn::tensor::Distribution::Default, device);
    let ms = median_ms(iters, || {
        let _ = a.clone().matmul(b.clone()).into_data();
    });
    (ms, 2.0 * (m * k * n) as f64 / ms / 1e6)
}

fn attention<B: Backend>(device: &B::Device, tokens: usize, heads: usize, head_dim: usize, iters: usize) -> (f64, f64) {
    let shape = [1, heads, tokens, head_dim];
    let q = Tensor::<B, 4>::random(shape, burn::tensor::Distribution::Default, device);
    let k = Tensor::<B, 4>::random(shape, burn::tensor::Distribution::Default, device);
    let v = Tensor::<B, 4>::random(shape, burn::tensor::Distribution::Default, device);
    let scale = (head_dim as f64).powf(-0.5);
    let ms = median_ms(iters, || {
        let scores = q.clone().matmul(k.clone().swap_dims(2, 3)).mul_scalar(scale);
        let _ = softmax(scores, 3).matmul(v.clone()).into_data();
    });
    (ms, 4.0 * (heads * tokens * tokens * head_dim) as f64 / ms / 1e6)
}

fn suite<B: Backend>(name: &str) {
    let d = B::Device::default();
    let rows = [
        ("[256,1152]x[1152,4304] SigLIP MLP", matmul::<B>(&d, 256, 1152, 4304, 9)),
        ("[280,2048]x[2048,16384] Gemma MLP", matmul::<B>(&d, 280, 2048, 16384, 5)),
        ("attention 256 tok, 16 heads x 72", attention::<B>(&d, 256, 16, 72, 15)),
        ("[1,2048]x[2048,16384] decode", matmul::<B>(&d, 1, 2048, 16384, 15)),
    ];
    for (shape, (ms, gflops)) in rows {
        println!("{name:<8} {shape:<38} {ms:>9.2} ms {gflops:>7.1} GFLOP/s");
    }
}

fn main() {
    #[cfg(feature = "ndarray")]
    suite::<burn::backend::NdArray<f32>>("ndarray");
    #[cfg(feature = "flex")]
    suite::<burn::backend::Flex<f32>>("flex");
}
