//! The tower alone against transformers: `paligemma_tiny`'s reference pixel values in, its
//! recorded embeddings, every layer's output and last hidden state out (fixtures README §3.6).

use burn::prelude::*;
use robovlm_test_utils::{TestBackend, assert_close, fixtures_dir, reference};
use robovlm_weights::Checkpoint;
use siglip::VisionConfig;

#[test]
fn reproduces_paligemma_tiny_vision_outputs() {
    let case = "paligemma_tiny";
    let dir = fixtures_dir().join(case);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("model/config.json")).unwrap()).unwrap();
    let header: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
    let device = Default::default();
    let vision = VisionConfig::from_hf_value(&config["vision_config"]).unwrap();
    let mut tower = vision.init::<TestBackend>(&device);
    tower
        .load_weights(&Checkpoint::discover(&dir.join("model")).unwrap(), &[("vision_tower.vision_model.", "")])
        .unwrap();
    let mut checked = 0;
    for p in ["p0", "p1", "p2"] {
        // `values.p<N>.prompt.image` = "inputs/<stem>.png"; its pixels are `<stem>.pixel_values`.
        let image = header["values"][format!("{p}.prompt")]["image"].as_str().unwrap();
        let stem = image.trim_start_matches("inputs/").trim_end_matches(".png");
        let (shape, pixels) = reference(case, &format!("{stem}.pixel_values"));
        let shape: [usize; 4] = shape.try_into().unwrap();
        let out = tower.forward_with_intermediates(Tensor::from_data(TensorData::new(pixels, shape), &device));
        let host = |t: Tensor<TestBackend, 3>| t.into_data().convert::<f32>().into_vec::<f32>().unwrap();
        assert_close(
            &format!("{p}.vision_embeddings"),
            &host(out.embeddings),
            &reference(case, &format!("{p}.vision_embeddings")).1,
        );
        let layers: Vec<f32> = out.layer_outputs.into_iter().flat_map(host).collect();
        assert_close(
            &format!("{p}.vision_layer_outputs"),
            &layers,
            &reference(case, &format!("{p}.vision_layer_outputs")).1,
        );
        let last = host(out.last_hidden_state);
        assert_close(
            &format!("{p}.vision_last_hidden_state"),
            &last,
            &reference(case, &format!("{p}.vision_last_hidden_state")).1,
        );
        checked += 1;
    }
    assert_eq!(checked, 3);
}
