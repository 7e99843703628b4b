//! The bf16 matmul against an exact (f64) product of the same bf16-rounded operands, on every
//! kernel this CPU runs, over shapes that hit every edge: one row, partial row blocks, odd and
//! tiny `k`, partial and single-column panels, and model-sized products.

use half::bf16;
use robovlm_kernels::{
    CpuFeatures, Epilogue, Error, Isa, PackedBf16, gelu_tanh_bf16, gelu_tanh_mul_bf16, matmul, matmul_bf16,
    matmul_bf16_then, matmul_bf16_vec, matmul_with,
};

/// Deterministic values in [-2, 2) with varied magnitudes, from a xorshift stream.
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let unit = (s >> 40) as f32 / (1u64 << 24) as f32; // [0, 1)
            (unit * 4.0 - 2.0) * if s & 7 == 0 { 1e-3 } else { 1.0 }
        })
        .collect()
}

fn round(v: f32) -> f64 {
    f64::from(bf16::from_f32(v).to_f32())
}

/// Checks `out` against the exact product of the bf16-rounded operands, within the classic
/// bound for a k-term f32 sum: |error| ≤ (k + 1)·2⁻²⁴·Σ|a·b| (each product is exact in f32,
/// each of the k adds rounds once). A kernel that drops a term, reads a wrong column, mixes up
/// the pair order or the packing misses this by orders of magnitude.
fn check(isa: Isa, m: usize, k: usize, n: usize) {
    let lhs = values(m * k, (m * 31 + k * 7 + n) as u64);
    let w = values(k * n, (m + k * 13 + n * 5) as u64 + 1);
    let packed = PackedBf16::from_kn(&w, k, n).unwrap();
    let mut out = vec![f32::NAN; m * n];
    matmul_with(isa, &lhs, m, &packed, &mut out).unwrap();
    let bound_factor = (k as f64 + 1.0) * 2f64.powi(-24);
    for r in 0..m {
        for c in 0..n {
            let (mut exact, mut magnitude) = (0f64, 0f64);
            for i in 0..k {
                let p = round(lhs[r * k + i]) * round(w[i * n + c]);
                exact += p;
                magnitude += p.abs();
            }
            let got = f64::from(out[r * n + c]);
            let err = (got - exact).abs();
            assert!(
                err <= bound_factor * magnitude + f64::from(f32::MIN_POSITIVE),
                "{isa:?} m={m} k={k} n={n}: out[{r}, {c}] = {got}, exact {exact} (error {err:e}, bound {:e})",
                bound_factor * magnitude
            );
        }
    }
}

const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 2, 32),
    (1, 3, 33),
    (2, 5, 7),
    (3, 31, 16),
    (7, 64, 17),
    (8, 64, 64),
    (9, 257, 100),
    (17, 18, 65),
    (1, 1152, 300),
    (23, 70, 45),
    (33, 300, 97),
    // Several tiles of 8 rows and accumulator blocks of 64 rows, with edges.
    (70, 600, 40),
    (129, 513, 33),
    // k past 8192: slices of k with the sums carried between them, one and several panels per
    // job, an odd k.
    (13, 8195, 70),
    (20, 8200, 300),
    // AMX: whole 16- and 32-row tiles with rows left over, k a whole number of 16-pair steps
    // or ending mid-step (the zero-padded tails), a step shorter than one, partial panels.
    (16, 32, 32),
    (32, 64, 64),
    (48, 1152, 64),
    (31, 72, 45),
    (50, 9, 33),
    (64, 574, 70),
    (100, 8220, 40),
];

#[test]
fn portable_kernel_matches_the_exact_product() {
    for &(m, k, n) in SHAPES {
        check(Isa::Portable, m, k, n);
    }
}

/// Every native kernel this CPU runs (AMX, AVX-512 BF16), whichever [`Isa::best`] picks.
#[test]
fn native_kernels_match_the_exact_product() {
    println!("CPU: {}; best kernel: {:?}", CpuFeatures::get().summary(), Isa::best());
    for isa in [Isa::Amx, Isa::Avx512Bf16] {
        if !isa.available() {
            println!("skipped {isa:?}: not available here");
            continue;
        }
        for &(m, k, n) in SHAPES {
            check(isa, m, k, n);
        }
        // Model-sized products (SigLIP So400m's MLP input width, a row block and a half; and
        // its fc2 width, 4304 = 134 whole AMX steps and a half).
        check(isa, 12, 1152, 4304 / 8);
        check(isa, 40, 4304, 40);
    }
}

/// The vector kernel performs the portable kernel's operations in the same order, so on normal
/// numbers the two agree bit for bit — a stronger check than the error bound.
#[test]
fn avx512_bf16_kernel_equals_the_portable_one() {
    if !Isa::Avx512Bf16.available() {
        println!("skipped: this CPU has no AVX-512 BF16 ({})", CpuFeatures::get().summary());
        return;
    }
    for &(m, k, n) in SHAPES {
        let lhs = values(m * k, 3 + m as u64);
        let packed = PackedBf16::from_kn(&values(k * n, 5 + n as u64), k, n).unwrap();
        let (mut fast, mut portable) = (vec![0.0; m * n], vec![0.0; m * n]);
        matmul_with(Isa::Avx512Bf16, &lhs, m, &packed, &mut fast).unwrap();
        matmul_with(Isa::Portable, &lhs, m, &packed, &mut portable).unwrap();
        let differing = fast.iter().zip(&portable).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        assert_eq!(differing, 0, "m={m} k={k} n={n}: {differing} of {} outputs differ", m * n);
    }
}

/// The GELU epilogue gives exactly the product followed by the separate GELU pass, bit for bit
/// (with and without a bias, on every edge shape), and so does the GeGLU epilogue with the
/// separate `gelu_tanh_mul_bf16`; `matmul_bf16_vec` (a new result, never zeroed) gives exactly
/// `matmul_bf16_then`'s values, and refuses what it refuses.
#[test]
fn gelu_epilogue_equals_the_product_then_gelu() {
    for &(m, k, n) in SHAPES {
        let lhs: Vec<bf16> = values(m * k, 17 + m as u64).into_iter().map(bf16::from_f32).collect();
        // Sums of a few units: the GELU's curved part, both signs.
        let bias = values(n, 19);
        let packed = PackedBf16::from_kn(&values(k * n, 23 + k as u64), k, n).unwrap();
        for bias in [None, Some(&bias[..])] {
            let (mut plain, mut want, mut fused) =
                (vec![bf16::ZERO; m * n], vec![bf16::ZERO; m * n], vec![bf16::ZERO; m * n]);
            matmul_bf16(&lhs, m, &packed, bias, &mut plain).unwrap();
            gelu_tanh_bf16(&plain, &mut want).unwrap();
            matmul_bf16_then(&lhs, m, &packed, bias, Epilogue::GeluTanh, &mut fused).unwrap();
            let differing = fused.iter().zip(&want).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
            assert_eq!(differing, 0, "m={m} k={k} n={n} bias={}: {differing} of {} differ", bias.is_some(), m * n);
            assert!(fused.iter().zip(&plain).any(|(g, p)| g != p), "m={m} k={k} n={n}: the GELU changed nothing");
            // GeGLU: this product as `up`, another tensor as the gate, exactly the separate pass.
            let gate: Vec<bf16> = values(m * n, 29 + n as u64).into_iter().map(bf16::from_f32).collect();
            let mut geglu = vec![bf16::ZERO; m * n];
            gelu_tanh_mul_bf16(&gate, &plain, &mut geglu).unwrap();
            let mut fused = vec![bf16::ZERO; m * n];
            matmul_bf16_then(&lhs, m, &packed, bias, Epilogue::GeluTanhMul { gate: &gate }, &mut fused).unwrap();
            let differing = fused.iter().zip(&geglu).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
            assert_eq!(
                differing,
                0,
                "m={m} k={k} n={n} bias={}: {differing} of {} GeGLU values differ",
                bias.is_some(),
                m * n
            );
            // The same products into new, never-zeroed results: every value written, the same bits.
            let geglu_epilogue = Epilogue::GeluTanhMul { gate: &gate };
            for (epilogue, want) in [(Epilogue::Round, &plain), (Epilogue::GeluTanh, &want), (geglu_epilogue, &geglu)] {
                let got = matmul_bf16_vec(&lhs, m, &packed, bias, epilogue).unwrap();
                assert_eq!(got.len(), m * n);
                let differing = got.iter().zip(want).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
                assert_eq!(
                    differing,
                    0,
                    "m={m} k={k} n={n} {epilogue:?}: {differing} of {} differ in a new result",
                    m * n
                );
            }
        }
    }
    let packed = PackedBf16::from_kn(&[1.0; 6], 3, 2).unwrap();
    assert_eq!(
        matmul_bf16_vec(&[bf16::ZERO; 5], 2, &packed, None, Epilogue::Round).unwrap_err(),
        Error::Length { operand: "lhs", shape: "[2, 3]".into(), expected: 6, got: 5 }
    );
    assert!(matches!(matmul_bf16_vec(&[], usize::MAX, &packed, None, Epilogue::Round), Err(Error::Shape { .. })));
    assert!(matmul_bf16_vec(&[], 0, &packed, None, Epilogue::Round).unwrap().is_empty());
    // A gate of another shape is refused, naming it.
    let gate = [bf16::ONE; 3];
    assert_eq!(
        matmul_bf16_vec(&[bf16::ZERO; 6], 2, &packed, None, Epilogue::GeluTanhMul { gate: &gate }).unwrap_err(),
        Error::Length { operand: "gate", shape: "[2, 2]".into(), expected: 4, got: 3 }
    );
}

#[test]
fn operands_of_the_wrong_size_are_refused() {
    let packed = PackedBf16::from_kn(&[1.0; 6], 3, 2).unwrap();
    let mut out = [0.0; 4];
    assert_eq!(
        matmul(&[0.0; 5], 2, &packed, &mut out).unwrap_err(),
        Error::Length { operand: "lhs", shape: "[2, 3]".into(), expected: 6, got: 5 }
    );
    assert_eq!(
        matmul(&[0.0; 6], 2, &packed, &mut out[..3]).unwrap_err().to_string(),
        "out: expected 4 values ([2, 2]), got 3"
    );
    assert!(matches!(matmul(&[], usize::MAX, &packed, &mut out), Err(Error::Shape { .. })));
    // No rows is a valid, empty product.
    matmul(&[], 0, &packed, &mut []).unwrap();
}

/// bf16 in, bias, bf16 out: exactly the f32 product plus the bias, rounded once.
#[test]
fn bf16_activations_equal_the_f32_path_rounded_once() {
    for &(m, k, n) in SHAPES {
        let lhs: Vec<bf16> = values(m * k, 7 + m as u64).into_iter().map(bf16::from_f32).collect();
        let bias = values(n, 11);
        let packed = PackedBf16::from_kn(&values(k * n, 13 + k as u64), k, n).unwrap();
        let mut f32_out = vec![0.0; m * n];
        let widened: Vec<f32> = lhs.iter().map(|v| v.to_f32()).collect();
        matmul(&widened, m, &packed, &mut f32_out).unwrap();
        for with_bias in [false, true] {
            let mut out = vec![bf16::ZERO; m * n];
            matmul_bf16(&lhs, m, &packed, with_bias.then_some(&bias[..]), &mut out).unwrap();
            for (i, (o, f)) in out.iter().zip(&f32_out).enumerate() {
                let want = bf16::from_f32(f + if with_bias { bias[i % n] } else { 0.0 });
                assert_eq!(*o, want, "m={m} k={k} n={n} bias={with_bias} at {i}");
            }
        }
    }
    let packed = PackedBf16::from_kn(&[1.0; 6], 3, 2).unwrap();
    let mut out = [bf16::ZERO; 2];
    assert!(matmul_bf16(&[bf16::ZERO; 3], 1, &packed, Some(&[0.0; 3]), &mut out).is_err());
}
