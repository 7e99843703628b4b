//! The heads alone against RoboVLMs: each continuous fixture's recorded action-token hidden
//! states, fed step by step through the history rules, give its recorded head outputs
//! (fixtures README §4.5: window overflow and episode reset included).

use action_heads::{HeadConfig, HeadKind, HeadState};
use burn::prelude::*;
use robovlm_test_utils::{TestBackend, assert_close, fixtures_dir, reference};
use robovlm_weights::Checkpoint;
use serde_json::Value;

/// The head of a RoboVLMs config (`act_head` + the top-level window and chunk), with RoboVLMs'
/// defaults; robovlm-core parses the full schema.
fn head_config(config: &Value, in_features: usize) -> HeadConfig {
    let act = &config["act_head"];
    let kind = match act["type"].as_str().unwrap() {
        "LSTMDecoder" => HeadKind::Lstm,
        "FCDecoder" => HeadKind::Fc,
        _ => HeadKind::Gpt,
    };
    let n = |v: &Value, default: u64| v.as_u64().unwrap_or(default) as usize;
    let mut c = HeadConfig::new(
        kind,
        in_features,
        n(&act["hidden_size"], 1024),
        n(&config["fwd_pred_next_n"], 1),
        n(&config["window_size"], 1),
    );
    c.action_dim = n(&act["action_dim"], 7);
    c.latent = n(&act["latent"], 1);
    c.num_layers = n(&act["num_layers"], 4);
    c.gpt_layers = n(&act["n_layer"], 8);
    c.gpt_heads = n(&act["n_head"], 8);
    c
}

#[test]
fn reproduces_every_continuous_fixture_rollout() {
    let device = Default::default();
    for case in ["robovlms_lstm", "robovlms_fc", "robovlms_gpt"] {
        let dir = fixtures_dir().join(case);
        let config: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("robovlm_config.json")).unwrap()).unwrap();
        let header: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
        let (shape, _) = reference(case, "rollout.e0.t0.action_hidden");
        let hidden = *shape.last().unwrap();
        let mut head = head_config(&config, hidden).init::<TestBackend>(&device);
        head.load_weights(&Checkpoint::open(&dir.join("policy.safetensors")).unwrap(), &[("model.act_head.", "")])
            .unwrap();
        let mut steps = 0;
        for e in 0.. {
            if !header["tensors"].as_object().unwrap().contains_key(&format!("rollout.e{e}.t0.action_hidden")) {
                break;
            }
            let mut state = HeadState::new();
            for t in 0.. {
                let name = format!("rollout.e{e}.t{t}");
                if !header["tensors"].as_object().unwrap().contains_key(&format!("{name}.action_hidden")) {
                    break;
                }
                let (_, x) = reference(case, &format!("{name}.action_hidden"));
                let out = head.step(Tensor::from_data(TensorData::new(x, [1, 1, hidden]), &device), &mut state);
                let arm = out.arm.into_data().convert::<f32>().into_vec::<f32>().unwrap();
                let gripper = out.gripper.into_data().convert::<f32>().into_vec::<f32>().unwrap();
                assert_close(
                    &format!("{case} {name}.head_actions"),
                    &arm,
                    &reference(case, &format!("{name}.head_actions")).1,
                );
                assert_close(
                    &format!("{case} {name}.head_gripper_logits"),
                    &gripper,
                    &reference(case, &format!("{name}.head_gripper_logits")).1,
                );
                steps += 1;
            }
        }
        assert!(steps > head.window_size, "{case}: the rollout must overflow the window ({steps} steps)");
    }
}
