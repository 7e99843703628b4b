//! Criterion benches of the hot kernels at PaliGemma-3B width, so regressions show up:
//! Gemma attention (272-token prefill, 8 heads / 1 KV head / head_dim 256), Gemma MLP (prefill
//! and one decode row), RMSNorm, SigLIP MLP (256 tokens), the LSTM head's control step (4 layers ×
//! 1024, window 8 full) and the decode-step tied logits (vocabulary 257216).
//!
//! `cargo bench -p robovlm-core --bench kernels` (add `-- <filter>` for one).
//! End-to-end numbers against PyTorch come from `cargo xtask bench`.

use std::hint::black_box;

use action_heads::{HeadConfig, HeadKind, HeadState};
use burn::prelude::*;
use burn::tensor::Distribution;
use criterion::{Criterion, criterion_group, criterion_main};
use gemma::{AttentionMask, GemmaConfig, Rope};
use siglip::VisionConfig;

type B = burn::backend::Flex<f32>;

fn random<Bk: Backend, const D: usize>(shape: [usize; D], device: &Bk::Device) -> Tensor<Bk, D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

fn kernels(c: &mut Criterion) {
    let device = Default::default();
    let mut text = GemmaConfig::paligemma_3b();
    text.num_hidden_layers = 1;
    text.vocab_size = 1024; // the layer does not depend on it; keeps memory small
    let decoder = text.init::<B>(&device);
    let layer = &decoder.layers[0];
    let seq = 272;
    let x: Tensor<B, 3> = random([1, seq, text.hidden_size], &device);
    let row = random([1, 1, text.hidden_size], &device);
    let positions: Vec<i64> = (0..seq as i64).collect();
    let rope = Rope::new(text.head_dim, text.rope_theta).tables::<B>(&positions, 1, &device);
    let bias = AttentionMask::prefix(&vec![1; seq], 1).to_bias::<B>(&device);

    let mut g = c.benchmark_group("paligemma-3b");
    g.sample_size(10);
    g.bench_function("gemma_attention_prefill_272", |b| {
        b.iter(|| black_box(layer.self_attn.forward(x.clone(), &rope, Some(&bias), None, None).into_data()))
    });
    g.bench_function("gemma_mlp_prefill_272", |b| b.iter(|| black_box(layer.mlp.forward(x.clone()).into_data())));
    g.bench_function("gemma_mlp_decode_row", |b| b.iter(|| black_box(layer.mlp.forward(row.clone()).into_data())));
    g.bench_function("gemma_rmsnorm_272", |b| {
        b.iter(|| black_box(layer.input_layernorm.forward(x.clone()).into_data()))
    });

    let mut vision = VisionConfig::paligemma_224();
    vision.num_hidden_layers = 1;
    let tower = vision.init::<B>(&device);
    let patches = random([1, vision.num_patches(), vision.hidden_size], &device);
    g.bench_function("siglip_mlp_256", |b| {
        b.iter(|| black_box(tower.encoder.layers[0].mlp.forward(patches.clone()).into_data()))
    });

    let head = HeadConfig::new(HeadKind::Lstm, text.hidden_size, 1024, 1, 8).init::<B>(&device);
    let mut state = HeadState::new();
    for _ in 0..=8 {
        drop(head.step(random([1, 1, text.hidden_size], &device), &mut state));
    }
    let token = random([1, 1, text.hidden_size], &device);
    g.bench_function("lstm_head_step_window8", |b| {
        b.iter(|| black_box(head.step(token.clone(), &mut state).arm.into_data()))
    });

    // The tied LM head alone: a decoder without layers at the full vocabulary.
    let mut logits_only = GemmaConfig::paligemma_3b();
    logits_only.num_hidden_layers = 0;
    let lm = logits_only.init::<B>(&device);
    let hidden = random([1, 1, text.hidden_size], &device);
    g.bench_function("tied_logits_decode_row", |b| b.iter(|| black_box(lm.logits(hidden.clone()).into_data())));
    g.finish();
}

criterion_group!(benches, kernels);
criterion_main!(benches);
