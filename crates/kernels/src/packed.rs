//! Weights in bf16, packed once into the micro-kernel's panel layout.

use half::bf16;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;

use crate::error::{Error, Result};

/// Output columns per panel: two 16-lane f32 vectors per micro-kernel row.
pub(crate) const NR: usize = 32;
/// bf16 values per k-pair of a panel: `NR` columns × 2 consecutive `k`.
pub(crate) const PANEL_PAIR: usize = NR * 2;
/// Each panel's pairs are stored up to a multiple of this, the padding zero: an AMX weight tile
/// is 16 pairs tall, so a product whose `k` ends mid-tile still loads a whole tile, whose missing
/// rows then add nothing.
pub(crate) const PAIR_ALIGN: usize = 16;

/// A `[k, n]` weight matrix rounded to bf16 (round-to-nearest-even, as `torch.Tensor.bfloat16`)
/// and packed for [`crate::matmul`].
///
/// Layout: column panels of 32 outputs; inside a panel, for every pair of rows `(2p, 2p + 1)`,
/// 32 × 2 values with each column's pair adjacent — exactly the operand of one pair of
/// `vdpbf16ps` (which multiplies and adds bf16 *pairs* into one f32 lane). Packing once at load
/// means a matmul only streams the panels: no transposes, no conversions of weights per call.
/// Missing columns (n not a multiple of 32), an odd last row and the pairs that pad each panel
/// to a multiple of 16 (`PAIR_ALIGN`, for the AMX kernel's whole tiles) are zero.
#[derive(Debug)]
pub struct PackedBf16 {
    k: usize,
    n: usize,
    /// The panels start at `data[offset]`, a 64-byte boundary (see [`Aligned`]).
    data: Aligned,
}

/// A zeroed run of `len` bf16 bits starting on a 64-byte boundary: every 64-byte row of a weight
/// tile is then one cache line, where a plain allocation (16-byte aligned) splits each across
/// two and an AMX tile load reads twice the lines (measured: 1.3× slower GEMMs).
#[derive(Debug)]
struct Aligned {
    data: Vec<u16>,
    offset: usize,
    len: usize,
}

impl Aligned {
    fn zeroed(len: usize) -> Self {
        let mut data = Vec::new();
        let offset = aligned_window(&mut data, len);
        Aligned { data, offset, len }
    }

    fn values(&self) -> &[u16] {
        &self.data[self.offset..self.offset + self.len]
    }

    fn values_mut(&mut self) -> &mut [u16] {
        &mut self.data[self.offset..self.offset + self.len]
    }
}

/// Grows `buf` (new values zero) so that it holds `len` values starting on a 64-byte boundary,
/// and returns where they start: `buf[offset..offset + len]`. The packed panels and the AMX
/// tile-ordered activations (`gemm::amx_tiles`) both need whole-cache-line tile rows.
pub(crate) fn aligned_window(buf: &mut Vec<u16>, len: usize) -> usize {
    // Up to 31 values (62 bytes) of slack reach the next boundary of a 2-byte aligned buffer.
    buf.resize(len + 31, 0);
    buf.as_ptr().align_offset(64).min(31)
}

impl Clone for Aligned {
    /// A copy aligned on its own (a cloned `Vec` lands wherever the allocator puts it).
    fn clone(&self) -> Self {
        let mut copy = Aligned::zeroed(self.len);
        copy.values_mut().copy_from_slice(self.values());
        copy
    }
}

impl Clone for PackedBf16 {
    fn clone(&self) -> Self {
        PackedBf16 { k: self.k, n: self.n, data: self.data.clone() }
    }
}

impl PartialEq for PackedBf16 {
    /// The same matrix: shape and packed values (wherever each copy's alignment put them).
    fn eq(&self, other: &Self) -> bool {
        (self.k, self.n) == (other.k, other.n) && self.data.values() == other.data.values()
    }
}

impl PackedBf16 {
    /// Packs weights in Burn's `Linear` layout, `[d_input, d_output]` = `[k, n]`, row-major.
    pub fn from_kn(weights: &[f32], k: usize, n: usize) -> Result<Self> {
        check(weights.len(), k, n)?;
        Ok(Self::pack(k, n, |row, col| bf16::from_f32(weights[row * n + col]).to_bits()))
    }

    /// [`Self::from_kn`] for weights already in bf16 (no rounding, no f32 copy of the matrix).
    pub fn from_kn_bf16(weights: &[bf16], k: usize, n: usize) -> Result<Self> {
        check(weights.len(), k, n)?;
        let bits: &[u16] = weights.reinterpret_cast();
        Ok(Self::pack_rows(k, n, true, |row| &bits[row * n..(row + 1) * n]))
    }

    /// Packs weights in PyTorch's `nn.Linear` layout, `[out_features, in_features]` = `[n, k]`.
    pub fn from_nk(weights: &[f32], n: usize, k: usize) -> Result<Self> {
        check(weights.len(), k, n)?;
        Ok(Self::pack(k, n, |row, col| bf16::from_f32(weights[col * k + row]).to_bits()))
    }

    /// [`Self::from_nk`] for weights already in bf16 (an embedding table used as tied head).
    pub fn from_nk_bf16(weights: &[bf16], n: usize, k: usize) -> Result<Self> {
        check(weights.len(), k, n)?;
        let bits: &[u16] = weights.reinterpret_cast();
        Ok(Self::pack_columns(k, n, true, |col| &bits[col * k..(col + 1) * k]))
    }

    /// The matrix back in `[k, n]` row-major bf16 (the layout [`Self::from_kn_bf16`] takes): for
    /// callers that dropped their own copy after packing and need the plain matrix again.
    pub fn to_kn_bf16(&self) -> Vec<bf16> {
        let (k, n) = (self.k, self.n);
        let mut out = vec![bf16::ZERO; k * n];
        if out.is_empty() {
            return out;
        }
        out.par_chunks_mut(n).enumerate().for_each(|(row, values)| {
            let (pair, half) = (row / 2, row % 2);
            for (col, value) in values.iter_mut().enumerate() {
                let panel = self.panel(col / NR);
                *value = bf16::from_bits(panel[pair * PANEL_PAIR + 2 * (col % NR) + half]);
            }
        });
        out
    }

    /// Rows: the inner dimension of the product.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns: the outputs.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Bytes held (padding included).
    pub fn bytes(&self) -> usize {
        self.data.len * 2
    }

    /// Row pairs per panel (`ceil(k / 2)`).
    pub(crate) fn pairs(&self) -> usize {
        self.k.div_ceil(2)
    }

    /// Number of 32-column panels.
    pub(crate) fn panels(&self) -> usize {
        self.n.div_ceil(NR)
    }

    /// The packed values of panel `j`: `pairs()` pairs of 64 values, then zero pairs up to a
    /// multiple of `PAIR_ALIGN`.
    pub(crate) fn panel(&self, j: usize) -> &[u16] {
        let len = panel_len(self.k);
        &self.data.values()[j * len..(j + 1) * len]
    }

    /// A `k × n` matrix given element by element (`bits(row, col)`), in parallel over panels:
    /// for sources that need a conversion per value (f32 weights rounded to bf16).
    pub(crate) fn pack(k: usize, n: usize, bits: impl Fn(usize, usize) -> u16 + Sync) -> Self {
        let panel_len = panel_len(k);
        let mut data = Aligned::zeroed(n.div_ceil(NR) * panel_len);
        if panel_len > 0 {
            data.values_mut()
                .par_chunks_mut(panel_len)
                .enumerate()
                .for_each(|(j, panel)| pack_panel(j, panel, k, n, &bits));
        }
        PackedBf16 { k, n, data }
    }

    /// A `k × n` matrix (`k, n > 0`) given by rows of bf16 bits (`row(i)`: `n` values): each
    /// pair of rows interleaved into the panels — slices copied in order, where [`Self::pack`]
    /// calls a closure and checks two bounds per value (attention packs every call's keys and
    /// values; a checkpoint's bf16 weights load through here too). In parallel over panels or
    /// on the calling thread.
    pub(crate) fn pack_rows<'a>(k: usize, n: usize, parallel: bool, row: impl Fn(usize) -> &'a [u16] + Sync) -> Self {
        let panel_len = panel_len(k);
        let mut data = Aligned::zeroed(n.div_ceil(NR) * panel_len);
        let fill = |(j, panel): (usize, &mut [u16])| {
            let cols = j * NR..n.min((j + 1) * NR);
            for (p, pair) in panel.chunks_exact_mut(PANEL_PAIR).take(k.div_ceil(2)).enumerate() {
                let first = &row(2 * p)[cols.clone()];
                let pairs = pair.chunks_exact_mut(2);
                match (2 * p + 1 < k).then(|| &row(2 * p + 1)[cols.clone()]) {
                    Some(second) => pairs.zip(first.iter().zip(second)).for_each(|(d, (a, b))| {
                        d[0] = *a;
                        d[1] = *b;
                    }),
                    None => pairs.zip(first).for_each(|(d, a)| d[0] = *a),
                }
            }
        };
        if parallel {
            data.values_mut().par_chunks_mut(panel_len).enumerate().for_each(fill);
        } else {
            data.values_mut().chunks_mut(panel_len).enumerate().for_each(fill);
        }
        PackedBf16 { k, n, data }
    }

    /// A `k × n` matrix (`k, n > 0`) given by columns of bf16 bits (`column(j)`: `k` values; a
    /// transposed layout, e.g. attention's keys for `q·kᵀ`): each column's consecutive pairs
    /// copied as 32-bit units into its panel slot, as [`Self::pack_rows`].
    pub(crate) fn pack_columns<'a>(
        k: usize,
        n: usize,
        parallel: bool,
        column: impl Fn(usize) -> &'a [u16] + Sync,
    ) -> Self {
        let panel_len = panel_len(k);
        let mut data = Aligned::zeroed(n.div_ceil(NR) * panel_len);
        let fill = |(j, panel): (usize, &mut [u16])| {
            for (c, col) in (j * NR..n.min((j + 1) * NR)).enumerate() {
                let values = column(col)[..k].chunks_exact(2);
                let last = values.remainder().first();
                let mut slots = panel.chunks_exact_mut(PANEL_PAIR).map(|pair| &mut pair[2 * c..2 * c + 2]);
                // `values` first: zip takes from it first, so the slot after the last whole pair
                // is still there for an odd `k`'s last value.
                for (pair, slot) in values.zip(slots.by_ref()) {
                    slot[0] = pair[0];
                    slot[1] = pair[1];
                }
                if let (Some(slot), Some(v)) = (slots.next(), last) {
                    slot[0] = *v;
                }
            }
        };
        if parallel {
            data.values_mut().par_chunks_mut(panel_len).enumerate().for_each(fill);
        } else {
            data.values_mut().chunks_mut(panel_len).enumerate().for_each(fill);
        }
        PackedBf16 { k, n, data }
    }
}

/// Values per panel of a matrix with inner dimension `k`: its pairs padded to `PAIR_ALIGN`.
fn panel_len(k: usize) -> usize {
    k.div_ceil(2).next_multiple_of(PAIR_ALIGN) * PANEL_PAIR
}

/// Fills panel `j` (columns `32j..`) of a `k × n` matrix given element by element.
#[inline(always)]
fn pack_panel(j: usize, panel: &mut [u16], k: usize, n: usize, bits: &impl Fn(usize, usize) -> u16) {
    for (p, pair) in panel.chunks_exact_mut(PANEL_PAIR).enumerate() {
        for c in 0..NR.min(n - j * NR) {
            let col = j * NR + c;
            for half in 0..2 {
                let row = 2 * p + half;
                if row < k {
                    pair[2 * c + half] = bits(row, col);
                }
            }
        }
    }
}

fn check(len: usize, k: usize, n: usize) -> Result<()> {
    let shape = || format!("[k = {k}, n = {n}]");
    let expected = k.checked_mul(n).filter(|_| k > 0 && n > 0);
    match expected {
        None => Err(Error::Shape { operand: "weights", shape: shape() }),
        Some(expected) if expected != len => {
            Err(Error::Length { operand: "weights", shape: shape(), expected, got: len })
        }
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_layouts_pack_the_same_matrix() {
        let (k, n) = (5, 35);
        let kn: Vec<f32> = (0..k * n).map(|i| i as f32 * 0.25 - 3.0).collect();
        let mut nk = vec![0.0; k * n];
        for row in 0..k {
            for col in 0..n {
                nk[col * k + row] = kn[row * n + col];
            }
        }
        let a = PackedBf16::from_kn(&kn, k, n).unwrap();
        assert_eq!(a, PackedBf16::from_nk(&nk, n, k).unwrap());
        let to_bf16 = |v: &[f32]| v.iter().map(|x| bf16::from_f32(*x)).collect::<Vec<_>>();
        assert_eq!(a, PackedBf16::from_kn_bf16(&to_bf16(&kn), k, n).unwrap());
        assert_eq!(a, PackedBf16::from_nk_bf16(&to_bf16(&nk), n, k).unwrap());
        assert_eq!(a.to_kn_bf16(), to_bf16(&kn), "unpacking gives the matrix back");
        assert_eq!((a.pairs(), a.panels()), (3, 2));
        // Row 3, column 33 sits in panel 1, pair 1, column 1, second of the pair.
        assert_eq!(a.panel(1)[PANEL_PAIR + 2 + 1], bf16::from_f32(kn[3 * n + 33]).to_bits());
        // The odd last row and the missing columns are zero.
        assert_eq!(a.panel(0)[2 * PANEL_PAIR + 1], 0);
        assert_eq!(a.panel(1)[2 * 3], 0);
    }

    /// The slice packers give exactly the element-wise packing, for odd and even `k`, whole
    /// and partial panels, in parallel and on one thread.
    #[test]
    fn row_and_column_packers_equal_the_elementwise_packing() {
        for (k, n) in [(1, 1), (2, 32), (5, 35), (8, 64), (9, 70), (72, 256)] {
            let kn: Vec<u16> = (0..k * n).map(|i| (i * 7 + 3) as u16).collect();
            let nk: Vec<u16> = (0..k * n).map(|i| kn[(i % k) * n + i / k]).collect();
            let want = PackedBf16::pack(k, n, |row, col| kn[row * n + col]);
            for parallel in [true, false] {
                let rows = PackedBf16::pack_rows(k, n, parallel, |r| &kn[r * n..(r + 1) * n]);
                assert_eq!(rows, want, "rows, k = {k}, n = {n}");
                let columns = PackedBf16::pack_columns(k, n, parallel, |c| &nk[c * k..(c + 1) * k]);
                assert_eq!(columns, want, "columns, k = {k}, n = {n}");
            }
        }
    }

    #[test]
    fn wrong_sizes_are_refused_with_the_shape() {
        let err = PackedBf16::from_kn(&[0.0; 5], 2, 3).unwrap_err();
        assert_eq!(err.to_string(), "weights: expected 6 values ([k = 2, n = 3]), got 5");
        assert!(matches!(PackedBf16::from_kn(&[], 0, 3), Err(Error::Shape { .. })));
        assert!(matches!(PackedBf16::from_nk(&[], usize::MAX, 3), Err(Error::Shape { .. })));
    }
}
