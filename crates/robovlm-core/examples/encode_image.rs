//! Encode an image with only the SigLIP tower and the projector (plus the processor for the
//! Pillow-exact preprocessing): the same steps as the `siglip` README, compiled by `cargo test`.
//!
//! `cargo run --release -p robovlm-core --example encode_image -- fixtures/paligemma_tiny/model fixtures/paligemma_tiny/inputs/img0_56x56.png`

use std::path::Path;

use burn::backend::Flex;
use robovlm_core::projector::ProjectorConfig;
use robovlm_core::siglip::VisionConfig;
use robovlm_core::{ImageProcessor, weights::WeightFiles};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (dir, image) = match args.as_slice() {
        [_, dir, image] => (Path::new(dir), Path::new(image)),
        _ => return Err("usage: encode_image <paligemma dir> <image>".into()),
    };
    let device = Default::default();
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json"))?)?;
    let vision = VisionConfig::from_hf_value(&config["vision_config"])?;
    let mut tower = vision.init::<Flex>(&device);
    let files = WeightFiles::discover(dir)?;
    tower.load_safetensors(&files.paths(), &files.layout.vision)?;
    let text_width = config["text_config"]["hidden_size"].as_u64().unwrap_or(2048) as usize;
    let mut projector = ProjectorConfig::new(vision.hidden_size, text_width).init::<Flex>(&device);
    projector.load_safetensors(&files.paths(), &files.layout.projector)?;

    let pixels = ImageProcessor::from_file(&dir.join("preprocessor_config.json"))?
        .process_file(image)?
        .to_tensor::<Flex>(&device);
    let features = projector.forward(tower.forward(pixels)).div_scalar((text_width as f64).sqrt());
    println!("image features: {:?}", features.dims());
    Ok(())
}
