//! A bias-free 2-D convolution (cross-correlation, no kernel flip, as torch `nn.Conv2d`) over
//! flat buffers, through the agd-simd matrix kernels.
//!
//! A chunk of `S` samples is unfolded (`im2col`, [`Conv2d::unfold`]) into a caller-provided
//! scratch matrix `cols` of `S·P x K`: one row per output position (`P = out_h·out_w` per
//! sample), holding the `K = kh·kw·c_in` inputs its filter reads, ordered by kernel tap
//! `(i, j)` and then channel. The weights are copied into the same tap-major order (`wp`,
//! `c_out x K`), so the three passes are tall matrix products with the output channels as the
//! narrow side:
//!
//! | pass | product (one chunk, `R = S·P` rows) | kernel |
//! |---|---|---|
//! | forward | `Z (R x c_out) = cols · wpᵀ` | `matmul_nt` |
//! | weight gradient | `gᵀ (K x c_out) += colsᵀ · Δ` | `matmul_tn` |
//! | input gradient | `dcols (R x K) = Δ · wp`, then fold back ([`Conv2d::fold`]) | `matmul_nn` |
//!
//! The products' rows are output positions, so their outputs are channels-last
//! ([`Order::Interleaved`], `h x w x c` per sample). When the next layer is a convolution too
//! the network keeps them that way: unfolding a channels-last input is then `kh` copies of
//! `kw·c_in` adjacent values per output position, and folding back is as many vector adds.
//! Before a dense layer too: the dense layer runs on its weights' columns reordered to match
//! ([`crate::spec::interleaved_input`]), so `flatten` still means what it means in torch. At
//! the edges of a network the order is torch's ([`Order::Planar`], NCHW per sample): a planar
//! output goes through a small transpose per sample, a planar input with several channels is
//! gathered entry by entry (one channel or a 1x1 input is the same in both orders).
//!
//! Why this shape, measured on the MNIST CNN (batch 128, f32, one thread,
//! `cnn_profile` example): the previous layout, one sample at a time as `W (c_out x K) ·
//! cols (K x P)` over NCHW buffers, spent 42 % of the step in products only 16 or 32 rows tall
//! and 40 % unfolding and folding back three-wide runs; see `docs/benchmark-history.md` for
//! the figures of this one.
//!
//! The scratch decides the chunk: `S` is the most samples whose unfolding fits
//! ([`Conv2d::scratch_for`]). A network lends every layer the scratch its largest layer needs
//! for one sample ([`crate::spec::scratch_count`]), so smaller layers, where one sample's
//! product would be only a few rows tall, take several samples per product. Chunking the
//! largest layers too (a 256 KiB – 4 MiB scratch) was measured 5–14 % slower on that CNN, and
//! it would make a host network's rounding differ from the same network on a device: the
//! weight gradient sums over the chunk's positions in one product, so the chunk is part of
//! the arithmetic. With the same layers, the host and the device chunk alike and agree to the
//! bit.
//!
//! Some inputs skip the row-major unfolding:
//!
//! * On a host (vector kernels), a one-channel input (the grey first layer) is read in place:
//!   each sample is copied zero-padded, and the forward and weight-gradient products gather
//!   every output position's `kh·kw` taps from it at fixed offsets (`matmul_gather`,
//!   `matmul_gather_tn`), with a block of positions (or of taps) held in registers across all
//!   the taps, so each output is stored once. On the MNIST CNN this layer's forward pass went
//!   from about 635 to 500 µs and its weight gradient from about 480 to 310 µs a batch.
//! * Otherwise a planar or one-channel input is unfolded transposed ([`Conv2d::unfold_t`],
//!   `K x S·P`): each row is a run along an input row (28 values, not runs of 3), and the
//!   forward and weight-gradient products become `Z = colsTᵀ · wt` (`matmul_tn`) and
//!   `gᵀ = colsT · Δ` (`matmul_nn`), with `wt` the tap-major weights transposed
//!   (`K x c_out`).
//! * On a host (vector kernels), a channels-last input with several channels is not unfolded
//!   at all when the unfolding's room holds its padded image: one copy of the sample, padded
//!   and dealt into row-parity planes (`Windows`), is read in place by one strided product
//!   per kernel row (`matmul_nn_ld` forward, `matmul_tn_ld` weight gradient), whose `A` rows
//!   are the overlapping windows. The input gradient is their adjoint, also in place: one
//!   product per kernel row adds each window's `Δ · wp` back onto the (zeroed) padded image
//!   (`matmul_nn_ld_add`, the rows of `C` overlapping), and the image's inside, times the
//!   activation's derivative, is the input gradient: no `dcols`, no fold. A microcontroller
//!   (scalar kernels, which take only contiguous operands) keeps the unfolding and the fold;
//!   its scratch is the same size either way. The weight gradient still sums sample after
//!   sample, position after position.
//!
//! Otherwise the input gradient is `dcols = Δ · wp`, folded back ([`Conv2d::fold`]).

use agd_simd::{
    Element, Grid, Groups, Strides, Vector, matmul_gather, matmul_gather_tn, matmul_nn,
    matmul_nn_grouped, matmul_nn_grouped_add, matmul_nt, matmul_tn, matmul_tn_ld_warm,
};

use crate::error::Error;
use crate::layout::{product, sum};
use crate::net::{activate, activate_backward};

/// The most kernel taps (`kh·kw`) a one-channel layer reads straight from its padded input
/// ([`agd_simd::matmul_gather`]); larger kernels unfold.
pub const MAX_GATHER_TAPS: usize = 64;

/// How one sample's features are ordered in a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Channel-major, `c x h x w` (NCHW per sample): torch's order and its `flatten`.
    Planar,
    /// Channels-last, `h x w x c`: each position's channels side by side.
    Interleaved,
}

/// How a convolution meets its neighbours: the orders of its input and output, and whether
/// it applies the `sqrt(2)·relu` between layers itself, to each chunk while it is still in
/// cache, instead of leaving a separate pass over the whole batch to the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Io {
    /// Order of the input samples.
    pub input: Order,
    /// Order of the output samples (and of their errors in the backward pass).
    pub output: Order,
    /// The forward pass writes `sqrt(2)·relu(z)` instead of `z`.
    pub activate_output: bool,
    /// The input `h` is the previous layer's `sqrt(2)·relu` output, and the backward pass
    /// writes the previous layer's `∂loss/∂z = ∂loss/∂h · sqrt(2)·1[h > 0]` instead of
    /// `∂loss/∂h`.
    pub activated_input: bool,
}

impl Io {
    /// Torch's order on both sides and no activation, what [`Conv2d::forward`] and
    /// [`Conv2d::backward`] use.
    pub const PLANAR: Io = Io {
        input: Order::Planar,
        output: Order::Planar,
        activate_output: false,
        activated_input: false,
    };
}

/// Writes zeros (a loop: the runs are a few entries, shorter than a `memset` call is worth).
#[inline(always)]
fn zero<T: Element>(out: &mut [T]) {
    for o in out {
        *o = T::ZERO;
    }
}

/// `count` copies of a run of `len` values: the `t`-th from `src[t·sstep..]` to
/// `dst[t·dstep..]`. The runs are `kw·c_in` long, 3 on a grey first layer, 48 or 96 deeper in,
/// where a `memcpy` call costs more than the copy: the common short lengths get a loop of
/// fixed-size copies (a few moves each), longer runs go a vector at a time.
#[inline(always)]
fn copy_runs<T: Element>(
    dst: &mut [T],
    dstep: usize,
    src: &[T],
    sstep: usize,
    len: usize,
    count: usize,
) {
    #[inline(always)]
    fn fixed<T: Element, const N: usize>(
        dst: &mut [T],
        dstep: usize,
        src: &[T],
        sstep: usize,
        count: usize,
    ) {
        for t in 0..count {
            let d: &mut [T; N] = (&mut dst[t * dstep..t * dstep + N]).try_into().expect("N");
            let s: &[T; N] = (&src[t * sstep..t * sstep + N]).try_into().expect("N");
            *d = *s;
        }
    }
    match len {
        1 => fixed::<T, 1>(dst, dstep, src, sstep, count),
        2 => fixed::<T, 2>(dst, dstep, src, sstep, count),
        3 => fixed::<T, 3>(dst, dstep, src, sstep, count),
        4 => fixed::<T, 4>(dst, dstep, src, sstep, count),
        5 => fixed::<T, 5>(dst, dstep, src, sstep, count),
        _ if len >= T::LANES => {
            // Whole vectors, then one last vector overlapping the previous (a copy may
            // write a value twice).
            let l = T::LANES;
            for t in 0..count {
                let d = &mut dst[t * dstep..][..len];
                let s = &src[t * sstep..][..len];
                let mut i = 0;
                while i + l <= len {
                    T::V::load(&s[i..]).store(&mut d[i..]);
                    i += l;
                }
                if i < len {
                    T::V::load(&s[len - l..]).store(&mut d[len - l..]);
                }
            }
        }
        _ => {
            for t in 0..count {
                let d = &mut dst[t * dstep..][..len];
                for (d, &s) in d.iter_mut().zip(&src[t * sstep..][..len]) {
                    *d = s;
                }
            }
        }
    }
}

/// `dst += src`, the adjoint of one of [`copy_runs`]'s copies: whole vectors, then entry by
/// entry. Neighbouring windows' runs overlap (by `c_in` values at stride 2), so a run loads
/// what the one before has just stored; whole vectors at the same offsets let each load take
/// one stored vector as it is. The auto-vectorised loop ended a run of 48 with narrower
/// stores, and the next run's wide loads across two of them stalled (the fold's hot spot in
/// a profile of the MNIST CNN; this way its step is about 1 % faster).
#[inline(always)]
fn add_run<T: Element>(dst: &mut [T], src: &[T]) {
    let src = &src[..dst.len()];
    let mut d = dst.chunks_exact_mut(T::LANES);
    let mut s = src.chunks_exact(T::LANES);
    for (d, s) in (&mut d).zip(&mut s) {
        (T::V::load(d) + T::V::load(s)).store(d);
    }
    for (d, &s) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d += s;
    }
}

/// Which part of a batch a [`Conv2d::backward_part`] call runs (a network runs its conv layers
/// a few samples at a time, all layers per part, so that a part's activations and errors stay
/// in cache between the layers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Part {
    /// The batch's first part: the weight gradient is overwritten, not added to.
    pub first: bool,
    /// The batch's last part: the weight gradient is put back in weight order after it.
    pub last: bool,
}

/// A layer's input read in place instead of unfolded, on the host: one sample zero-padded
/// (`pad` on every side, the width rounded up to a multiple of the stride) and its rows dealt
/// into `stride` planes by row parity, so that for every kernel row `ki` the `kw·c_in` inputs
/// of output position `(oy, ox)` start `stride·c_in·(oy·grid + ox)` after that kernel row's
/// base ([`Conv2d::window_base`]). The forward pass and the input gradient run one strided
/// product per kernel row over the `out_h·out_w` windows of the output positions, its rows
/// grouped by output row ([`agd_simd::matmul_nn_grouped`], the rows of `A` overlapping;
/// [`agd_simd::matmul_nn_grouped_add`] adds the input gradient back onto them). The weight
/// gradient runs one per kernel row over all `R = out_h·grid` windows (`matmul_tn_ld`: its
/// output rows would be depth blocks, and a product per output row cost 1.18–1.26x), the
/// `grid − out_w` extra windows per output row reading padding or the next row, with their
/// errors set to 0 so they add nothing.
///
/// On the MNIST CNN (stride 2, 16 and 32 channels) the three depth-48 (or 96) products cost
/// about what the one depth-144 (288) product over the unfolding does, and the unfolding
/// (twice per layer and step, 0.2–0.25 ns per entry) is replaced by one copy of the image.
#[derive(Debug, Clone, Copy)]
struct Windows {
    /// Padded row length in positions (a multiple of the stride).
    width: usize,
    /// Windows per output row, `width / stride` (at least `out_w`).
    grid: usize,
    /// Rows per plane: `out_h + (kh − 1) / stride`.
    rows: usize,
    /// Elements of the padded image, with room for the last windows' overrun.
    image: usize,
    /// Windows, `out_h·grid`.
    r: usize,
}

/// `[lo, hi)`: the taps `t` of a kernel `k` wide, placed at `start` (may be negative, in the
/// padding) along an axis `size` long, that read inside it.
#[inline(always)]
fn inside(start: isize, k: usize, size: usize) -> (usize, usize) {
    let lo = if start < 0 { (-start) as usize } else { 0 };
    let end = size as isize - start;
    let hi = if end < 0 {
        0
    } else if (end as usize) < k {
        end as usize
    } else {
        k
    };
    (if lo < hi { lo } else { hi }, hi)
}

///
/// Build it with [`crate::spec::conv`] and let [`crate::spec::chain`] fill in the input
/// shape, or spell every field out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2d {
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Stride (both axes).
    pub stride: usize,
    /// Zero padding on every side.
    pub pad: usize,
}

impl Conv2d {
    /// Whether every size is non-zero and the (padded) input is at least one kernel large.
    pub const fn is_valid(&self) -> bool {
        self.c_in > 0
            && self.c_out > 0
            && self.kh > 0
            && self.kw > 0
            && self.h > 0
            && self.w > 0
            && self.stride > 0
            && self.padded_h() >= self.kh
            && self.padded_w() >= self.kw
    }

    /// `h + 2·pad`, saturating (a layer whose padded size does not fit is refused by
    /// [`Conv2d::fits`]; the sizes below assume one that does).
    const fn padded_h(&self) -> usize {
        self.h.saturating_add(self.pad.saturating_mul(2))
    }

    /// `w + 2·pad`, saturating.
    const fn padded_w(&self) -> usize {
        self.w.saturating_add(self.pad.saturating_mul(2))
    }

    /// Whether every size derived from the layer fits in `usize`: the padded input, the
    /// features in and out, the weights and one sample's unfolding (with the scratch built
    /// from them). A layer that does not is refused ([`Error::TooLarge`]) rather than sized
    /// with wrapped numbers.
    pub const fn fits(&self) -> bool {
        if self.padded_h() == usize::MAX || self.padded_w() == usize::MAX {
            return false;
        }
        let (oh, ow) = (self.out_h(), self.out_w());
        let sizes = (
            product(&[self.c_in, self.h, self.w]),
            product(&[self.c_out, oh, ow]),
            product(&[self.c_out, self.c_in, self.kh, self.kw]),
            product(&[oh, ow, self.c_in, self.kh, self.kw]),
        );
        // The weights twice: the scratch ([`Conv2d::scratch_for`]) holds them reordered and
        // has room for them again where the unfolding is smaller. Their sum bounds every size.
        match sizes {
            (Some(fi), Some(fo), Some(params), Some(unfolding)) => {
                sum(&[fi, fo, params, params, unfolding]).is_some()
            }
            _ => false,
        }
    }

    /// Output height `(h + 2·pad − kh) / stride + 1` (0 for an invalid shape; the layer must
    /// [fit](Conv2d::fits)).
    pub const fn out_h(&self) -> usize {
        if self.stride == 0 || self.h + 2 * self.pad < self.kh {
            0
        } else {
            (self.h + 2 * self.pad - self.kh) / self.stride + 1
        }
    }

    /// Output width `(w + 2·pad − kw) / stride + 1` (0 for an invalid shape).
    pub const fn out_w(&self) -> usize {
        if self.stride == 0 || self.w + 2 * self.pad < self.kw {
            0
        } else {
            (self.w + 2 * self.pad - self.kw) / self.stride + 1
        }
    }

    /// Output positions per channel, `P = out_h·out_w`.
    pub const fn positions(&self) -> usize {
        self.out_h() * self.out_w()
    }

    /// Weights of one filter, `K = c_in·kh·kw` (a row of the weight as a `c_out x K` matrix).
    pub const fn patch_len(&self) -> usize {
        self.c_in * self.kh * self.kw
    }

    /// Kernel positions `kh·kw`: AGD takes one norm per position.
    pub const fn kernel_positions(&self) -> usize {
        self.kh * self.kw
    }

    /// Input features per sample, `c_in·h·w`.
    pub const fn in_features(&self) -> usize {
        self.c_in * self.h * self.w
    }

    /// Output features per sample, `c_out·out_h·out_w` (NCHW, flattened row-major).
    pub const fn out_features(&self) -> usize {
        self.c_out * self.positions()
    }

    /// Number of weights, `c_out·c_in·kh·kw`.
    pub const fn param_count(&self) -> usize {
        self.c_out * self.patch_len()
    }

    /// Scratch elements for one sample at a time with torch's order on both sides
    /// ([`Conv2d::forward`], [`Conv2d::backward`]): `scratch_for(1, Io::PLANAR)`.
    pub const fn scratch_len(&self) -> usize {
        self.scratch_for(1, Io::PLANAR)
    }

    /// Whether an output in `order` needs the per-sample transpose (planar, with several
    /// channels and several positions).
    const fn transposes(&self, order: Order) -> bool {
        matches!(order, Order::Planar) && self.reorders_output()
    }

    /// Whether this layer's output differs between the two orders (several channels and
    /// several positions).
    pub const fn reorders_output(&self) -> bool {
        self.c_out > 1 && self.positions() > 1
    }

    /// `dst[r][q·c_out + c] = src[r][c·P + q]` for `rows` rows of [`Conv2d::out_features`]
    /// columns: the weights of a dense layer over this layer's output, from torch's column
    /// order (NCHW) to the channels-last order the layer writes. Once per pass, instead of
    /// transposing every sample's output and errors (2.6 % of the MNIST CNN's step).
    pub fn cols_to_interleaved<T: Element>(&self, rows: usize, src: &[T], dst: &mut [T]) {
        let f = self.out_features();
        for (s, d) in src.chunks_exact(f).zip(dst.chunks_exact_mut(f)).take(rows) {
            transpose(self.c_out, self.positions(), s, d);
        }
    }

    /// The inverse of [`Conv2d::cols_to_interleaved`]: a dense layer's gradient, formed over
    /// the channels-last output, back to torch's column order.
    pub fn cols_to_planar<T: Element>(&self, rows: usize, src: &[T], dst: &mut [T]) {
        let f = self.out_features();
        for (s, d) in src.chunks_exact(f).zip(dst.chunks_exact_mut(f)).take(rows) {
            transpose(self.positions(), self.c_out, s, d);
        }
    }

    /// Scratch elements to run `chunk` samples per product with the orders `io`: the weights in
    /// tap-major order (`c_out·K`), the unfolding (`chunk·P·K`, at least `c_out·K`: it doubles
    /// as the room to reorder the weight gradient) and, for a planar output, the chunk's
    /// channels-last outputs or errors (`chunk·P·c_out`).
    pub const fn scratch_for(&self, chunk: usize, io: Io) -> usize {
        let taps = self.param_count();
        let cols = chunk * self.positions() * self.patch_len();
        let cols = if cols > taps { cols } else { taps };
        let out = if self.transposes(io.output) {
            chunk * self.positions() * self.c_out
        } else {
            0
        };
        taps + cols + out
    }

    /// The most samples per product (at most `batch`) whose scratch fits in `len` elements; 0
    /// if not even one does.
    pub const fn chunk_for(&self, len: usize, io: Io, batch: usize) -> usize {
        let out = if self.transposes(io.output) {
            self.c_out
        } else {
            0
        };
        let per = self.positions() * (self.patch_len() + out);
        let base = self.param_count();
        if per == 0 || len < base {
            return 0;
        }
        // An upper bound (the scratch is at least `base + chunk·per`), then down to the fit.
        let mut s = (len - base) / per;
        if s > batch {
            s = batch;
        }
        while s > 0 && self.scratch_for(s, io) > len {
            s -= 1;
        }
        s
    }

    /// `s = sqrt(c_out/c_in) / sqrt(kh·kw)` (golden README, "AGD conventions"): each kernel
    /// position is a `c_out x c_in` matrix, and the `kh·kw` of them add up in the output.
    pub fn scale<T: Element>(&self) -> T {
        T::from_f64(
            libm::sqrt(self.c_out as f64 / self.c_in as f64)
                / libm::sqrt((self.kh * self.kw) as f64),
        )
    }

    fn check(&self, name: &'static str, expected: usize, got: usize) -> Result<(), Error> {
        if got < expected {
            Err(Error::BufferSize {
                buffer: name,
                expected,
                got,
            })
        } else {
            Ok(())
        }
    }

    /// Strides of channel, row and column in one input sample stored in `order`.
    const fn in_strides(&self, order: Order) -> (usize, usize, usize) {
        match order {
            Order::Planar => (self.h * self.w, self.w, 1),
            Order::Interleaved => (1, self.w * self.c_in, self.c_in),
        }
    }

    /// Whether an input in `order` keeps each position's channels adjacent (channels-last, or
    /// one channel): then a row of a filter's taps is one contiguous run.
    const fn in_adjacent(&self, order: Order) -> bool {
        matches!(order, Order::Interleaved) || self.c_in == 1
    }

    /// Walks one sample's unfolding (`P x K`, see [`Conv2d::unfold`]) a kernel row at a time.
    /// `reads(state, col, x, taps, count)` gets `count` output positions side by side (their
    /// unfolded rows `K` apart from `cols` index `col`, their inputs `stride` positions apart
    /// from input index `x`), each reading a run of `taps` kernel columns inside the input;
    /// `pads(state, col, len)` gets every run of `len` entries that reads padding. The
    /// positions whose kernel row lies wholly inside come in one call per kernel row.
    #[inline(always)]
    fn walk<S>(
        &self,
        (ys, xs): (usize, usize),
        state: &mut S,
        reads: impl Fn(&mut S, usize, usize, usize, usize),
        pads: impl Fn(&mut S, usize, usize),
    ) {
        let (k, ow, s, pad, ci) = (
            self.patch_len(),
            self.out_w(),
            self.stride,
            self.pad,
            self.c_in,
        );
        let run = self.kw * ci;
        // Output columns whose kernel row lies inside: ox·s ≥ pad and ox·s − pad + kw ≤ w.
        let lo = pad.div_ceil(s).min(ow);
        let hi = if self.w + pad >= self.kw {
            ((self.w + pad - self.kw) / s + 1).clamp(lo, ow)
        } else {
            lo
        };
        for oy in 0..self.out_h() {
            let y0 = (oy * s) as isize - pad as isize;
            let (ilo, ihi) = inside(y0, self.kh, self.h);
            let row0 = oy * ow * k;
            if ilo > 0 || ihi < self.kh {
                for ox in 0..ow {
                    pads(state, row0 + ox * k, ilo * run);
                    pads(state, row0 + ox * k + ihi * run, (self.kh - ihi) * run);
                }
            }
            for i in ilo..ihi {
                // Non-negative by `inside`.
                let y = (y0 + i as isize) as usize;
                let col0 = row0 + i * run;
                for ox in (0..lo).chain(hi..ow) {
                    let x0 = (ox * s) as isize - pad as isize;
                    let (jlo, jhi) = inside(x0, self.kw, self.w);
                    let col = col0 + ox * k;
                    pads(state, col, jlo * ci);
                    pads(state, col + jhi * ci, (self.kw - jhi) * ci);
                    if jlo < jhi {
                        let xi = y * ys + (x0 + jlo as isize) as usize * xs;
                        reads(state, col + jlo * ci, xi, jhi - jlo, 1);
                    }
                }
                if lo < hi {
                    let x0 = y * ys + (lo * s - pad) * xs;
                    reads(state, col0 + lo * k, x0, self.kw, hi - lo);
                }
            }
        }
    }

    /// The `(cols index, input index)` pairs of a [`Conv2d::walk`] call's runs, entry by
    /// entry, for an input whose channels are not adjacent (channel stride `cs`, column stride
    /// `xs`).
    #[inline(always)]
    fn entries(
        &self,
        (cs, xs): (usize, usize),
        col: usize,
        xi: usize,
        taps: usize,
        count: usize,
    ) -> impl Iterator<Item = (usize, usize)> {
        let (ci, k, step) = (self.c_in, self.patch_len(), self.stride * xs);
        (0..count).flat_map(move |t| {
            (0..taps * ci).map(move |e| {
                let (j, c) = (e / ci, e % ci);
                (col + t * k + e, xi + t * step + j * xs + c * cs)
            })
        })
    }

    /// Checks an unfolding's buffers (the input side named `name`) and returns the features
    /// per sample, the unfolded entries per sample and the input's channel, row and column
    /// strides.
    fn unfolding(
        &self,
        samples: usize,
        (name, len): (&'static str, usize),
        cols: usize,
        order: Order,
    ) -> Result<[usize; 5], Error> {
        let (fi, pk) = (self.in_features(), self.positions() * self.patch_len());
        self.check(name, samples * fi, len)?;
        self.check("conv scratch", samples * pk, cols)?;
        let (cs, ys, xs) = self.in_strides(order);
        Ok([fi, pk, cs, ys, xs])
    }

    /// Unfolds `samples` samples `x` (each `in_features` long, stored in `order`) into `cols`,
    /// `samples·P x K`: row `n·P + oy·out_w + ox`, column `(i·kw + j)·c_in + c` holds
    /// `x_n[c, oy·stride + i − pad, ox·stride + j − pad]`, 0 in the padding.
    pub fn unfold<T: Element>(
        &self,
        samples: usize,
        x: &[T],
        order: Order,
        cols: &mut [T],
    ) -> Result<(), Error> {
        let [fi, pk, cs, ys, xs] =
            self.unfolding(samples, ("conv input", x.len()), cols.len(), order)?;
        let (ci, k) = (self.c_in, self.patch_len());
        let pads =
            |(cn, _): &mut (&mut [T], &[T]), col: usize, len: usize| zero(&mut cn[col..col + len]);
        for (xn, cn) in x
            .chunks_exact(fi)
            .zip(cols.chunks_exact_mut(pk))
            .take(samples)
        {
            if self.in_adjacent(order) {
                let step = self.stride * xs;
                let reads = |(cn, xn): &mut (&mut [T], &[T]), col, xi, taps, count| {
                    copy_runs(&mut cn[col..], k, &xn[xi..], step, taps * ci, count);
                };
                self.walk((ys, xs), &mut (cn, xn), reads, pads);
            } else {
                let reads = |(cn, xn): &mut (&mut [T], &[T]), col, xi, taps, count| {
                    for (c, x) in self.entries((cs, xs), col, xi, taps, count) {
                        cn[c] = xn[x];
                    }
                };
                self.walk((ys, xs), &mut (cn, xn), reads, pads);
            }
        }
        Ok(())
    }

    /// The adjoint of [`Conv2d::unfold`]: folds `cols` (`samples·P x K`) back onto `samples`
    /// samples `dx` (stored in `order`), overwriting them with the sum of every entry that read
    /// each input (entries in the padding are dropped).
    pub fn fold<T: Element>(
        &self,
        samples: usize,
        cols: &[T],
        order: Order,
        dx: &mut [T],
    ) -> Result<(), Error> {
        let [fi, pk, cs, ys, xs] =
            self.unfolding(samples, ("conv input grad", dx.len()), cols.len(), order)?;
        let (ci, k) = (self.c_in, self.patch_len());
        let dx = &mut dx[..samples * fi];
        dx.fill(T::ZERO);
        let pads = |_: &mut (&mut [T], &[T]), _: usize, _: usize| {};
        for (dn, cn) in dx.chunks_exact_mut(fi).zip(cols.chunks_exact(pk)) {
            if self.in_adjacent(order) {
                let step = self.stride * xs;
                let reads = |(dn, cn): &mut (&mut [T], &[T]), col, xi, taps, count| {
                    for t in 0..count {
                        let (col, xi) = (col + t * k, xi + t * step);
                        add_run(&mut dn[xi..xi + taps * ci], &cn[col..col + taps * ci]);
                    }
                };
                self.walk((ys, xs), &mut (dn, cn), reads, pads);
            } else {
                let reads = |(dn, cn): &mut (&mut [T], &[T]), col, xi, taps, count| {
                    for (c, x) in self.entries((cs, xs), col, xi, taps, count) {
                        dn[x] += cn[c];
                    }
                };
                self.walk((ys, xs), &mut (dn, cn), reads, pads);
            }
        }
        Ok(())
    }

    /// The padded-image layout of [`Conv2d::pad_input`], if this layer reads its input through
    /// it (see [`Windows`]): a channels-last input with several channels, on a host (the
    /// strided products are vector kernels there; a microcontroller keeps the unfolding), and
    /// room in the unfolding's part of the scratch for one sample's padded image and its
    /// `R x c_out` outputs or errors.
    fn windows<T: Element>(&self, order: Order, room: usize) -> Option<Windows> {
        if T::LANES == 1 || self.unfolds_transposed(order) || !self.in_adjacent(order) {
            return None;
        }
        let (s, ci) = (self.stride, self.c_in);
        let width = (self.w + 2 * self.pad).div_ceil(s) * s;
        let grid = width / s;
        let rows = self.out_h() + (self.kh - 1) / s;
        // The last plane's last window reads `kw` columns from `s·(grid − 1)`, up to
        // `kw − s` past its row.
        let image = s * rows * width * ci + self.kw.saturating_sub(s) * ci;
        let r = self.out_h() * grid;
        let w = Windows {
            width,
            grid,
            rows,
            image,
            r,
        };
        (image + r * self.c_out <= room).then_some(w)
    }

    /// Writes one channels-last sample `x` zero-padded into `xp` in the layout of [`Windows`]:
    /// padded row `py` (input row `py − pad`) is row `py / s` of plane `py mod s`, each row
    /// `width` positions of `c_in` values (input column `px − pad` at `px`).
    fn pad_input<T: Element>(&self, win: &Windows, x: &[T], xp: &mut [T]) {
        let (s, ci, pad) = (self.stride, self.c_in, self.pad);
        let line = win.width * ci;
        let xp = &mut xp[..win.image];
        for q in 0..s {
            for t in 0..win.rows {
                let dst = &mut xp[(q * win.rows + t) * line..][..line];
                let py = t * s + q;
                if py < pad || py - pad >= self.h {
                    dst.fill(T::ZERO);
                    continue;
                }
                let y = py - pad;
                let (left, rest) = dst.split_at_mut(pad * ci);
                let (mid, right) = rest.split_at_mut(self.w * ci);
                left.fill(T::ZERO);
                mid.copy_from_slice(&x[y * self.w * ci..][..self.w * ci]);
                right.fill(T::ZERO);
            }
        }
        xp[s * win.rows * line..].fill(T::ZERO);
    }

    /// The adjoint of [`Conv2d::pad_input`]: copies the inside of a padded image `xp` (the
    /// input's rows, without the padding) to the channels-last sample `x`; with the layer's
    /// input `h`, times the derivative of the activation that made it, as
    /// [`activate_backward`] would after the copy.
    fn unpad<T: Element>(&self, win: &Windows, xp: &[T], x: &mut [T], h: Option<&[T]>) {
        let (s, ci, pad) = (self.stride, self.c_in, self.pad);
        let (line, run) = (win.width * ci, self.w * ci);
        for (y, dst) in x.chunks_exact_mut(run).take(self.h).enumerate() {
            let py = y + pad;
            let src = &xp[((py % s) * win.rows + py / s) * line + pad * ci..][..run];
            match h {
                Some(h) => {
                    let s2 = crate::net::sqrt2::<T>();
                    for ((d, &v), &hv) in dst.iter_mut().zip(src).zip(&h[y * run..][..run]) {
                        *d = if hv > T::ZERO { v * s2 } else { T::ZERO };
                    }
                }
                None => dst.copy_from_slice(src),
            }
        }
    }

    /// Whether this layer reads a one-channel input straight from a zero-padded copy of each
    /// sample ([`agd_simd::matmul_gather`] forward, [`agd_simd::matmul_gather_tn`] weight
    /// gradient) instead of unfolding it: on a host (vector kernels), with at most
    /// [`MAX_GATHER_TAPS`] taps and room in the unfolding's part of the scratch (`room`) for
    /// the padded image. Returns the padded image's length.
    fn gathers<T: Element>(&self, room: usize) -> Option<usize> {
        let len = self.padded_h() * self.padded_w();
        (T::LANES > 1
            && self.c_in == 1
            && self.kernel_positions() <= MAX_GATHER_TAPS
            && len <= room)
            .then_some(len)
    }

    /// The output grid and tap offsets of [`Conv2d::gathers`] over a padded image.
    fn gather_geometry(&self) -> (Grid, [usize; MAX_GATHER_TAPS]) {
        let pw = self.padded_w();
        let grid = Grid {
            rows: self.out_h(),
            cols: self.out_w(),
            row_step: self.stride * pw,
            col_step: self.stride,
        };
        let mut taps = [0; MAX_GATHER_TAPS];
        for i in 0..self.kh {
            for j in 0..self.kw {
                taps[i * self.kw + j] = i * pw + j;
            }
        }
        (grid, taps)
    }

    /// Writes one one-channel sample `x` zero-padded into `xp` (`padded_h x padded_w`).
    fn pad_plane<T: Element>(&self, x: &[T], xp: &mut [T]) {
        let (pad, pw) = (self.pad, self.padded_w());
        let xp = &mut xp[..self.padded_h() * pw];
        xp[..pad * pw].fill(T::ZERO);
        for (src, dst) in x
            .chunks_exact(self.w)
            .take(self.h)
            .zip(xp[pad * pw..].chunks_exact_mut(pw))
        {
            dst[..pad].fill(T::ZERO);
            dst[pad..pad + self.w].copy_from_slice(src);
            dst[pad + self.w..].fill(T::ZERO);
        }
        xp[(pad + self.h) * pw..].fill(T::ZERO);
    }

    /// Where kernel row `ki`'s windows start in a padded image: row `ki / s` of plane
    /// `ki mod s`. Window `r = oy·grid + ox` of that kernel row is the `kw·c_in` values from
    /// `s·c_in·r` on.
    fn window_base(&self, win: &Windows, ki: usize) -> usize {
        let s = self.stride;
        ((ki % s) * win.rows + ki / s) * win.width * self.c_in
    }

    /// Whether the unfolding is built transposed ([`Conv2d::unfold_t`], `K x S·P`): when the
    /// input is planar (or has one channel), so that a row of the transposed unfolding is a
    /// run along an input row. On the grey first layer of the MNIST CNN the row-major
    /// unfolding copies runs of 3 (about 1 ns per entry); the transposed one copies runs of
    /// 28, and the products turn into `matmul_tn` (forward) and `matmul_nn` (weight gradient),
    /// which run these depth-9 shapes no slower.
    const fn unfolds_transposed(&self, order: Order) -> bool {
        matches!(order, Order::Planar) || self.c_in == 1
    }

    /// [`Conv2d::unfold`] transposed, for samples `x` in the planar order (one channel is the
    /// same in both orders): `colsT` is `K x samples·P`, row `(i·kw + j)·c_in + c`, column
    /// `n·P + oy·out_w + ox` holding `x_n[c, oy·stride + i − pad, ox·stride + j − pad]`, 0 in
    /// the padding. Each row is built a run along an input row at a time; the forward and
    /// backward passes use it for planar inputs.
    pub fn unfold_t<T: Element>(
        &self,
        samples: usize,
        x: &[T],
        cols_t: &mut [T],
    ) -> Result<(), Error> {
        let [fi, pk, cs, ys, xs] = self.unfolding(
            samples,
            ("conv input", x.len()),
            cols_t.len(),
            Order::Planar,
        )?;
        let (ci, ow, s, pad) = (self.c_in, self.out_w(), self.stride, self.pad);
        let (p, rl) = (self.positions(), samples * self.positions());
        let cols_t = &mut cols_t[..samples * pk];
        // Output columns whose tap `j` reads inside: lo ≤ ox < hi (ox·s + j − pad in [0, w)).
        let range = |j: usize| -> (usize, usize) {
            let lo = pad.saturating_sub(j).div_ceil(s).min(ow);
            let hi = if self.w + pad > j {
                ((self.w + pad - j - 1) / s + 1).clamp(lo, ow)
            } else {
                lo
            };
            (lo, hi)
        };
        for i in 0..self.kh {
            for j in 0..self.kw {
                let (lo, hi) = range(j);
                for c in 0..ci {
                    let row = &mut cols_t[((i * self.kw + j) * ci + c) * rl..][..rl];
                    for (n, xn) in x.chunks_exact(fi).take(samples).enumerate() {
                        let xc = &xn[c * cs..];
                        for oy in 0..self.out_h() {
                            let dst = &mut row[n * p + oy * ow..][..ow];
                            let y = (oy * s + i) as isize - pad as isize;
                            if y < 0 || y as usize >= self.h {
                                zero(dst);
                                continue;
                            }
                            zero(&mut dst[..lo]);
                            zero(&mut dst[hi..]);
                            if lo < hi {
                                // x = ox·s + j − pad ≥ 0 for ox ≥ lo.
                                let x0 = y as usize * ys + (lo * s + j - pad) * xs;
                                let src = &xc[x0..];
                                let dst = &mut dst[lo..hi];
                                if s * xs == 1 {
                                    copy_runs(dst, 0, src, 0, hi - lo, 1);
                                } else {
                                    for (t, d) in dst.iter_mut().enumerate() {
                                        *d = src[t * s * xs];
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// `wt[(i·kw + j)·c_in + c][o] = w[o][(c·kh + i)·kw + j]`: the weights transposed, in the
    /// row order of [`Conv2d::unfold_t`] (`K x c_out`).
    fn weights_by_tap_t<T: Element>(&self, w: &[T], wt: &mut [T]) {
        let (ci, co, taps, k) = (
            self.c_in,
            self.c_out,
            self.kernel_positions(),
            self.patch_len(),
        );
        // In the order of `wt`: its rows are written whole and `w` is read with a stride
        // (scattered single stores, `c_in·c_out` apart, cost about 4 ns each; this function
        // and the next run per part and per layer, 2.6 % of the MNIST CNN's step that way, now
        // 0.7 %). Indexed reads, not `step_by`: on the M4 `step_by` cost 0.4 % more
        // instructions per `digits_cnn` step, indexing the same as the scattered stores.
        let w = &w[..co * k];
        for (row, line) in wt.chunks_exact_mut(co).take(k).enumerate() {
            let at = (row % ci) * taps + row / ci;
            for (o, v) in line.iter_mut().enumerate() {
                *v = w[o * k + at];
            }
        }
    }

    /// `wp[o][(i·kw + j)·c_in + c] = w[o][(c·kh + i)·kw + j]`: the weights in the column order
    /// of [`Conv2d::unfold`].
    fn weights_by_tap<T: Element>(&self, w: &[T], wp: &mut [T]) {
        let (ci, taps, k) = (self.c_in, self.kernel_positions(), self.patch_len());
        for (src, dst) in w.chunks_exact(k).zip(wp.chunks_exact_mut(k)) {
            for (t, run) in dst.chunks_exact_mut(ci).enumerate() {
                for (c, v) in run.iter_mut().enumerate() {
                    *v = src[c * taps + t];
                }
            }
        }
    }

    /// `w[o][(c·kh + i)·kw + j] = gt[(i·kw + j)·c_in + c][o]`: a weight-shaped gradient
    /// from its transpose in tap-major order (`K x c_out`, as the backward pass computes it).
    fn grads_from_taps<T: Element>(&self, gt: &[T], w: &mut [T]) {
        let (ci, co, taps, k) = (
            self.c_in,
            self.c_out,
            self.kernel_positions(),
            self.patch_len(),
        );
        for (o, dst) in w.chunks_exact_mut(k).enumerate() {
            for (c, filter) in dst.chunks_exact_mut(taps).enumerate() {
                for (t, v) in filter.iter_mut().enumerate() {
                    *v = gt[(t * ci + c) * co + o];
                }
            }
        }
    }

    /// Checks the scratch and returns the samples per product (`batch` > 0).
    fn chunk<T>(&self, scratch: &[T], io: Io, batch: usize) -> Result<usize, Error> {
        self.check("conv scratch", self.scratch_for(1, io), scratch.len())?;
        Ok(self.chunk_for(scratch.len(), io, batch))
    }

    /// Splits the scratch of `chunk` samples into the tap-major weights, the unfolding and the
    /// room for channels-last outputs.
    fn split<'s, T>(
        &self,
        scratch: &'s mut [T],
        chunk: usize,
    ) -> (&'s mut [T], &'s mut [T], &'s mut [T]) {
        let taps = self.param_count();
        let cols = chunk * self.positions() * self.patch_len();
        let (wp, rest) = scratch.split_at_mut(taps);
        let (cols, out) = rest.split_at_mut(if cols > taps { cols } else { taps });
        (wp, cols, out)
    }

    /// Forward pass of `batch` samples in torch's order (NCHW in and out): `h` is `batch x
    /// in_features`, `z` is `batch x out_features`; `z` is only written.
    pub fn forward<T: Element>(
        &self,
        batch: usize,
        weights: &[T],
        h: &[T],
        z: &mut [T],
        scratch: &mut [T],
    ) -> Result<(), Error> {
        self.forward_with(batch, weights, h, z, scratch, Io::PLANAR)
    }

    /// [`Conv2d::forward`] with the input and output orders `io`, and as many samples per
    /// product as the scratch holds ([`Conv2d::chunk_for`]).
    #[allow(clippy::too_many_arguments)]
    pub fn forward_with<T: Element>(
        &self,
        batch: usize,
        weights: &[T],
        h: &[T],
        z: &mut [T],
        scratch: &mut [T],
        io: Io,
    ) -> Result<(), Error> {
        let (fi, fo, p, k) = (
            self.in_features(),
            self.out_features(),
            self.positions(),
            self.patch_len(),
        );
        self.check("conv input", batch * fi, h.len())?;
        self.check("conv output", batch * fo, z.len())?;
        self.check("conv weights", self.param_count(), weights.len())?;
        let s = self.chunk(scratch, io, batch)?;
        if batch == 0 {
            return Ok(());
        }
        let (wp, cols, out) = self.split(scratch, s);
        let by_row = self.unfolds_transposed(io.input);
        let win = self.windows::<T>(io.input, p * k);
        if by_row || win.is_some() {
            self.weights_by_tap_t(&weights[..self.param_count()], wp);
        } else {
            self.weights_by_tap(&weights[..self.param_count()], wp);
        }
        let transposes = self.transposes(io.output);
        if let Some(win) = win {
            let (xp, zp) = cols.split_at_mut(win.image);
            let zp = &mut zp[..fo];
            let run = self.kw * self.c_in;
            let (co, ow) = (self.c_out, self.out_w());
            let line = win.width * self.c_in;
            let ld = Strides {
                lda: self.stride * self.c_in,
                ldb: co,
                ldc: co,
            };
            let z = &mut z[..batch * fo];
            for i in 0..batch {
                let hn = &h[i * fi..][..fi];
                let (zn, after) = z[i * fo..].split_at_mut(fo);
                self.pad_input(&win, hn, xp);
                // The next sample's input, which the next copy reads, and its output, which
                // the products write: asked for while these products compute, shares of the
                // input for the first `kh − 1` products and the output for the last
                // (BENCHMARKS.md, sessions 28 and 29).
                let next = h.get((i + 1) * fi..(i + 2) * fi).unwrap_or(&[]);
                let next_z: &[T] = after.get(..fo).unwrap_or(&[]);
                // Output row `oy` (`out_w x c_out`) = Σ_ki windows (out_w x kw·c_in, from
                // window `oy·grid` of kernel row `ki`) · wt[ki·kw·c_in.., :] (the weights
                // transposed, `K x c_out`: a `c_out`-wide `B` is read in place, not packed
                // per call). One product per kernel row, its rows grouped by output row
                // (`matmul_nn_grouped`), not over all `R` windows: the `grid − out_w` extra
                // windows cost 7 % (`grid` 15) to 14 % (8) more multiply-adds and a copy of
                // the rows without them (BENCHMARKS.md, session 29), and the rows go
                // straight to `z` when no transpose follows.
                let zo: &mut [T] = if transposes { &mut *zp } else { &mut *zn };
                let groups = Groups {
                    rows: ow,
                    a: line,
                    c: ow * co,
                };
                for ki in 0..self.kh {
                    let beta = if ki == 0 { T::ZERO } else { T::ONE };
                    let a = &xp[self.window_base(&win, ki)..];
                    let b = &wp[ki * run * co..];
                    let warm = match self.kh {
                        1 => next,
                        kh if ki + 1 < kh => share(next, ki, kh - 1),
                        _ => next_z,
                    };
                    matmul_nn_grouped(p, co, run, T::ONE, a, b, beta, zo, ld, groups, warm)?;
                }
                if transposes {
                    transpose(p, co, zp, zn);
                }
                if io.activate_output {
                    activate(zn);
                }
            }
            return Ok(());
        }
        if let Some(len) = self.gathers::<T>(p * k) {
            // Z (P x c_out) = windows (P x K, read in place) · wt (K x c_out), per sample.
            let (grid, taps) = self.gather_geometry();
            let taps = &taps[..self.kernel_positions()];
            let xp = &mut cols[..len];
            for (hn, zn) in h[..batch * fi]
                .chunks_exact(fi)
                .zip(z[..batch * fo].chunks_exact_mut(fo))
            {
                self.pad_plane(hn, xp);
                let co = self.c_out;
                if transposes {
                    let zt = &mut out[..fo];
                    matmul_gather(grid, taps, xp, wp, co, T::ZERO, zt, co)?;
                    transpose(p, co, zt, zn);
                } else {
                    matmul_gather(grid, taps, xp, wp, co, T::ZERO, zn, co)?;
                }
                if io.activate_output {
                    activate(zn);
                }
            }
            return Ok(());
        }
        for (hc, zc) in h[..batch * fi]
            .chunks(s * fi)
            .zip(z[..batch * fo].chunks_mut(s * fo))
        {
            let m = hc.len() / fi;
            let cols = &mut cols[..m * p * k];
            let zt = if transposes {
                &mut out[..m * fo]
            } else {
                &mut *zc
            };
            if by_row {
                // Z (m·P x c_out) = colsTᵀ (m·P x K) · wt (K x c_out)
                self.unfold_t(m, hc, cols)?;
                matmul_tn(m * p, self.c_out, k, T::ONE, cols, wp, T::ZERO, zt)?;
            } else {
                // Z (m·P x c_out) = cols (m·P x K) · wpᵀ
                self.unfold(m, hc, io.input, cols)?;
                matmul_nt(m * p, self.c_out, k, T::ONE, cols, wp, T::ZERO, zt)?;
            }
            if transposes {
                for (src, dst) in out[..m * fo].chunks_exact(fo).zip(zc.chunks_exact_mut(fo)) {
                    transpose(p, self.c_out, src, dst);
                }
            }
            if io.activate_output {
                activate(zc);
            }
        }
        Ok(())
    }

    /// Backward pass of `batch` samples in torch's order from the output errors `delta`
    /// (`batch x out_features`): the weight gradient `g = Σ_n Δ_n · cols_nᵀ` into `grads`
    /// (overwritten), and, when `prev` is given, the input errors `∂loss/∂h` (`batch x
    /// in_features`, written).
    #[allow(clippy::too_many_arguments)]
    pub fn backward<T: Element>(
        &self,
        batch: usize,
        weights: &[T],
        h: &[T],
        delta: &[T],
        grads: Option<&mut [T]>,
        prev: Option<&mut [T]>,
        scratch: &mut [T],
    ) -> Result<(), Error> {
        self.backward_with(batch, weights, h, delta, grads, prev, scratch, Io::PLANAR)
    }

    /// [`Conv2d::backward`] with the orders `io` (`delta` is in the output's order, `prev` in
    /// the input's), as many samples per product as the scratch holds.
    #[allow(clippy::too_many_arguments)]
    pub fn backward_with<T: Element>(
        &self,
        batch: usize,
        weights: &[T],
        h: &[T],
        delta: &[T],
        grads: Option<&mut [T]>,
        prev: Option<&mut [T]>,
        scratch: &mut [T],
        io: Io,
    ) -> Result<(), Error> {
        let whole = Part {
            first: true,
            last: true,
        };
        self.backward_part(batch, weights, h, delta, grads, prev, scratch, io, whole)
    }

    /// [`Conv2d::backward_with`] over one part of a batch: the weight gradient of the `first`
    /// part overwrites `grads`, later parts add to it, and it is kept transposed in tap-major
    /// order (`K x c_out`) until the `last` part puts it in `[c_out, c_in, kh, kw]` order.
    /// The parts' sums are the whole batch's, in the same order (sample after sample, or
    /// chunk after chunk when each part is a whole number of chunks).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn backward_part<T: Element>(
        &self,
        batch: usize,
        weights: &[T],
        h: &[T],
        delta: &[T],
        grads: Option<&mut [T]>,
        mut prev: Option<&mut [T]>,
        scratch: &mut [T],
        io: Io,
        part: Part,
    ) -> Result<(), Error> {
        let (fi, fo, p, k) = (
            self.in_features(),
            self.out_features(),
            self.positions(),
            self.patch_len(),
        );
        let (c_out, taps) = (self.c_out, self.param_count());
        self.check("conv input", batch * fi, h.len())?;
        self.check("conv deltas", batch * fo, delta.len())?;
        self.check("conv weights", taps, weights.len())?;
        if let Some(prev) = prev.as_deref() {
            self.check("conv input grad", batch * fi, prev.len())?;
        }
        if let Some(g) = grads.as_deref() {
            self.check("conv grads", taps, g.len())?;
        }
        let s = self.chunk(scratch, io, batch)?;
        if batch == 0 {
            return Ok(());
        }
        let (wp, cols, out) = self.split(scratch, s);
        if prev.is_some() {
            self.weights_by_tap(&weights[..taps], wp);
        }
        let mut grads = grads.map(|g| &mut g[..taps]);
        let transposes = self.transposes(io.output);
        let mut n = 0;
        while n < batch {
            let m = if batch - n < s { batch - n } else { s };
            let dc = &delta[n * fo..][..m * fo];
            let d: &[T] = if transposes {
                let dt = &mut out[..m * fo];
                for (src, dst) in dc.chunks_exact(fo).zip(dt.chunks_exact_mut(fo)) {
                    transpose(c_out, p, src, dst);
                }
                dt
            } else {
                dc
            };
            let cols = &mut cols[..m * p * k];
            let win = self.windows::<T>(io.input, p * k);
            if let Some(win) = win {
                // One sample at a time, through its padded image (`xp`) and, for the weight
                // gradient, its errors with the extra windows' set to 0 (`dp`, `R x c_out`).
                let (xp, dp) = cols.split_at_mut(win.image);
                let dp = &mut dp[..win.r * c_out];
                let (run, ow, oh) = (self.kw * self.c_in, self.out_w(), self.out_h());
                let line = win.width * self.c_in;
                // The products of a sample, `kh` for each gradient, ask for what the next
                // sample reads and writes outside them (see forward): the weight gradient's
                // for its input (copied padded, and read by `unpad` for the activation's
                // derivative), the input gradient's for its rows of the input gradient
                // (written by `unpad`, whose stores would otherwise fetch each line first),
                // or for its input when there is no weight gradient. The second region made
                // the step 0.97x (BENCHMARKS.md, session 29).
                let (wg, ig) = (
                    if grads.is_some() { self.kh } else { 0 },
                    if prev.is_some() { self.kh } else { 0 },
                );
                for t in 0..m {
                    let next = h.get((n + t + 1) * fi..(n + t + 2) * fi).unwrap_or(&[]);
                    if let Some(g) = grads.as_deref_mut() {
                        for oy in 0..oh {
                            let row = &mut dp[oy * win.grid * c_out..][..win.grid * c_out];
                            let (valid, extra) = row.split_at_mut(ow * c_out);
                            valid.copy_from_slice(&d[(t * p + oy * ow) * c_out..][..ow * c_out]);
                            extra.fill(T::ZERO);
                        }
                        // gᵀ[ki·kw·c_in.., :] (kw·c_in x c_out) +=
                        // windows_kiᵀ (kw·c_in x R) · Δ (R x c_out).
                        self.pad_input(&win, &h[(n + t) * fi..][..fi], xp);
                        let beta = if part.first && n + t == 0 {
                            T::ZERO
                        } else {
                            T::ONE
                        };
                        for ki in 0..self.kh {
                            let ld = Strides {
                                lda: self.stride * self.c_in,
                                ldb: c_out,
                                ldc: c_out,
                            };
                            let a = &xp[self.window_base(&win, ki)..];
                            let gk = &mut g[ki * run * c_out..];
                            let warm = share(next, ki, wg);
                            matmul_tn_ld_warm(
                                run,
                                c_out,
                                win.r,
                                T::ONE,
                                a,
                                dp,
                                beta,
                                gk,
                                ld,
                                warm,
                            )?;
                        }
                    }
                    if let Some(prev) = prev.as_deref_mut() {
                        // The adjoint of the forward's windows: each output row's window gets
                        // Δ (out_w x c_out) · wp_ki (c_out x kw·c_in) added back where it was
                        // read, the windows overlapping, into the padded image's room
                        // (zeroed); then its inside is the input gradient. Its rows grouped
                        // by output row, as forward, reading the errors in place.
                        xp.fill(T::ZERO);
                        let ld = Strides {
                            lda: c_out,
                            ldb: k,
                            ldc: self.stride * self.c_in,
                        };
                        let groups = Groups {
                            rows: ow,
                            a: ow * c_out,
                            c: line,
                        };
                        let a = &d[t * p * c_out..][..p * c_out];
                        let next_prev: &[T] =
                            prev.get((n + t + 1) * fi..(n + t + 2) * fi).unwrap_or(&[]);
                        for ki in 0..self.kh {
                            let (b, xk) = (&wp[ki * run..], &mut xp[self.window_base(&win, ki)..]);
                            let ahead = if wg > 0 { next_prev } else { next };
                            let warm = share(ahead, ki, ig);
                            matmul_nn_grouped_add(
                                p,
                                run,
                                c_out,
                                T::ONE,
                                a,
                                b,
                                xk,
                                ld,
                                groups,
                                warm,
                            )?;
                        }
                        let pc = &mut prev[(n + t) * fi..][..fi];
                        let hn = &h[(n + t) * fi..][..fi];
                        self.unpad(&win, xp, pc, io.activated_input.then_some(hn));
                    }
                }
            } else if let Some(g) = grads.as_deref_mut() {
                let hc = &h[n * fi..][..m * fi];
                let beta = if part.first && n == 0 {
                    T::ZERO
                } else {
                    T::ONE
                };
                if let Some(len) = self.gathers::<T>(p * k) {
                    // gᵀ (K x c_out, tap-major) += windowsᵀ (K x P, read in place) · Δ
                    // (P x c_out), sample after sample.
                    let (grid, taps) = self.gather_geometry();
                    let taps = &taps[..self.kernel_positions()];
                    let xp = &mut cols[..len];
                    for (t, hn) in hc.chunks_exact(fi).enumerate() {
                        self.pad_plane(hn, xp);
                        let b = if t == 0 { beta } else { T::ONE };
                        let dn = &d[t * fo..][..fo];
                        matmul_gather_tn(grid, taps, xp, dn, c_out, c_out, b, g)?;
                    }
                } else if self.unfolds_transposed(io.input) {
                    // gᵀ (K x c_out, tap-major) += colsT (K x m·P) · Δ (m·P x c_out)
                    self.unfold_t(m, hc, cols)?;
                    matmul_nn(k, c_out, m * p, T::ONE, cols, d, beta, g)?;
                } else {
                    // gᵀ (K x c_out, tap-major) += colsᵀ (K x m·P) · Δ (m·P x c_out): measured
                    // faster than `g = Δᵀ · cols`, the wide side being the rows.
                    self.unfold(m, hc, io.input, cols)?;
                    matmul_tn(k, c_out, m * p, T::ONE, cols, d, beta, g)?;
                }
            }
            if let Some(prev) = prev.as_deref_mut()
                && win.is_none()
            {
                // dcols (m·P x K) = Δ (m·P x c_out) · wp (c_out x K), folded back.
                matmul_nn(m * p, k, c_out, T::ONE, d, wp, T::ZERO, cols)?;
                let pc = &mut prev[n * fi..][..m * fi];
                self.fold(m, cols, io.input, pc)?;
                if io.activated_input {
                    activate_backward(pc, &h[n * fi..][..m * fi]);
                }
            }
            n += m;
        }
        if let Some(g) = grads
            && part.last
        {
            // Back to `[c_out, c_in, kh, kw]`, through the unfolding's room (≥ c_out·K).
            let tmp = &mut cols[..taps];
            tmp.copy_from_slice(g);
            self.grads_from_taps(tmp, g);
        }
        Ok(())
    }
}

/// Share `i` of `parts` equal shares of `s` (the last ones shorter, or empty).
fn share<T>(s: &[T], i: usize, parts: usize) -> &[T] {
    let len = s.len().div_ceil(parts.max(1));
    let start = (i * len).min(s.len());
    &s[start..(start + len).min(s.len())]
}

/// `dst[c·rows + r] = src[r·cols + c]`: one sample from `rows x cols` to `cols x rows`.
#[inline]
fn transpose<T: Element>(rows: usize, cols: usize, src: &[T], dst: &mut [T]) {
    for (r, line) in src.chunks_exact(cols).take(rows).enumerate() {
        for (c, &v) in line.iter().enumerate() {
            dst[c * rows + r] = v;
        }
    }
}
