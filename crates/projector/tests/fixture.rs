//! The projector alone against transformers: `paligemma_tiny`'s recorded vision outputs in, its
//! recorded projector outputs out.

use burn::prelude::*;
use projector::ProjectorConfig;
use robovlm_test_utils::{TestBackend, assert_close, fixtures_dir, reference};
use robovlm_weights::Checkpoint;

#[test]
fn reproduces_paligemma_tiny_projector_outputs() {
    let case = "paligemma_tiny";
    let device = Default::default();
    let checkpoint = Checkpoint::discover(&fixtures_dir().join(case).join("model")).unwrap();
    let (shape, _) = checkpoint.meta("multi_modal_projector.linear.weight").unwrap();
    let mut projector = ProjectorConfig::new(shape[1], shape[0]).init::<TestBackend>(&device);
    projector.load_weights(&checkpoint, &[("multi_modal_projector.", "")]).unwrap();
    for p in ["p0", "p1", "p2"] {
        let (shape, x) = reference(case, &format!("{p}.vision_last_hidden_state"));
        let shape: [usize; 3] = shape.try_into().unwrap();
        let y = projector.forward(Tensor::from_data(TensorData::new(x, shape), &device));
        let y = y.into_data().convert::<f32>().into_vec::<f32>().unwrap();
        assert_close(&format!("{p}.projector_output"), &y, &reference(case, &format!("{p}.projector_output")).1);
    }
}
