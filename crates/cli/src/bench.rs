//! Benchmarks of the paths users run, at full PaliGemma-3B width: image encode, one
//! RoboPaligemma control step, prompt prefill and greedy decode. `robovlm bench` runs [`run`];
//! `tools/bench_reference.py` measures the same things in PyTorch + transformers. A harness, not
//! library API: it lives with the binary.
//!
//! Method (both sides): `warmup` untimed runs, then the median of `iters` timed runs. Every
//! timed run ends when its result is on the host (or the device is synced), so lazy GPU
//! backends are timed honestly.

use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use burn::prelude::*;
use burn::tensor::Distribution;
use robovlm_core::action_heads::{HeadConfig, HeadKind, HeadState};
use robovlm_core::gemma::{GemmaConfig, GenerationConfig};
use robovlm_core::paligemma::{ImageEncoder, PaliGemma, PromptBatch};
use robovlm_core::projector::ProjectorConfig;
use robovlm_core::robovlms::{VlmOutputs, forward_vlm_ids};
use robovlm_core::siglip::VisionConfig;

/// What to build and how long to measure.
#[derive(Debug, Clone)]
pub struct BenchSpec {
    /// Vision tower (depth possibly reduced).
    pub vision: VisionConfig,
    /// Gemma decoder (depth possibly reduced).
    pub text: GemmaConfig,
    /// Projector output width (the text hidden size for PaliGemma).
    pub projection_dim: usize,
    /// Instruction / prompt text tokens after the image tokens.
    pub instruction_tokens: usize,
    /// Tokens decoded after the prefill for `decode_tokens_per_s`.
    pub decode_tokens: usize,
    /// Timed runs (median reported); 0 measures only loading.
    pub iters: usize,
    /// Untimed runs first (at least one is always made).
    pub warmup: usize,
    /// The control step's head: RoboVLMs LSTM, 4 layers, hidden 1024, window 8, history "post".
    pub head: HeadConfig,
}

impl BenchSpec {
    /// `paligemma-3b-224`: SigLIP-So400m/14 at 224 px (256 image tokens) and Gemma-2B
    /// (2048 wide, 8 heads, 1 KV head, head_dim 256, vocabulary 257216), depths reducible.
    pub fn paligemma_3b_224(vision_layers: Option<usize>, text_layers: Option<usize>) -> Self {
        Self::preset(GemmaConfig::paligemma_3b(), vision_layers, text_layers)
    }

    /// `paligemma2-3b-224`: the same SigLIP and Gemma-2-2B (2304 wide, 26 layers, 8 heads,
    /// 4 KV heads, head_dim 256, intermediate 9216, window 4096, soft-caps 50/30), depths
    /// reducible.
    pub fn paligemma2_3b_224(vision_layers: Option<usize>, text_layers: Option<usize>) -> Self {
        Self::preset(GemmaConfig::paligemma2_3b(), vision_layers, text_layers)
    }

    fn preset(mut text: GemmaConfig, vision_layers: Option<usize>, text_layers: Option<usize>) -> Self {
        let mut vision = VisionConfig::paligemma_224();
        if let Some(n) = vision_layers {
            vision.num_hidden_layers = n;
        }
        if let Some(n) = text_layers {
            text.num_hidden_layers = n;
        }
        let projection_dim = text.hidden_size;
        Self::for_model(vision, text, projection_dim)
    }

    /// A spec for given architectures (e.g. a loaded model's), with the default run settings.
    pub fn for_model(vision: VisionConfig, text: GemmaConfig, projection_dim: usize) -> Self {
        let head = HeadConfig::new(HeadKind::Lstm, text.hidden_size, 1024, 1, 8);
        Self { vision, text, projection_dim, instruction_tokens: 16, decode_tokens: 32, iters: 5, warmup: 1, head }
    }
}

/// Medians in milliseconds (`None`: not measured). Field names are the `--json` keys.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BenchReport {
    /// Pixel values `[1, 3, 224, 224]` → image features `[1, 256, hidden]`.
    pub image_encode_ms: Option<f64>,
    /// One RoboPaligemma step with the history window full: pixels + instruction ids → the
    /// 7-DoF chunk on the host.
    pub control_step_ms: Option<f64>,
    /// 256 image tokens + P text tokens → first token (logits of the last position only).
    pub prefill_ms: Option<f64>,
    /// Greedy decode with the KV cache, after the prefill.
    pub decode_tokens_per_s: Option<f64>,
    /// Loading a model directory (`--model` only).
    pub load_ms: Option<f64>,
    /// Peak resident set size of the process so far (`VmHWM`), in MiB.
    pub peak_rss_mb: Option<f64>,
}

/// Peak resident set size of this process in MiB (Linux `VmHWM`); `None` elsewhere.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// A PaliGemma with random weights at the spec's shapes, built on `device`, packed as a loaded
/// model is ([`robovlm_ops::pack_weights`]) so that memory is measured as users get it.
pub fn random_paligemma<B: Backend>(spec: &BenchSpec, device: &B::Device) -> PaliGemma<B> {
    robovlm_ops::pack_weights(PaliGemma {
        image: ImageEncoder {
            vision: spec.vision.init::<B>(device),
            projector: ProjectorConfig::new(spec.vision.hidden_size, spec.projection_dim).init::<B>(device),
        },
        language: spec.text.init::<B>(device),
    })
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// Runs `f` `warmup` times (at least once: Burn initialises random parameters lazily, on first
/// use, and that must not be timed), then times it `iters` times; median in ms.
fn time_median(warmup: usize, iters: usize, mut f: impl FnMut() -> Result<()>) -> Result<Option<f64>> {
    for _ in 0..warmup.max(1) {
        f()?;
    }
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median(times))
}

fn sync<B: Backend>(device: &B::Device) -> Result<()> {
    B::sync(device).map_err(|e| anyhow!("device error: {e:?}"))
}

/// Deterministic token ids in `[2, vocab)` (avoiding pad 0 and eos 1).
fn ids(n: usize, vocab: usize, salt: usize) -> Vec<u32> {
    (0..n).map(|i| (2 + (i * 7919 + salt * 104_729) % (vocab.min(200_000) - 2)) as u32).collect()
}

/// Measures every timing of [`BenchReport`] on `model` (built by [`random_paligemma`] or loaded).
/// `load_ms` and `peak_rss_mb` are left to the caller.
pub fn run<B: Backend>(model: &PaliGemma<B>, spec: &BenchSpec, device: &B::Device) -> Result<BenchReport> {
    let mut report = BenchReport::default();
    if spec.iters == 0 {
        return Ok(report);
    }
    let size = spec.vision.image_size;
    let divisor = spec.text.hidden_size as f64;
    // One preprocessed frame, drawn once: drawing random pixels (single-threaded in Burn, ~1 ms)
    // is not the work measured (tools/bench_reference.py does the same).
    let frame = Tensor::<B, 4>::random([1, 3, size, size], Distribution::Uniform(-1.0, 1.0), device);
    let pixels = || frame.clone();

    report.image_encode_ms = time_median(spec.warmup, spec.iters, || {
        let features = model.image.forward(pixels(), divisor);
        drop(features);
        sync::<B>(device)
    })?;

    // Control step: the policy's own VLM path and head, history window already full, so every
    // step re-runs the LSTM over the window as RoboVLMs' "post" rule does.
    let vocab = spec.text.vocab_size;
    let l = spec.instruction_tokens.max(2);
    let text = PromptBatch {
        batch: 1,
        seq: l,
        input_ids: ids(l, vocab, 1),
        attention_mask: vec![1; l],
        token_type_ids: None,
        labels: None,
    };
    let mut head_spec = spec.head.clone();
    head_spec.in_features = spec.text.hidden_size;
    let head = head_spec.init::<B>(device);
    let action_token = Tensor::<B, 1>::random([spec.text.hidden_size], Distribution::Normal(0.0, 1.0), device);
    let mut state = HeadState::new();
    let d = spec.text.hidden_size;
    for _ in 0..=head_spec.window_size {
        let filler = Tensor::<B, 3>::random([1, 1, d], Distribution::Normal(0.0, 1.0), device);
        drop(head.step(filler, &mut state));
    }
    report.control_step_ms = time_median(spec.warmup, spec.iters, || {
        let vlm = forward_vlm_ids(model, &action_token, divisor, pixels(), &text, VlmOutputs::default(), device);
        let out = head.step(vlm.action_hidden, &mut state);
        let arm = out.arm.into_data();
        let gripper = out.gripper.into_data();
        if arm.num_elements() == 0 || gripper.num_elements() == 0 {
            bail!("empty action");
        }
        Ok(())
    })?;

    // Prefill and decode: one prompt of `<image>` tokens + text, greedy, no eos stop.
    let n_image = spec.vision.num_patches();
    let seq = n_image + spec.instruction_tokens;
    let image_token = 257_152u32.min(vocab as u32 - 1);
    let mut prompt_ids = vec![image_token; n_image];
    prompt_ids.extend(ids(spec.instruction_tokens, vocab, 2).into_iter().map(|i| if i == image_token { 2 } else { i }));
    let mask = vec![1u32; seq];
    // Image features are computed once: prefill is the language model's prompt pass (merge,
    // layers, last-position logits, argmax), as in the reference script.
    let features = model.image.forward(pixels(), divisor);
    let mut generator = model.generator();
    let mut generate = |tokens: usize| -> Result<usize> {
        let embeds = model.merge_embeddings(&prompt_ids, 1, image_token, Some(features.clone()), device)?;
        let config = GenerationConfig {
            max_new_tokens: tokens,
            sampling: None,
            eos_token: None,
            pad_token: 0,
            keep_logits: false,
            ..Default::default()
        };
        Ok(generator.generate(embeds, &mask, &config)?.new_ids[0].len())
    };
    let first = time_median(spec.warmup, spec.iters, || generate(1).map(drop))?;
    report.prefill_ms = first;
    if spec.decode_tokens > 0 {
        let full = time_median(spec.warmup, spec.iters, || {
            let n = generate(spec.decode_tokens + 1)?;
            if n != spec.decode_tokens + 1 {
                bail!("generated {n} tokens, expected {}", spec.decode_tokens + 1);
            }
            Ok(())
        })?;
        if let (Some(full), Some(first)) = (full, first) {
            report.decode_tokens_per_s = Some(spec.decode_tokens as f64 / ((full - first).max(1e-6) / 1e3));
        }
    }
    Ok(report)
}
