//! The decoder alone against transformers: `paligemma_tiny`'s (Gemma 1) and `paligemma2_tiny`'s
//! (Gemma 2: soft-caps, sliding window, four norms, HybridCache generation) recorded input
//! embeddings in, their recorded hidden states, logits and greedy generation out (fixtures
//! README §3.6-3.7, §7).

use burn::prelude::*;
use gemma::{AttentionMask, DecoderInput, GemmaConfig, GenerationConfig, Generator, SlidingCache};
use robovlm_test_utils::{TestBackend, assert_close, fixtures_dir, reference};
use robovlm_weights::Checkpoint;

fn host<const D: usize>(t: Tensor<TestBackend, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().into_vec::<f32>().unwrap()
}

#[test]
fn reproduces_paligemma_tiny_text_outputs_and_generation() {
    check("paligemma_tiny", &["p0", "p1"], &["p0", "p1"]);
}

#[test]
fn reproduces_paligemma2_tiny_text_outputs_and_generation() {
    check("paligemma2_tiny", &["p0", "p1", "p2"], &["p0", "p1"]);
}

fn check(case: &str, prompts: &[&str], generated: &[&str]) {
    let dir = fixtures_dir().join(case).join("model");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let device = Default::default();
    let mut decoder = GemmaConfig::from_hf_value(&config["text_config"]).unwrap().init::<TestBackend>(&device);
    decoder.load_weights(&Checkpoint::discover(&dir).unwrap(), &[("language_model.model.", "")]).unwrap();
    for p in prompts {
        let (shape, embeds) = reference(case, &format!("{p}.inputs_embeds"));
        let [batch, seq, hidden]: [usize; 3] = shape.try_into().unwrap();
        let embeds = Tensor::<TestBackend, 3>::from_data(TensorData::new(embeds, [batch, seq, hidden]), &device);
        // An unpadded PaliGemma prompt: positions 1..=seq, every token attends every token.
        let positions: Vec<i64> = (1..=seq as i64).collect();
        let mask = vec![1u32; seq];
        let out = decoder.forward(DecoderInput {
            embeds: embeds.clone(),
            positions: &positions,
            mask: Some(&AttentionMask::prefix(&mask, 1)),
            caches: None,
            keep_hidden_states: true,
            sliding_cache: SlidingCache::default(),
            outputs: None,
        });
        let states: Vec<f32> = out.hidden_states.into_iter().flat_map(host).collect();
        assert_close(
            &format!("{p}.text_hidden_states"),
            &states,
            &reference(case, &format!("{p}.text_hidden_states")).1,
        );
        let logits = host(decoder.logits(out.hidden));
        assert_close(&format!("{p}.logits"), &logits, &reference(case, &format!("{p}.logits")).1);

        if !generated.contains(p) {
            continue;
        }
        let (_, want) = reference(case, &format!("{p}.gen_new_ids"));
        let config = GenerationConfig {
            max_new_tokens: want.len(),
            sampling: None,
            eos_token: Some(1),
            pad_token: 0,
            keep_logits: true,
            ..Default::default()
        };
        let g = Generator::new(&decoder).with_position_offset(1).generate(embeds, &mask, &config).unwrap();
        let got: Vec<f32> = g.new_ids[0].iter().map(|&i| i as f32).collect();
        assert_eq!(got, want, "{p}.gen_new_ids");
        let step_logits: Vec<f32> = g.step_logits[0].concat();
        assert_close(
            &format!("{p}.gen_step_logits"),
            &step_logits,
            &reference(case, &format!("{p}.gen_step_logits")).1,
        );
    }
}
