//! Encode an image with only the SigLIP tower and the projector, preprocessed exactly as
//! transformers' `SiglipImageProcessor` (Pillow decoding and resize): the pieces `PaliGemma`
//! composes, used one by one.
//!
//! `cargo run --release -p robovlm-core --example encode_image -- fixtures/paligemma_tiny/model fixtures/paligemma_tiny/inputs/img0_56x56.png`

use std::path::Path;

use burn::backend::Flex;
use robovlm_core::paligemma::KeyLayout;
use robovlm_core::projector::ProjectorConfig;
use robovlm_core::weights::Checkpoint;
use robovlm_core::{ImageProcessor, PaliGemmaConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (dir, image) = match args.as_slice() {
        [_, dir, image] => (Path::new(dir), Path::new(image)),
        _ => return Err("usage: encode_image <paligemma dir> <image>".into()),
    };
    let device = Default::default();
    let config = PaliGemmaConfig::from_file(&dir.join("config.json"))?;
    let weights = Checkpoint::discover(dir)?;
    let layout = KeyLayout::detect(&weights);
    let mut tower = config.vision.init::<Flex>(&device);
    tower.load_weights(&weights, &[(&layout.vision, "")])?;
    let mut projector = ProjectorConfig::new(config.vision.hidden_size, config.projection_dim).init::<Flex>(&device);
    projector.load_weights(&weights, &[(&layout.projector, "")])?;

    let pixels = ImageProcessor::from_file(&dir.join("preprocessor_config.json"))?
        .process_file(image)?
        .to_tensor::<Flex>(&device);
    // transformers divides by sqrt(text hidden size); RoboVLMs by sqrt(top-level hidden_size).
    let features = projector.forward(tower.forward(pixels)).div_scalar((config.text_hidden_size as f64).sqrt());
    println!("image features: {:?}", features.dims());
    Ok(())
}
