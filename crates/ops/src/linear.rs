//! `Linear`: Burn's layer (same parameters, names and checkpoint layout) with a CPU fast path for
//! bf16 on Flex.
//!
//! With `--dtype bf16` on the Flex backend, Burn 0.21 multiplies bf16 matrices by converting both
//! operands to f32 on every call, which made bf16 the slowest CPU precision. Here the weight is
//! packed once (on the first forward) into `robovlm_kernels::PackedBf16` panels and the
//! product runs on AVX-512 BF16 dot products with f32 accumulation — PyTorch's bf16 `nn.Linear`
//! numerics: bf16 operands, f32 sums, a bf16 result. Every other case (other backends, other
//! dtypes, CPUs without AVX-512 BF16, autodiff) is Burn's own `linear` op, unchanged.
//!
//! The packed copy is tied to the weight's storage: replacing the weight (loading a checkpoint
//! into an already-used module) repacks on the next call. It assumes a weight's storage is not
//! overwritten in place — true for inference (forward passes clone parameters, so Flex never
//! mutates them) and for loading (new tensors); in-place training updates run under Autodiff,
//! whose tensors never take this path.

use std::sync::{Arc, Mutex};

use burn::module::{Module, Param};
use burn::prelude::*;

/// `y = x·W + b`, `W: [d_input, d_output]` — `burn::nn::Linear`'s contract and module tree
/// (`weight`, `bias`), so checkpoints load into it exactly as into Burn's layer.
///
/// Reference: `torch.nn.Linear` (stored `[out, in]`, transposed on load as for Burn's layer).
#[derive(Module, Debug)]
pub struct Linear<B: Backend> {
    /// `[d_input, d_output]`.
    pub weight: Param<Tensor<B, 2>>,
    /// `[d_output]`.
    pub bias: Option<Param<Tensor<B, 1>>>,
    /// The bf16 panels of `weight`, built on first use by the fast path (not a parameter).
    #[module(skip)]
    packed: PackedWeight,
}

impl<B: Backend> From<burn::nn::Linear<B>> for Linear<B> {
    /// Wraps a Burn layer (typically `LinearConfig::new(i, o).init(device)`: parameters stay lazy
    /// until weights are loaded).
    fn from(linear: burn::nn::Linear<B>) -> Self {
        Linear { weight: linear.weight, bias: linear.bias, packed: PackedWeight::default() }
    }
}

impl<B: Backend> Linear<B> {
    /// `x·W + b` over the last dimension.
    ///
    /// # Shapes
    /// - `x`: `[..., d_input]` → `[..., d_output]`
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self.fast(x) {
            Ok(y) => y,
            Err(x) => burn::tensor::module::linear(x, self.weight.val(), self.bias.as_ref().map(|b| b.val())),
        }
    }

    /// `gelu_tanh(x·W + b)` ([`crate::gelu_tanh`] of [`Self::forward`], SigLIP's `fc1`): on the
    /// bf16 fast path the GELU is applied to each thread's rounded tiles before they are stored
    /// — the same values as the two steps, without writing the product out and reading it back.
    ///
    /// # Shapes
    /// - `x`: `[..., d_input]` → `[..., d_output]`
    pub fn forward_gelu<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self.fast_then(x, Epilogue::GeluTanh) {
            Ok(y) => y,
            Err(x) => crate::gelu_tanh(self.forward(x)),
        }
    }

    /// `gelu_tanh(gate) · (x·W + b)` ([`crate::gelu_tanh_mul`] with this layer's output as `up`,
    /// Gemma's GeGLU): on the bf16 fast path the GELU and the product are applied to each
    /// thread's rounded tiles — the same values as the two steps, without storing `up` and reading
    /// it back with `gate`.
    ///
    /// # Shapes
    /// - `x`: `[..., d_input]`, `gate`: `[..., d_output]` → `[..., d_output]`
    pub fn forward_gelu_mul<const D: usize>(&self, x: Tensor<B, D>, gate: Tensor<B, D>) -> Tensor<B, D> {
        match self.fast_gelu_mul(x, gate) {
            Ok(y) => y,
            Err((x, gate)) => crate::gelu_tanh_mul(gate, self.forward(x)),
        }
    }

    /// [`Self::forward_gelu_mul`]'s fast path when it applies (as [`Self::fast`], and a bf16
    /// `gate` of the output's shape); otherwise `x` and `gate` back unchanged, for the caller's
    /// own path (Gemma's keeps its one-row product numerics on other backends).
    pub fn fast_gelu_mul<const D: usize>(
        &self,
        x: Tensor<B, D>,
        gate: Tensor<B, D>,
    ) -> Result<Tensor<B, D>, (Tensor<B, D>, Tensor<B, D>)> {
        #[cfg(feature = "flex")]
        {
            use burn::tensor::DType;
            if gate.dtype() != DType::BF16 || gate.dims()[..D - 1] != x.dims()[..D - 1] {
                return Err((x, gate));
            }
            let gate = match crate::flex::to_flex(gate) {
                Ok(gate) => crate::flex::contiguous(&gate),
                Err(gate) => return Err((x, gate)),
            };
            // (The kernel checks that `gate` holds rows × d_output values.)
            let result = match gate.as_slice::<burn::tensor::bf16>() {
                Some(values) => self.fast_then(x, Epilogue::GeluTanhMul(values)),
                None => Err(x),
            };
            result.map_err(|x| (x, crate::flex::from_flex(gate)))
        }
        #[cfg(not(feature = "flex"))]
        {
            Err((x, gate))
        }
    }

    /// The packed-bf16 product when it applies (Flex, bf16 tensors, a CPU with AVX-512 BF16,
    /// `ROBOVLM_KERNELS` not `off`); otherwise `x` back unchanged, for the caller's own path.
    pub fn fast<const D: usize>(&self, x: Tensor<B, D>) -> Result<Tensor<B, D>, Tensor<B, D>> {
        self.fast_then(x, Epilogue::Round)
    }

    fn fast_then<const D: usize>(&self, x: Tensor<B, D>, epilogue: Epilogue<'_>) -> Result<Tensor<B, D>, Tensor<B, D>> {
        let bias = self.bias.as_ref().map(|b| b.val());
        // A weight `pack_weights` kept only packed: use that copy, without rebuilding Burn's.
        #[cfg(feature = "flex")]
        if !self.weight.is_initialized()
            && let Some(weights) = flex::released(self.weight.id)
        {
            return flex::product(x, &weights, bias.as_ref(), epilogue);
        }
        self.packed.matmul_then(x, &self.weight.val(), WeightLayout::InOut, bias.as_ref(), epilogue)
    }
}

/// What the packed product does to its sums before storing them: round (a linear layer), round
/// and apply the tanh GELU (a linear layer and its activation in one pass), or round and
/// multiply by the GELU of a gate's values (GeGLU's `up` projection and the product).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Epilogue<'a> {
    Round,
    GeluTanh,
    #[cfg_attr(not(feature = "flex"), allow(dead_code))]
    GeluTanhMul(&'a [burn::tensor::bf16]),
}

/// Packs every [`Linear`] weight of `module` for the bf16 CPU fast path now and keeps only the
/// packed copy, halving the memory the weights take: Burn's bf16 matrix is dropped and its
/// parameter becomes a lazy one that rebuilds the same values from the packed copy if anything
/// else ever reads it (a fallback product, saving the module) — nothing is lost, that read just
/// costs the memory back for that one weight.
///
/// Call it once, after loading, on a model used for inference. A no-op unless the fast path
/// applies (Flex, bf16 weights, a CPU with AVX-512 BF16, `ROBOVLM_KERNELS` not `off`); weights of
/// other dtypes, backends (autodiff included) and modules are returned untouched. (Burn's own
/// `nn::Linear` is matched too — its weights have the same layout — but its forward then rebuilds
/// the matrix: apply this to models built from this crate's layer.)
pub fn pack_weights<B: Backend, M: Module<B>>(module: M) -> M {
    #[cfg(feature = "flex")]
    if crate::flex::enabled() {
        return module.map(&mut flex::Release::default());
    }
    module
}

/// How a weight matrix is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightLayout {
    /// `[d_input, d_output]`: Burn's `Linear`; the product is `x · W`.
    InOut,
    /// `[d_output, d_input]`: an embedding table used as tied output head; the product is `x · Wᵀ`.
    OutIn,
}

/// A weight's packed-bf16 copy for the Flex fast path, built on first use and rebuilt when the
/// weight's storage changes (compared by address, remembered through a `Weak` so the address
/// cannot be reused meanwhile). Put one next to any weight used in products (`#[module(skip)]`:
/// it is not a parameter); clones share it.
#[derive(Clone, Default)]
pub struct PackedWeight(Arc<Mutex<Option<Packed>>>);

impl PackedWeight {
    /// `x · W (+ bias)` over the last dimension of `x` through the packed kernels when they
    /// apply (Flex, bf16 operands, a CPU with AVX-512 BF16, `ROBOVLM_KERNELS` not `off`);
    /// otherwise `x` back unchanged, for the caller's own path.
    ///
    /// # Shapes
    /// - `x`: `[..., d_input]` → `[..., d_output]`; `weight` as `layout` says; `bias`: `[d_output]`
    pub fn matmul<B: Backend, const D: usize>(
        &self,
        x: Tensor<B, D>,
        weight: &Tensor<B, 2>,
        layout: WeightLayout,
        bias: Option<&Tensor<B, 1>>,
    ) -> Result<Tensor<B, D>, Tensor<B, D>> {
        self.matmul_then(x, weight, layout, bias, Epilogue::Round)
    }

    fn matmul_then<B: Backend, const D: usize>(
        &self,
        x: Tensor<B, D>,
        weight: &Tensor<B, 2>,
        layout: WeightLayout,
        bias: Option<&Tensor<B, 1>>,
        epilogue: Epilogue<'_>,
    ) -> Result<Tensor<B, D>, Tensor<B, D>> {
        #[cfg(feature = "flex")]
        {
            flex::matmul(self, x, weight, layout, bias, epilogue)
        }
        #[cfg(not(feature = "flex"))]
        {
            let _ = (weight, layout, bias, epilogue);
            Err(x)
        }
    }
}

impl PackedWeight {
    /// Whether [`Self::matmul`] can take the packed path for `weight` (Flex, bf16, a CPU with
    /// AVX-512 BF16, `ROBOVLM_KERNELS` not `off`), given a bf16 `x` of matching width: lets a
    /// caller skip preparing an operand (SigLIP's gathered patches) that only that path uses.
    pub fn applies<B: Backend>(weight: &Tensor<B, 2>) -> bool {
        #[cfg(feature = "flex")]
        {
            flex::applies(weight)
        }
        #[cfg(not(feature = "flex"))]
        {
            let _ = weight;
            false
        }
    }
}

#[cfg(feature = "flex")]
struct Packed {
    source: std::sync::Weak<burn::tensor::Bytes>,
    layout: WeightLayout,
    weights: Arc<robovlm_kernels::PackedBf16>,
}
#[cfg(not(feature = "flex"))]
struct Packed;

impl std::fmt::Debug for PackedWeight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let packed = self.0.lock().map(|p| p.is_some()).unwrap_or(false);
        f.debug_struct("PackedWeight").field("packed", &packed).finish()
    }
}

#[cfg(feature = "flex")]
mod flex {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, Weak};

    use burn::module::{ModuleMapper, Param, ParamId};
    use burn::prelude::*;
    use burn::tensor::{Bytes, DType, bf16};
    use burn_flex::{FlexTensor, Layout};
    use robovlm_kernels::PackedBf16;

    use super::{Epilogue, Packed, PackedWeight, WeightLayout};
    use crate::flex::{bf16_tensor, bf16_values, contiguous, enabled, from_flex, to_flex};

    pub(super) fn applies<B: Backend>(weight: &Tensor<B, 2>) -> bool {
        enabled() && weight.dtype() == DType::BF16 && to_flex::<B, 2>(weight.clone()).is_ok()
    }

    pub(super) fn matmul<B: Backend, const D: usize>(
        slot: &PackedWeight,
        x: Tensor<B, D>,
        weight: &Tensor<B, 2>,
        layout: WeightLayout,
        bias: Option<&Tensor<B, 1>>,
        epilogue: Epilogue<'_>,
    ) -> Result<Tensor<B, D>, Tensor<B, D>> {
        if !enabled() || x.dtype() != DType::BF16 || weight.dtype() != DType::BF16 {
            return Err(x);
        }
        let Ok(weight) = to_flex::<B, 2>(weight.clone()) else { return Err(x) };
        let [rows_w, cols_w] = weight.layout().shape().dims::<2>();
        let (k, n) = match layout {
            WeightLayout::InOut => (rows_w, cols_w),
            WeightLayout::OutIn => (cols_w, rows_w),
        };
        // (A shape Burn's op will report is not worth packing for.)
        if x.dims()[D - 1] != k {
            return Err(x);
        }
        match packed(slot, &weight, layout, k, n) {
            Some(packed) => product(x, &packed, bias, epilogue),
            None => Err(x),
        }
    }

    /// `x · W (+ bias)` for `W` already packed; `x` back unchanged where the fast path does not
    /// apply.
    pub(super) fn product<B: Backend, const D: usize>(
        x: Tensor<B, D>,
        packed: &PackedBf16,
        bias: Option<&Tensor<B, 1>>,
        epilogue: Epilogue<'_>,
    ) -> Result<Tensor<B, D>, Tensor<B, D>> {
        if !enabled() || x.dtype() != DType::BF16 {
            return Err(x);
        }
        let dims = x.dims();
        let (k, n) = (packed.k(), packed.n());
        // Anything unexpected (a shape Burn's op will report, a bias of another dtype) takes
        // Burn's path: this one only ever runs when every operand is what it assumes.
        let bias = match bias {
            None => None,
            Some(b) => {
                match to_flex::<B, 1>(b.clone()).ok().filter(|b| b.dtype() == DType::BF16).and_then(|b| bf16_values(&b))
                {
                    Some(values) if values.len() == n => Some(values),
                    _ => return Err(x),
                }
            }
        };
        if dims[D - 1] != k {
            return Err(x);
        }
        let x = contiguous(&to_flex(x)?);
        let rows = dims[..D - 1].iter().product::<usize>();
        let epilogue = match epilogue {
            Epilogue::Round => robovlm_kernels::Epilogue::Round,
            Epilogue::GeluTanh => robovlm_kernels::Epilogue::GeluTanh,
            Epilogue::GeluTanhMul(gate) => robovlm_kernels::Epilogue::GeluTanhMul { gate },
        };
        // A new result, never zeroed first (the product writes every value).
        let out = x
            .as_slice::<bf16>()
            .and_then(|input| robovlm_kernels::matmul_bf16_vec(input, rows, packed, bias.as_deref(), epilogue).ok());
        let Some(out) = out else {
            return Err(from_flex(x));
        };
        let mut shape = dims;
        shape[D - 1] = n;
        Ok(from_flex(bf16_tensor(out, shape)))
    }

    /// The packed weight for `weight`'s current storage, packing it now if it changed.
    fn packed(
        slot: &PackedWeight,
        weight: &FlexTensor,
        layout: WeightLayout,
        k: usize,
        n: usize,
    ) -> Option<Arc<PackedBf16>> {
        let source = weight.data_arc();
        let mut slot = slot.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let current = |p: &&Packed| std::ptr::eq(p.source.as_ptr(), Arc::as_ptr(&source)) && p.layout == layout;
        if let Some(p) = slot.as_ref().filter(current) {
            return Some(p.weights.clone());
        }
        // Straight from the bf16 storage: no f32 copy of the matrix (2 GB for a 257k vocabulary).
        let contiguous = if weight.is_contiguous() { weight.clone() } else { weight.to_contiguous() };
        let values = contiguous.as_slice::<bf16>()?;
        let weights = Arc::new(match layout {
            WeightLayout::InOut => PackedBf16::from_kn_bf16(values, k, n).ok()?,
            WeightLayout::OutIn => PackedBf16::from_nk_bf16(values, n, k).ok()?,
        });
        *slot = Some(Packed { source: Arc::downgrade(&source), layout, weights: weights.clone() });
        Some(weights)
    }

    /// Packed weights whose Burn copy [`super::pack_weights`] dropped, by parameter. Weak: the
    /// strong reference lives in the lazy parameter's rebuild closure, so an entry dies with the
    /// last copy of its module (dead entries are swept on insert).
    static RELEASED: Mutex<Option<HashMap<ParamId, Weak<PackedBf16>>>> = Mutex::new(None);

    /// The packed copy of a released weight, if `id` is one (and its module is alive).
    pub(super) fn released(id: ParamId) -> Option<Arc<PackedBf16>> {
        let registry = RELEASED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        registry.as_ref()?.get(&id)?.upgrade()
    }

    fn register(id: ParamId, weights: &Arc<PackedBf16>) {
        let mut registry = RELEASED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let registry = registry.get_or_insert_with(HashMap::new);
        registry.retain(|_, w| w.strong_count() > 0);
        registry.insert(id, Arc::downgrade(weights));
    }

    /// The module mapper behind [`super::pack_weights`]: replaces each bf16 Flex `weight` of a
    /// `Linear` by a lazy parameter built from its packed copy. `inside` tracks, per entered
    /// module field, whether it is a `Linear`'s `weight`.
    #[derive(Default)]
    pub(super) struct Release {
        inside: Vec<bool>,
    }

    impl<B: Backend> ModuleMapper<B> for Release {
        fn enter_module(&mut self, name: &str, container_type: &str) {
            self.inside.push(name == "weight" && container_type == "Struct:Linear");
        }

        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.inside.pop();
        }

        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            if D != 2 || self.inside.last() != Some(&true) {
                return param;
            }
            let Ok(weight) = to_flex::<B, D>(param.val()) else { return param };
            if weight.dtype() != DType::BF16 {
                return param;
            }
            let [k, n] = weight.layout().shape().dims::<2>();
            let weight = contiguous(&weight);
            let Some(packed) = weight.as_slice::<bf16>().and_then(|v| PackedBf16::from_kn_bf16(v, k, n).ok()) else {
                return param;
            };
            let packed = Arc::new(packed);
            register(param.id, &packed);
            let (id, device, require_grad) = (param.id, param.lazy_device(), param.is_require_grad());
            drop((weight, param));
            let rebuild = move |_: &B::Device, require_grad: bool| {
                let values = FlexTensor::new(
                    Bytes::from_elems(packed.to_kn_bf16()),
                    Layout::contiguous(Shape::from(vec![k, n])),
                    DType::BF16,
                );
                from_flex::<B, D>(values).set_require_grad(require_grad)
            };
            Param::uninitialized(id, rebuild, device, require_grad, Shape::from(vec![k, n]))
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use burn::module::Param;
    use burn::nn::LinearConfig;
    use burn::prelude::*;
    use burn::tensor::{DType, bf16};
    use burn_flex::Flex;

    use super::Linear;

    fn bf16_tensor<const D: usize>(shape: [usize; D], seed: usize) -> Tensor<Flex, D> {
        let n: usize = shape.iter().product();
        // Values on bf16's grid (k/50 - 1 rounded), so the f32 reference sees the same operands.
        let values: Vec<f32> =
            (0..n).map(|i| bf16::from_f32(((i * 37 + seed * 11) % 101) as f32 / 50.0 - 1.0).to_f32()).collect();
        Tensor::<Flex, D>::from_data(TensorData::new(values, shape), &Default::default()).cast(DType::BF16)
    }

    fn f32_values<const D: usize>(t: Tensor<Flex, D>) -> Vec<f32> {
        t.cast(DType::F32).into_data().to_vec::<f32>().unwrap()
    }

    /// The fast path (where this CPU has it) equals Burn's op on the same bf16 values computed in
    /// f32, to bf16's rounding of the result; a weight replaced after use is repacked.
    #[test]
    fn bf16_forward_equals_burns_linear() {
        let mut linear: Linear<Flex> = LinearConfig::new(40, 70).init(&Default::default()).into();
        linear.weight = Param::from_tensor(bf16_tensor([40, 70], 1));
        linear.bias = Some(Param::from_tensor(bf16_tensor([70], 2)));
        let x = bf16_tensor([2, 3, 40], 3);
        let reference = |l: &Linear<Flex>| {
            let w = l.weight.val().cast(DType::F32);
            let b = l.bias.as_ref().map(|b| b.val().cast(DType::F32));
            f32_values(burn::tensor::module::linear(x.clone().cast(DType::F32), w, b))
        };
        let check = |l: &Linear<Flex>| {
            let y = l.forward(x.clone());
            assert_eq!((y.dims(), y.dtype()), ([2, 3, 70], DType::BF16));
            for (i, (got, want)) in f32_values(y).iter().zip(reference(l)).enumerate() {
                assert!((got - want).abs() <= want.abs() * 2f32.powi(-8) + 1e-6, "y[{i}] = {got}, want {want}");
            }
        };
        let fast_path = robovlm_kernels::Isa::best().native();
        assert_eq!(linear.fast(x.clone()).is_ok(), fast_path, "fast path iff AVX-512 BF16");
        assert_eq!(super::PackedWeight::applies(&linear.weight.val()), fast_path);
        check(&linear);
        linear.weight = Param::from_tensor(bf16_tensor([40, 70], 9));
        check(&linear);
    }

    /// `forward_gelu` is `gelu_tanh(forward(x))` bit for bit — fused in the product's tiles on
    /// the fast path, two steps elsewhere — before and after `pack_weights`, 273 rows (whole and
    /// partial AMX tiles where the CPU has them).
    #[test]
    fn forward_gelu_equals_gelu_of_forward() {
        let mut linear: Linear<Flex> = LinearConfig::new(72, 70).init(&Default::default()).into();
        linear.weight = Param::from_tensor(bf16_tensor([72, 70], 4));
        linear.bias = Some(Param::from_tensor(bf16_tensor([70], 5)));
        let x = bf16_tensor([1, 273, 72], 6);
        let bits = |t: Tensor<Flex, 3>| {
            t.into_data().to_vec::<bf16>().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        };
        let want = bits(crate::gelu_tanh(linear.forward(x.clone())));
        assert_eq!(bits(linear.forward_gelu(x.clone())), want);
        let packed = crate::pack_weights(linear);
        assert_eq!(bits(packed.forward_gelu(x)), want, "after pack_weights");
    }

    /// `forward_gelu_mul` is `gelu_tanh_mul(gate, forward(x))` bit for bit — fused in the
    /// product's tiles on the fast path, two steps elsewhere — before and after `pack_weights`;
    /// a gate of another shape takes the two steps' path (which reports it).
    #[test]
    fn forward_gelu_mul_equals_gelu_mul_of_forward() {
        let mut linear: Linear<Flex> = LinearConfig::new(72, 70).with_bias(false).init(&Default::default()).into();
        linear.weight = Param::from_tensor(bf16_tensor([72, 70], 7));
        let (x, gate) = (bf16_tensor([1, 273, 72], 8), bf16_tensor([1, 273, 70], 9));
        let bits = |t: Tensor<Flex, 3>| {
            t.into_data().to_vec::<bf16>().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        };
        let want = bits(crate::gelu_tanh_mul(gate.clone(), linear.forward(x.clone())));
        assert_eq!(bits(linear.forward_gelu_mul(x.clone(), gate.clone())), want);
        let packed = crate::pack_weights(linear);
        assert_eq!(bits(packed.forward_gelu_mul(x.clone(), gate)), want, "after pack_weights");
        let (x, wrong) = match packed.fast_gelu_mul(x, bf16_tensor([1, 273, 69], 9)) {
            Ok(_) => panic!("a gate of another shape was used"),
            Err(operands) => operands,
        };
        assert_eq!((x.dims(), wrong.dims()), ([1, 273, 72], [1, 273, 69]), "operands back unchanged");
    }

    #[derive(Module, Debug)]
    struct Two<B: Backend> {
        first: Linear<B>,
        second: Linear<B>,
    }

    /// `pack_weights` drops Burn's copy of each weight (where the fast path applies) without
    /// changing a single output bit, and reading the weight afterwards gives the same matrix back.
    #[test]
    fn packed_weights_keep_results_and_values() {
        let mut first: Linear<Flex> = LinearConfig::new(40, 70).init(&Default::default()).into();
        first.weight = Param::from_tensor(bf16_tensor([40, 70], 1));
        first.bias = Some(Param::from_tensor(bf16_tensor([70], 2)));
        let mut second: Linear<Flex> = LinearConfig::new(70, 33).with_bias(false).init(&Default::default()).into();
        second.weight = Param::from_tensor(bf16_tensor([70, 33], 3));
        let model = Two { first, second };
        let x = bf16_tensor([2, 5, 40], 4);
        let run = |m: &Two<Flex>| m.second.forward(m.first.forward(x.clone())).into_data();
        let (want, weights) = (run(&model), model.second.weight.val().into_data());
        let fast_path = robovlm_kernels::Isa::best().native();
        let packed = super::pack_weights(model);
        assert_eq!(!packed.first.weight.is_initialized(), fast_path, "released iff the fast path applies");
        assert_eq!(!packed.second.weight.is_initialized(), fast_path);
        assert!(packed.first.bias.as_ref().is_some_and(|b| b.is_initialized()), "biases stay");
        assert_eq!(run(&packed.clone()), want);
        assert_eq!(!packed.first.weight.is_initialized(), fast_path, "the product did not rebuild it");
        assert_eq!(packed.second.weight.val().into_data(), weights, "rebuilt on demand, same values");
        assert_eq!(run(&packed), want, "and still the same results");
    }

    /// f32 tensors never take the bf16 path (f32 results stay bit-identical to Burn's).
    #[test]
    fn f32_goes_through_burn() {
        let device = Default::default();
        let weight = Param::from_tensor(bf16_tensor([8, 4], 4).cast(DType::F32));
        let bias = Some(Param::from_tensor(bf16_tensor([4], 5).cast(DType::F32)));
        let burn_layer = burn::nn::Linear { weight, bias };
        let linear: Linear<Flex> = burn_layer.clone().into();
        let x = Tensor::<Flex, 2>::ones([3, 8], &device);
        assert!(linear.fast(x.clone()).is_err());
        assert!(!super::PackedWeight::applies(&linear.weight.val()), "f32 weight");
        assert_eq!(linear.forward(x.clone()).into_data(), burn_layer.forward(x).into_data());
    }
}

#[cfg(all(test, feature = "flex"))]
mod tied_tests {
    use burn::prelude::*;
    use burn::tensor::DType;
    use burn_flex::Flex;

    use super::{PackedWeight, WeightLayout};

    /// `x · Wᵀ` for a `[d_output, d_input]` table (tied embeddings) equals Burn's product.
    #[test]
    fn out_in_layout_multiplies_by_the_transpose() {
        let device = Default::default();
        let grid =
            |n: usize, s: usize| -> Vec<f32> { (0..n).map(|i| ((i * 13 + s) % 17) as f32 / 8.0 - 1.0).collect() };
        let table = Tensor::<Flex, 2>::from_data(TensorData::new(grid(50 * 24, 1), [50, 24]), &device);
        let x = Tensor::<Flex, 3>::from_data(TensorData::new(grid(2 * 24, 2), [1, 2, 24]), &device);
        let want = x.clone().matmul(table.clone().transpose().unsqueeze()).into_data().to_vec::<f32>().unwrap();
        let slot = PackedWeight::default();
        let (xb, tb) = (x.cast(DType::BF16), table.cast(DType::BF16));
        match slot.matmul(xb, &tb, WeightLayout::OutIn, None) {
            Ok(y) => {
                assert_eq!(y.dims(), [1, 2, 50]);
                let got = y.cast(DType::F32).into_data().to_vec::<f32>().unwrap();
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() <= w.abs() * 2f32.powi(-8) + 1e-6, "{g} vs {w}");
                }
            }
            Err(_) => assert!(!robovlm_kernels::Isa::best().native()),
        }
    }
}
