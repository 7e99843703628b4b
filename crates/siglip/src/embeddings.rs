//! Patch embedding (a strided conv with bias) plus learned position embedding.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Embedding, EmbeddingConfig};
use burn::prelude::*;
use burn::tensor::DType;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

use crate::config::VisionConfig;

/// `SiglipVisionEmbeddings` (transformers `modeling_siglip.py`): non-overlapping patches through
/// a Conv2d, flattened in row-major grid order, plus one learned vector per patch position.
#[derive(Module, Debug)]
pub struct Embeddings<B: Backend> {
    /// Conv `[hidden, channels, patch, patch]`, stride = patch, with bias.
    pub patch_embedding: Conv2d<B>,
    /// `[num_patches, hidden]`.
    pub position_embedding: Embedding<B>,
}

impl<B: Backend> Embeddings<B> {
    pub(crate) fn new(c: &VisionConfig, device: &B::Device) -> Self {
        let p = c.patch_size;
        Self {
            patch_embedding: Conv2dConfig::new([c.num_channels, c.hidden_size], [p, p])
                .with_stride([p, p])
                .with_bias(true)
                .init(device),
            position_embedding: EmbeddingConfig::new(c.num_patches(), c.hidden_size).init(device),
        }
    }

    /// # Shapes
    /// - `pixels`: `[batch, channels, image_size, image_size]`
    /// - returns: `[batch, num_patches, hidden]`
    pub fn forward(&self, pixels: Tensor<B, 4>) -> Tensor<B, 3> {
        // In f32 whatever the precision: Burn's direct convolution kernel on GPU backends sums the
        // 3·14·14 products of a patch in the tensor's dtype, and in f16 that alone put the
        // embeddings 10x further from the reference than every later layer together (measured
        // on wgpu). A valid, unpadded patch convolution, as HF's (`padding="valid"`).
        let conv = &self.patch_embedding;
        let (dtype, f32) = (pixels.dtype(), DType::F32);
        let x = conv2d(
            pixels.cast(f32),
            conv.weight.val().cast(f32),
            conv.bias.as_ref().map(|b| b.val().cast(f32)),
            ConvOptions::new(conv.stride, [0, 0], conv.dilation, conv.groups),
        )
        .cast(dtype); // [batch, hidden, grid, grid]
        let [batch, hidden, gh, gw] = x.dims();
        let x = x.reshape([batch, hidden, gh * gw]).swap_dims(1, 2);
        let [positions, _] = self.position_embedding.weight.dims();
        assert_eq!(gh * gw, positions, "image gives {} patches, position table has {positions}", gh * gw);
        x + self.position_embedding.weight.val().unsqueeze::<3>()
    }
}
