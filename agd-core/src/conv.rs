//! A bias-free 2-D convolution (cross-correlation, no kernel flip, as torch `nn.Conv2d`) over
//! flat NCHW buffers, through the agd-simd matrix kernels.
//!
//! Each sample is unfolded (`im2col`) into a caller-provided scratch matrix `cols`
//! (`K x P`: one row per weight of a filter, `K = c_in·kh·kw`, ordered like the weight
//! `[c_out, c_in, kh, kw]`; one column per output position `P = out_h·out_w`), so that the
//! three passes are matrix products whose outputs land in NCHW order directly:
//!
//! | pass | product (one sample) | kernel |
//! |---|---|---|
//! | forward | `Z (c_out x P) = W · cols` | `matmul_nn` |
//! | weight gradient | `g (c_out x K) += Δ · colsᵀ` | `matmul_nt` |
//! | input gradient | `dcols (K x P) = Wᵀ · Δ`, then fold back (`col2im`) | `matmul_tn` |
//!
//! Why im2col rather than a direct loop: it reuses the blocked, SIMD, tested matrix kernels
//! for all three passes, and the scratch is one sample's `K x P` matrix (backward unfolds the
//! sample again instead of keeping the batch's), which is small next to the activations: on the
//! issue's MNIST CNN the largest is 144 x 196. A row of `cols` is the input plane shifted by one
//! kernel tap and subsampled by the stride, so it is built a run of an output row at a time (a
//! copy for stride 1) rather than entry by entry.
//!
//! Why one sample per product rather than the whole batch in one (`K x B·P`): measured on the
//! issue's CNN (batch 128, f32, one thread, `cnn_profile` example), unfolding 8, 16 or 32
//! samples per product made the step 7 %, 8 % and 18 % slower than one at a time, and keeping
//! every unfolding from the forward pass for the backward pass (instead of unfolding again)
//! 50 % slower: the batch's unfoldings (14 MB for the second layer) leave the cache, and the
//! outputs need reordering from `c_out x B·P` to NCHW, while one sample's stay in L2.

use agd_simd::{Element, matmul_nn, matmul_nt, matmul_tn};

use crate::error::Error;

/// Writes zeros (a loop: the runs are a few entries, shorter than a `memset` call is worth).
#[inline(always)]
fn zero<T: Element>(out: &mut [T]) {
    for o in out {
        *o = T::ZERO;
    }
}

/// `out[t] = src[t·s]`; stride 1 and 2 (every layer of the CNN) get loops the
/// compiler vectorises, others a plain strided walk.
#[inline(always)]
fn gather<T: Element>(out: &mut [T], src: &[T], s: usize) {
    let len = out.len();
    if len == 0 {
        return;
    }
    match s {
        1 => out.copy_from_slice(&src[..len]),
        2 => {
            for (o, pair) in out.iter_mut().zip(src[..2 * len - 1].chunks(2)) {
                *o = pair[0];
            }
        }
        _ => {
            for (o, &v) in out.iter_mut().zip(src.iter().step_by(s)) {
                *o = v;
            }
        }
    }
}

/// `dst[t·s] += run[t]`, the adjoint of [`gather`].
#[inline(always)]
fn scatter_add<T: Element>(dst: &mut [T], run: &[T], s: usize) {
    let len = run.len();
    if len == 0 {
        return;
    }
    match s {
        1 => {
            for (d, &v) in dst[..len].iter_mut().zip(run) {
                *d += v;
            }
        }
        2 => {
            for (pair, &v) in dst[..2 * len - 1].chunks_mut(2).zip(run) {
                pair[0] += v;
            }
        }
        _ => {
            for (d, &v) in dst.iter_mut().step_by(s).zip(run) {
                *d += v;
            }
        }
    }
}

/// The shape of one convolution layer: everything its buffers depend on.
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
            && self.h + 2 * self.pad >= self.kh
            && self.w + 2 * self.pad >= self.kw
    }

    /// Output height `(h + 2·pad − kh) / stride + 1` (0 for an invalid shape).
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

    /// Scratch elements one sample's unfolding needs, `K·P`.
    pub const fn scratch_len(&self) -> usize {
        self.positions() * self.patch_len()
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

    /// The output rows (or columns) `[lo, hi)` whose kernel tap `t` reads inside an input of
    /// `size` (the others read padding).
    fn valid(&self, t: usize, out: usize, size: usize) -> (usize, usize) {
        let lo = if self.pad > t {
            (self.pad - t).div_ceil(self.stride)
        } else {
            0
        };
        let hi = if size + self.pad > t {
            let last = (size - 1 + self.pad - t) / self.stride + 1;
            if last < out { last } else { out }
        } else {
            0
        };
        (if lo < hi { lo } else { hi }, hi)
    }

    /// Unfolds one sample `x` (`c_in x h x w`) into `cols`, `K x P`: row `(c, i, j)` (weight
    /// order), column `oy·out_w + ox` holds `x[c, oy·stride + i − pad, ox·stride + j − pad]`,
    /// 0 in the padding. Built a run of an output row at a time (a copy for stride 1), not
    /// entry by entry.
    pub fn im2col<T: Element>(&self, x: &[T], cols: &mut [T]) -> Result<(), Error> {
        self.check("conv input", self.in_features(), x.len())?;
        self.check("conv scratch", self.scratch_len(), cols.len())?;
        let (p, oh, ow) = (self.positions(), self.out_h(), self.out_w());
        let (hw, s) = (self.h * self.w, self.stride);
        for c in 0..self.c_in {
            let plane = &x[c * hw..][..hw];
            for i in 0..self.kh {
                let (ylo, yhi) = self.valid(i, oh, self.h);
                for j in 0..self.kw {
                    let (xlo, xhi) = self.valid(j, ow, self.w);
                    let r = (c * self.kh + i) * self.kw + j;
                    let dst = &mut cols[r * p..][..p];
                    zero(&mut dst[..ylo * ow]);
                    zero(&mut dst[yhi * ow..]);
                    for oy in ylo..yhi {
                        let out = &mut dst[oy * ow..][..ow];
                        zero(&mut out[..xlo]);
                        zero(&mut out[xhi..]);
                        // In range by `valid`: oy·s + i >= pad and ox·s + j >= pad.
                        let y = oy * s + i - self.pad;
                        let x0 = xlo * s + j - self.pad;
                        let src = &plane[y * self.w..][..self.w];
                        gather(&mut out[xlo..xhi], &src[x0..], s);
                    }
                }
            }
        }
        Ok(())
    }

    /// The adjoint of [`Conv2d::im2col`]: folds `cols` (`K x P`) back onto one sample `dx`
    /// (`c_in x h x w`), overwriting it with the sum of every entry that read each input
    /// (entries in the padding are dropped).
    pub fn col2im<T: Element>(&self, cols: &[T], dx: &mut [T]) -> Result<(), Error> {
        self.check("conv input grad", self.in_features(), dx.len())?;
        self.check("conv scratch", self.scratch_len(), cols.len())?;
        let (p, oh, ow) = (self.positions(), self.out_h(), self.out_w());
        let (hw, s) = (self.h * self.w, self.stride);
        let dx = &mut dx[..self.in_features()];
        dx.fill(T::ZERO);
        for c in 0..self.c_in {
            let plane = &mut dx[c * hw..][..hw];
            for i in 0..self.kh {
                let (ylo, yhi) = self.valid(i, oh, self.h);
                for j in 0..self.kw {
                    let (xlo, xhi) = self.valid(j, ow, self.w);
                    let r = (c * self.kh + i) * self.kw + j;
                    let src = &cols[r * p..][..p];
                    for oy in ylo..yhi {
                        let y = oy * s + i - self.pad;
                        let x0 = xlo * s + j - self.pad;
                        let dst = &mut plane[y * self.w..][..self.w];
                        let run = &src[oy * ow + xlo..oy * ow + xhi];
                        scatter_add(&mut dst[x0..], run, s);
                    }
                }
            }
        }
        Ok(())
    }

    /// Forward pass of `batch` samples: `h` is `batch x in_features`, `z` is `batch x
    /// out_features` (each sample `c_out x out_h x out_w`); `z` is only written.
    pub fn forward<T: Element>(
        &self,
        batch: usize,
        weights: &[T],
        h: &[T],
        z: &mut [T],
        scratch: &mut [T],
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
        self.check("conv scratch", self.scratch_len(), scratch.len())?;
        let cols = &mut scratch[..self.scratch_len()];
        let w = &weights[..self.param_count()];
        for (x, zn) in h.chunks_exact(fi).zip(z.chunks_exact_mut(fo)).take(batch) {
            self.im2col(x, cols)?;
            // z_n (c_out x P) = W (c_out x K) · cols (K x P)
            matmul_nn(self.c_out, p, k, T::ONE, w, cols, T::ZERO, zn)?;
        }
        Ok(())
    }

    /// Backward pass of `batch` samples from the output errors `delta` (`batch x
    /// out_features`): the weight gradient `g = Σ_n Δ_n · cols_nᵀ` into `grads` (overwritten),
    /// and, when `prev` is given, the input errors `∂loss/∂h` (`batch x in_features`, written).
    #[allow(clippy::too_many_arguments)]
    pub fn backward<T: Element>(
        &self,
        batch: usize,
        weights: &[T],
        h: &[T],
        delta: &[T],
        grads: Option<&mut [T]>,
        mut prev: Option<&mut [T]>,
        scratch: &mut [T],
    ) -> Result<(), Error> {
        let (fi, fo, p, k) = (
            self.in_features(),
            self.out_features(),
            self.positions(),
            self.patch_len(),
        );
        self.check("conv input", batch * fi, h.len())?;
        self.check("conv deltas", batch * fo, delta.len())?;
        self.check("conv weights", self.param_count(), weights.len())?;
        self.check("conv scratch", self.scratch_len(), scratch.len())?;
        if let Some(prev) = prev.as_deref() {
            self.check("conv input grad", batch * fi, prev.len())?;
        }
        if let Some(g) = grads.as_deref() {
            self.check("conv grads", self.param_count(), g.len())?;
        }
        let cols = &mut scratch[..self.scratch_len()];
        let w = &weights[..self.param_count()];
        let mut grads = grads.map(|g| &mut g[..self.param_count()]);
        for n in 0..batch {
            let d = &delta[n * fo..][..fo];
            if let Some(g) = grads.as_deref_mut() {
                self.im2col(&h[n * fi..][..fi], cols)?;
                // g (c_out x K) += Δ_n (c_out x P) · cols (K x P)ᵀ
                let beta = if n == 0 { T::ZERO } else { T::ONE };
                matmul_nt(self.c_out, k, p, T::ONE, d, cols, beta, g)?;
            }
            if let Some(prev) = prev.as_deref_mut() {
                // dcols (K x P) = Wᵀ (K x c_out) · Δ_n, folded back onto the input.
                matmul_tn(k, p, self.c_out, T::ONE, w, d, T::ZERO, cols)?;
                self.col2im(cols, &mut prev[n * fi..][..fi])?;
            }
        }
        Ok(())
    }
}
