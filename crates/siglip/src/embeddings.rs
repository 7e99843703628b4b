//! Patch embedding (a strided conv with bias) plus learned position embedding.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Embedding, EmbeddingConfig};
use burn::prelude::*;
use burn::tensor::DType;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

use robovlm_ops::{PackedWeight, WeightLayout, patch_rows, residual_add};

use crate::config::VisionConfig;

/// `SiglipVisionEmbeddings` (transformers `modeling_siglip.py`): non-overlapping patches through
/// a Conv2d, flattened in row-major grid order, plus one learned vector per patch position.
#[derive(Module, Debug)]
pub struct Embeddings<B: Backend> {
    /// Conv `[hidden, channels, patch, patch]`, stride = patch, with bias.
    pub patch_embedding: Conv2d<B>,
    /// `[num_patches, hidden]`.
    pub position_embedding: Embedding<B>,
    /// The conv weight's packed-bf16 copy for the CPU fast path (not a parameter).
    #[module(skip)]
    patch_packed: PackedWeight,
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
            patch_packed: PackedWeight::default(),
        }
    }

    /// # Shapes
    /// - `pixels`: `[batch, channels, image_size, image_size]`
    /// - returns: `[batch, num_patches, hidden]`
    pub fn forward(&self, pixels: Tensor<B, 4>) -> Tensor<B, 3> {
        let x = match self.patches_as_product(pixels) {
            Ok(x) => x,
            Err(pixels) => self.conv_f32(pixels),
        };
        let dims @ [_, tokens, _] = x.dims();
        let [positions, _] = self.position_embedding.weight.dims();
        assert_eq!(tokens, positions, "image gives {tokens} patches, position table has {positions}");
        // `x + table` (broadcast over the batch), threaded where residual_add has a fast path.
        residual_add(x, self.position_embedding.weight.val().unsqueeze::<3>().expand(dims))
    }

    /// bf16 on Flex (a CPU with AVX-512 BF16): the non-overlapping patches gathered as rows
    /// `[batch·patches, channels·patch²]` (the conv weight's own flattening, [`patch_rows`])
    /// times the packed weight — bf16 products summed in f32, the bias added, rounded once, as
    /// PyTorch's bf16 convolution does; the result is already `[batch, patches, hidden]`, no
    /// transpose. (The f32 island of [`Self::conv_f32`] guards GPU kernels that sum in the
    /// tensor's dtype; this one sums in f32.) Otherwise `pixels` back.
    fn patches_as_product(&self, pixels: Tensor<B, 4>) -> Result<Tensor<B, 3>, Tensor<B, 4>> {
        let conv = &self.patch_embedding;
        let [_, channels, _, _] = pixels.dims();
        let [hidden, in_channels, p, pw] = conv.weight.dims();
        if pixels.dtype() != DType::BF16 || in_channels != channels || p != pw || p == 0 || conv.stride != [p, p] {
            return Err(pixels);
        }
        let weight = conv.weight.val().reshape([hidden, channels * p * p]);
        if !PackedWeight::applies(&weight) {
            return Err(pixels);
        }
        let bias = conv.bias.as_ref().map(|b| b.val());
        let rows = patch_rows(pixels.clone(), p);
        self.patch_packed.matmul(rows, &weight, WeightLayout::OutIn, bias.as_ref()).map_err(|_| pixels)
    }

    /// The patch convolution in f32 whatever the precision, returned `[batch, patches, hidden]`.
    fn conv_f32(&self, pixels: Tensor<B, 4>) -> Tensor<B, 3> {
        // In f32: Burn's direct convolution kernel on GPU backends sums the 3·14·14 products of
        // a patch in the tensor's dtype, and in f16 that alone put the embeddings 10x further
        // from the reference than every later layer together (measured on wgpu). A valid,
        // unpadded patch convolution, as HF's (`padding="valid"`).
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
        x.reshape([batch, hidden, gh * gw]).swap_dims(1, 2)
    }
}
