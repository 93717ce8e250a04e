//! Convolution layers: forward and backward against a direct convolution and finite
//! differences, the per-kernel-position AGD step, and per-slice orthogonal init.

use agd_core::conv::{Conv2d, Io, Order};
use agd_core::spec::{self, LayerSpec, SpecLayout, chain, conv, dense};
use agd_core::{
    Agd, CONV_PART, ConvBuffers, ConvNetMut, ConvNetwork, Error, Loss, NetMut, SplitMix64, init,
};
use rand_core::Rng;

fn gaussian(rng: &mut SplitMix64, n: usize) -> Vec<f64> {
    (0..n).map(|_| init::gaussian_pair(rng).0).collect()
}

/// `x[n, c, y, x]` of a `c x h x w` sample, 0 in the padding (indices may be negative).
fn at(x: &[f64], cv: &Conv2d, c: usize, y: isize, xx: isize) -> f64 {
    if y < 0 || xx < 0 || y as usize >= cv.h || xx as usize >= cv.w {
        0.0
    } else {
        x[(c * cv.h + y as usize) * cv.w + xx as usize]
    }
}

/// Input row/column read by output `o` at kernel offset `i`.
fn src(cv: &Conv2d, o: usize, i: usize) -> isize {
    (o * cv.stride + i) as isize - cv.pad as isize
}

/// Direct cross-correlation of one sample, the definition written out.
fn naive_forward(cv: &Conv2d, w: &[f64], x: &[f64]) -> Vec<f64> {
    let (oh, ow) = (cv.out_h(), cv.out_w());
    let mut z = vec![0.0; cv.out_features()];
    for o in 0..cv.c_out {
        for y in 0..oh {
            for xx in 0..ow {
                let mut s = 0.0;
                for c in 0..cv.c_in {
                    for i in 0..cv.kh {
                        for j in 0..cv.kw {
                            let wv = w[((o * cv.c_in + c) * cv.kh + i) * cv.kw + j];
                            s += wv * at(x, cv, c, src(cv, y, i), src(cv, xx, j));
                        }
                    }
                }
                z[(o * oh + y) * ow + xx] = s;
            }
        }
    }
    z
}

/// Direct weight and input gradients of one sample from its output error `d`.
fn naive_backward(cv: &Conv2d, w: &[f64], x: &[f64], d: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let (oh, ow) = (cv.out_h(), cv.out_w());
    let mut gw = vec![0.0; cv.param_count()];
    let mut gx = vec![0.0; cv.in_features()];
    for o in 0..cv.c_out {
        for y in 0..oh {
            for xx in 0..ow {
                let dv = d[(o * oh + y) * ow + xx];
                for c in 0..cv.c_in {
                    for i in 0..cv.kh {
                        for j in 0..cv.kw {
                            let wi = ((o * cv.c_in + c) * cv.kh + i) * cv.kw + j;
                            let (sy, sx) = (src(cv, y, i), src(cv, xx, j));
                            gw[wi] += dv * at(x, cv, c, sy, sx);
                            if sy >= 0 && sx >= 0 && (sy as usize) < cv.h && (sx as usize) < cv.w {
                                gx[(c * cv.h + sy as usize) * cv.w + sx as usize] += dv * w[wi];
                            }
                        }
                    }
                }
            }
        }
    }
    (gw, gx)
}

fn max_rel(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
    got.iter()
        .zip(want)
        .fold(0.0f64, |m, (g, w)| m.max((g - w).abs()))
        / scale
}

/// Odd shapes: stride 1/2/3, padding 0/1/2, kernels 1/3 (and a 2x3), channels 1..5.
fn shapes() -> Vec<Conv2d> {
    let mut v = Vec::new();
    for &(c_in, c_out, h, w) in &[(1, 3, 5, 5), (3, 2, 7, 6), (5, 4, 4, 9)] {
        for &(kh, kw) in &[(1, 1), (3, 3), (2, 3)] {
            for stride in [1, 2, 3] {
                for pad in [0, 1, 2] {
                    let cv = Conv2d {
                        c_in,
                        c_out,
                        kh,
                        kw,
                        h,
                        w,
                        stride,
                        pad,
                    };
                    if cv.is_valid() {
                        v.push(cv);
                    }
                }
            }
        }
    }
    v
}

#[test]
fn forward_and_backward_match_a_direct_convolution() {
    let mut rng = SplitMix64::new(11);
    let batch = 3;
    for cv in shapes() {
        let w = gaussian(&mut rng, cv.param_count());
        let x = gaussian(&mut rng, batch * cv.in_features());
        let d = gaussian(&mut rng, batch * cv.out_features());
        let mut scratch = vec![f64::NAN; cv.scratch_len()];
        // Output and gradients start as NaN: the kernels must only write them.
        let mut z = vec![f64::NAN; batch * cv.out_features()];
        cv.forward(batch, &w, &x, &mut z, &mut scratch).unwrap();
        let mut gw = vec![f64::NAN; cv.param_count()];
        let mut gx = vec![f64::NAN; batch * cv.in_features()];
        cv.backward(
            batch,
            &w,
            &x,
            &d,
            Some(&mut gw),
            Some(&mut gx),
            &mut scratch,
        )
        .unwrap();
        let (fi, fo) = (cv.in_features(), cv.out_features());
        let mut want_gw = vec![0.0; cv.param_count()];
        for n in 0..batch {
            let xn = &x[n * fi..][..fi];
            let zn = naive_forward(&cv, &w, xn);
            assert!(max_rel(&z[n * fo..][..fo], &zn) < 1e-13, "{cv:?} forward");
            let (g, gxn) = naive_backward(&cv, &w, xn, &d[n * fo..][..fo]);
            for (a, b) in want_gw.iter_mut().zip(&g) {
                *a += b;
            }
            assert!(
                max_rel(&gx[n * fi..][..fi], &gxn) < 1e-13,
                "{cv:?} input grad"
            );
        }
        assert!(max_rel(&gw, &want_gw) < 1e-13, "{cv:?} weight grad");
    }
}

/// One `c x h x w` sample per `len` block, from planar to `order`.
fn reorder(x: &[f64], c: usize, hw: usize, order: Order) -> Vec<f64> {
    let mut out = x.to_vec();
    if order == Order::Interleaved {
        for (src, dst) in x.chunks_exact(c * hw).zip(out.chunks_exact_mut(c * hw)) {
            for ch in 0..c {
                for p in 0..hw {
                    dst[p * c + ch] = src[ch * hw + p];
                }
            }
        }
    }
    out
}

#[test]
fn every_order_and_chunk_gives_the_planar_results() {
    let mut rng = SplitMix64::new(12);
    let batch = 5;
    let orders = [Order::Planar, Order::Interleaved];
    for cv in shapes() {
        let (hw_in, hw_out) = (cv.h * cv.w, cv.positions());
        let w = gaussian(&mut rng, cv.param_count());
        let x = gaussian(&mut rng, batch * cv.in_features());
        let d = gaussian(&mut rng, batch * cv.out_features());
        let mut scratch = vec![0.0; cv.scratch_len()];
        let mut z = vec![0.0; batch * cv.out_features()];
        cv.forward(batch, &w, &x, &mut z, &mut scratch).unwrap();
        let mut gw = vec![0.0; cv.param_count()];
        let mut gx = vec![0.0; batch * cv.in_features()];
        let grads = (Some(&mut gw[..]), Some(&mut gx[..]));
        cv.backward(batch, &w, &x, &d, grads.0, grads.1, &mut scratch)
            .unwrap();
        for input in orders {
            for output in orders {
                let io = Io {
                    input,
                    output,
                    ..Io::PLANAR
                };
                let xo = reorder(&x, cv.c_in, hw_in, input);
                let dout = reorder(&d, cv.c_out, hw_out, output);
                for chunk in [1, 2, batch] {
                    let len = cv.scratch_for(chunk, io);
                    // The most samples that fit: at least `chunk`, and one more would not.
                    let got = cv.chunk_for(len, io, batch);
                    assert!(
                        got >= chunk && cv.scratch_for(got, io) <= len,
                        "{cv:?} {io:?}"
                    );
                    assert!(got == batch || cv.scratch_for(got + 1, io) > len);
                    let mut scratch = vec![f64::NAN; len];
                    let mut zo = vec![f64::NAN; z.len()];
                    cv.forward_with(batch, &w, &xo, &mut zo, &mut scratch, io)
                        .unwrap();
                    let want = reorder(&z, cv.c_out, hw_out, output);
                    let what = format!("{cv:?} {io:?} chunk {chunk}");
                    assert!(max_rel(&zo, &want) < 1e-13, "{what} forward");
                    let mut gwo = vec![f64::NAN; gw.len()];
                    let mut gxo = vec![f64::NAN; gx.len()];
                    cv.backward_with(
                        batch,
                        &w,
                        &xo,
                        &dout,
                        Some(&mut gwo),
                        Some(&mut gxo),
                        &mut scratch,
                        io,
                    )
                    .unwrap();
                    assert!(max_rel(&gwo, &gw) < 1e-13, "{what} weight grad");
                    let want = reorder(&gx, cv.c_in, hw_in, input);
                    assert!(max_rel(&gxo, &want) < 1e-13, "{what} input grad");

                    // The activations folded in: sqrt(2)·relu on the way out, its derivative
                    // (read off the input) on the way back.
                    let s2 = 2f64.sqrt();
                    let act = Io {
                        activate_output: true,
                        activated_input: true,
                        ..io
                    };
                    cv.forward_with(batch, &w, &xo, &mut zo, &mut scratch, act)
                        .unwrap();
                    let want: Vec<f64> = reorder(&z, cv.c_out, hw_out, output)
                        .iter()
                        .map(|&v| if v > 0.0 { v * s2 } else { 0.0 })
                        .collect();
                    assert!(max_rel(&zo, &want) < 1e-13, "{what} activated forward");
                    cv.backward_with(
                        batch,
                        &w,
                        &xo,
                        &dout,
                        None,
                        Some(&mut gxo),
                        &mut scratch,
                        act,
                    )
                    .unwrap();
                    let want: Vec<f64> = reorder(&gx, cv.c_in, hw_in, input)
                        .iter()
                        .zip(&xo)
                        .map(|(&g, &h)| if h > 0.0 { g * s2 } else { 0.0 })
                        .collect();
                    assert!(max_rel(&gxo, &want) < 1e-13, "{what} activated input grad");
                }
            }
        }
    }
}

#[test]
fn dense_weights_reordered_for_a_channels_last_output_give_the_same_products() {
    // A dense layer over a conv output: its torch-order weights against the planar output,
    // and the reordered weights against the channels-last output, are the same sums in
    // another order; and reordering back gives the weights bit for bit.
    let mut rng = SplitMix64::new(41);
    let rows = 4;
    for cv in shapes() {
        let (f, hw) = (cv.out_features(), cv.out_h() * cv.out_w());
        let w = gaussian(&mut rng, rows * f);
        let out = gaussian(&mut rng, f);
        let mut wi = vec![0.0; rows * f];
        cv.cols_to_interleaved(rows, &w, &mut wi);
        let mut back = vec![0.0; rows * f];
        cv.cols_to_planar(rows, &wi, &mut back);
        assert_eq!(back, w, "{cv:?}");
        let out_i = reorder(&out, cv.c_out, hw, Order::Interleaved);
        for r in 0..rows {
            let planar: f64 = w[r * f..][..f].iter().zip(&out).map(|(a, b)| a * b).sum();
            let inter: f64 = wi[r * f..][..f]
                .iter()
                .zip(&out_i)
                .map(|(a, b)| a * b)
                .sum();
            assert!(
                (planar - inter).abs() <= 1e-12 * (1.0 + planar.abs()),
                "{cv:?}"
            );
        }
        assert_eq!(cv.reorders_output(), cv.c_out > 1 && hw > 1);
        if !cv.reorders_output() {
            assert_eq!(wi, w, "one channel or one position: the same order");
        }
    }
}

#[test]
fn short_buffers_are_refused_not_panicked() {
    let cv = Conv2d {
        c_in: 2,
        c_out: 3,
        kh: 3,
        kw: 3,
        h: 5,
        w: 5,
        stride: 1,
        pad: 1,
    };
    let w = vec![0.0; cv.param_count()];
    let x = vec![0.0; cv.in_features()];
    let mut z = vec![0.0; cv.out_features()];
    let mut short = vec![0.0; cv.scratch_len() - 1];
    assert!(matches!(
        cv.forward(1, &w, &x, &mut z, &mut short),
        Err(Error::BufferSize { .. })
    ));
    let mut scratch = vec![0.0; cv.scratch_len()];
    assert!(matches!(
        cv.forward(2, &w, &x, &mut z, &mut scratch),
        Err(Error::BufferSize { .. })
    ));
}

/// A run-time conv network for the tests.
struct Net {
    layers: Vec<LayerSpec>,
    cap: usize,
    w: Vec<f64>,
    g: Vec<f64>,
    a: Vec<f64>,
    d: Vec<f64>,
    s: Vec<f64>,
    n: Vec<f64>,
}

impl Net {
    fn new(layers: &[LayerSpec], cap: usize, seed: u64) -> Self {
        let layout = SpecLayout::new(layers).unwrap();
        let mut w = vec![0.0; layout.param_count()];
        init::orthogonal_spec(layout, &mut w, &mut SplitMix64::new(seed));
        Net {
            layers: layers.to_vec(),
            cap,
            g: vec![0.0; w.len()],
            w,
            a: vec![0.0; spec::act_count(layers, cap)],
            d: vec![0.0; spec::delta_count(layers, cap)],
            s: vec![0.0; layout.scratch_count()],
            n: vec![0.0; layout.norm_count()],
        }
    }
    fn view(&mut self) -> ConvNetMut<'_, f64> {
        ConvNetMut::new(
            &self.layers,
            self.cap,
            ConvBuffers {
                weights: &mut self.w,
                grads: &mut self.g,
                acts: &mut self.a,
                deltas: &mut self.d,
                scratch: &mut self.s,
                norms: &mut self.n,
            },
        )
        .unwrap()
    }
}

const CNN: [LayerSpec; 4] = chain(
    [2, 7, 6],
    [
        conv(3, 3, 1, 1),
        conv(4, 3, 2, 0),
        conv(5, 1, 1, 0),
        dense(3),
    ],
);

/// The largest relative gap between the backward pass's gradient and central finite
/// differences of the loss, over every weight of `layers` (two samples, square loss).
fn finite_difference_gap(layers: &[LayerSpec], seed: u64) -> f64 {
    let mut net = Net::new(layers, 2, seed);
    let mut rng = SplitMix64::new(seed + 1);
    let x = gaussian(&mut rng, 2 * layers[0].in_features());
    let classes = layers[layers.len() - 1].out_features();
    let targets = [2 % classes, 0];
    let mut v = net.view();
    v.set_input(&x).unwrap();
    v.compute_grads(Loss::Mse, &targets).unwrap();
    let grads: Vec<f64> = (0..layers.len())
        .flat_map(|k| v.layer_grads(k).to_vec())
        .collect();
    let w0 = v.weights().to_vec();
    let eps = 1e-6;
    let mut loss_at = |w: &[f64]| {
        let mut v = net.view();
        v.weights_mut().copy_from_slice(w);
        v.forward(2).unwrap();
        v.loss_grad(Loss::Mse, &targets).unwrap()
    };
    let mut worst = 0.0f64;
    let scale = grads.iter().fold(0.0f64, |m, g| m.max(g.abs()));
    for i in 0..w0.len() {
        let mut w = w0.clone();
        w[i] = w0[i] + eps;
        let up = loss_at(&w);
        w[i] = w0[i] - eps;
        let down = loss_at(&w);
        let fd = (up - down) / (2.0 * eps);
        worst = worst.max((fd - grads[i]).abs() / scale);
    }
    worst
}

#[test]
fn network_gradients_match_finite_differences() {
    let worst = finite_difference_gap(&CNN, 5);
    assert!(worst < 1e-6, "finite differences differ by {worst:e}");
}

#[test]
fn a_dense_layer_larger_than_every_conv_scratch_gets_room_for_its_reordered_weights() {
    // conv 1→2 1x1 over 4x4 (a scratch of a few dozen values), then dense 32 → 40: the dense
    // layer reads the conv's channels-last output through a reordered copy of its 1,280
    // weights, which must fit in the scratch; and its gradient, formed over that order and
    // reordered back, must be the true one.
    const WIDE: [LayerSpec; 2] = chain([1, 4, 4], [conv(2, 1, 1, 0), dense(40)]);
    let LayerSpec::Conv(c) = WIDE[0] else {
        unreachable!()
    };
    assert!(c.reorders_output());
    assert!(c.scratch_for(1, spec::conv_io(&WIDE, 0)) < 40 * 32);
    assert_eq!(spec::scratch_count(&WIDE), 40 * 32);
    let worst = finite_difference_gap(&WIDE, 8);
    assert!(worst < 1e-6, "finite differences differ by {worst:e}");
}

/// A batch larger than a part runs the leading conv layers part by part (the last part
/// short): the outputs and the gradient are those of the samples one at a time (the mean of
/// their gradients, the loss being a mean).
#[test]
fn a_batch_run_in_parts_matches_its_samples_one_at_a_time() {
    let batch = 2 * CONV_PART + 5;
    let mut net = Net::new(&CNN, batch, 8);
    let mut one = Net::new(&CNN, 1, 8);
    let mut rng = SplitMix64::new(9);
    let f0 = 2 * 7 * 6;
    let x = gaussian(&mut rng, batch * f0);
    let y: Vec<usize> = (0..batch).map(|_| (rng.next_u64() % 3) as usize).collect();
    let mut v = net.view();
    v.set_input(&x).unwrap();
    v.compute_grads(Loss::Xent, &y).unwrap();
    let (out, grads) = (v.outputs(batch).to_vec(), v.weights_and_grads().1.to_vec());
    let mut want = vec![0.0; grads.len()];
    for n in 0..batch {
        let mut o = one.view();
        o.set_input(&x[n * f0..][..f0]).unwrap();
        o.compute_grads(Loss::Xent, &y[n..n + 1]).unwrap();
        for (a, b) in out[n * 3..][..3].iter().zip(o.outputs(1)) {
            assert!(
                (a - b).abs() <= 1e-13 * (1.0 + b.abs()),
                "sample {n} output"
            );
        }
        for (w, g) in want.iter_mut().zip(o.weights_and_grads().1) {
            *w += g / batch as f64;
        }
    }
    let scale = want.iter().fold(0.0f64, |m, g| m.max(g.abs()));
    for (i, (g, w)) in grads.iter().zip(&want).enumerate() {
        assert!((g - w).abs() <= 1e-12 * scale, "weight {i}: {g} vs {w}");
    }
}

/// `train_step` takes the single-norm layers' sums of squares (dense layers and the 1 x 1
/// conv) while backward runs, part by part here: it must step exactly as `compute_grads`
/// then `step`, which measure the finished gradient.
#[test]
fn train_step_over_parts_steps_as_compute_grads_then_step() {
    let batch = 2 * CONV_PART + 5;
    let mut a = Net::new(&CNN, batch, 4);
    let mut b = Net::new(&CNN, batch, 4);
    let mut rng = SplitMix64::new(2);
    let agd = Agd::new();
    for _ in 0..3 {
        let x = gaussian(&mut rng, batch * 2 * 7 * 6);
        let y: Vec<usize> = (0..batch).map(|_| (rng.next_u64() % 3) as usize).collect();
        let mut va = a.view();
        va.set_input(&x).unwrap();
        let ra = va.train_step(&agd, Loss::Xent, &y).unwrap();
        let mut vb = b.view();
        vb.set_input(&x).unwrap();
        let (loss, correct) = vb.compute_grads(Loss::Xent, &y).unwrap();
        let rb = vb.step(&agd).unwrap();
        assert_eq!((ra.loss, ra.correct), (loss, correct));
        assert!(
            (ra.step.eta - rb.eta).abs() <= 1e-14 * rb.eta,
            "{ra:?} vs {rb:?}"
        );
        for (p, q) in a.w.iter().zip(&b.w) {
            assert!((p - q).abs() <= 1e-14 * (1.0 + q.abs()), "{p} vs {q}");
        }
    }
}

#[test]
fn a_dense_only_spec_is_the_dense_network_bit_for_bit() {
    // The same layers through NetMut / Agd::step and ConvNetMut / Agd::step_spec.
    let widths = [6, 5, 4, 3];
    const LAYERS: [LayerSpec; 3] = chain([6, 1, 1], [dense(5), dense(4), dense(3)]);
    let mut cnet = Net::new(&LAYERS, 4, 9);
    let mut w = cnet.w.clone();
    let mut g = vec![0.0; w.len()];
    let mut a = vec![0.0; agd_core::act_count(&widths, 4)];
    let mut d = vec![0.0; agd_core::delta_count(&widths, 4)];
    let mut dense = NetMut::new(&widths, 4, &mut w, &mut g, &mut a, &mut d).unwrap();
    let mut rng = SplitMix64::new(1);
    let agd = Agd::with_gain(0.8).unwrap();
    for _ in 0..5 {
        let x = gaussian(&mut rng, 4 * 6);
        let y: Vec<usize> = (0..4).map(|_| (rng.next_u64() % 3) as usize).collect();
        dense.set_input(&x).unwrap();
        let r1 = dense.train_step(&agd, Loss::Xent, &y).unwrap();
        let mut cv = cnet.view();
        cv.set_input(&x).unwrap();
        let r2 = cv.train_step(&agd, Loss::Xent, &y).unwrap();
        assert_eq!(r1, r2);
        let same = dense
            .weights()
            .iter()
            .zip(cv.weights())
            .all(|(p, q)| p.to_bits() == q.to_bits());
        assert!(same, "weights differ");
    }
}

fn frob(v: impl Iterator<Item = f64>) -> f64 {
    v.map(|x| x * x).sum::<f64>().sqrt()
}

#[test]
fn every_slice_moves_by_gain_eta_s_over_l_and_g_sums_slice_norms() {
    let mut net = Net::new(&CNN, 3, 21);
    let mut rng = SplitMix64::new(22);
    let x = gaussian(&mut rng, 3 * 2 * 7 * 6);
    let gain = 0.7;
    let agd = Agd::with_gain(gain).unwrap();
    let mut v = net.view();
    v.set_input(&x).unwrap();
    let before = v.weights().to_vec();
    v.compute_grads(Loss::Xent, &[0, 1, 2]).unwrap();
    let report = v.step(&agd).unwrap();
    let layout = v.layout();
    let depth = layout.depth() as f64;
    let mut g_want = 0.0;
    for k in 0..layout.depth() {
        let r = layout.weight_range(k);
        let positions = layout.layer(k).norm_count();
        let s: f64 = layout.scale(k);
        let grads = v.layer_grads(k).to_vec();
        let mut sum = 0.0;
        for p in 0..positions {
            // ||g[:, :, i, j]||_F, computed here from scratch.
            let n = frob(grads.iter().copied().skip(p).step_by(positions));
            assert!(
                (v.grad_norms(k)[p] - n).abs() <= 1e-14 * n,
                "layer {k} slice {p}"
            );
            sum += n;
            let moved = frob(
                v.weights()[r.clone()]
                    .iter()
                    .zip(&before[r.clone()])
                    .skip(p)
                    .step_by(positions)
                    .map(|(a, b)| a - b),
            );
            let want = gain * report.eta * s / depth;
            assert!(
                (moved - want).abs() <= 1e-12 * want,
                "layer {k} slice {p}: moved {moved}, want {want}"
            );
        }
        assert!((report.grad_norms[k] - sum).abs() <= 1e-14 * sum);
        g_want += s * sum;
    }
    g_want /= depth;
    assert!((report.g - g_want).abs() <= 1e-14 * g_want);
    assert!((report.eta - agd_core::agd::eta_from_g(g_want)).abs() <= 1e-15);
    // First layer's scale: sqrt(c_out/c_in)/sqrt(kh·kw) = sqrt(3/2)/3.
    assert!((layout.scale::<f64>(0) - (1.5f64).sqrt() / 3.0).abs() < 1e-16);
}

#[test]
fn a_zero_slice_stays_bit_for_bit_and_bad_gradients_change_nothing() {
    let layers = CNN;
    let layout = SpecLayout::new(&layers).unwrap();
    let mut rng = SplitMix64::new(3);
    let mut w = vec![0.0; layout.param_count()];
    init::orthogonal_spec(layout, &mut w, &mut rng);
    let mut g = gaussian(&mut rng, w.len());
    let mut norms = vec![0.0; layout.norm_count()];
    // Zero kernel position (1, 2) of layer 1 (a 3x3 kernel, so slice 5).
    let r = layout.weight_range(1);
    for gi in g[r.clone()].iter_mut().skip(5).step_by(9) {
        *gi = 0.0;
    }
    let before = w.clone();
    let agd = Agd::new();
    agd.step_spec(layout, &mut w, &g, &mut norms).unwrap();
    assert_eq!(norms[layout.norm_range(1)][5], 0.0);
    for (p, (a, b)) in w[r.clone()].iter().zip(&before[r.clone()]).enumerate() {
        if p % 9 == 5 {
            assert_eq!(a.to_bits(), b.to_bits(), "zero slice moved at {p}");
        } else {
            assert_ne!(a, b, "live slice did not move at {p}");
        }
    }
    // NaN or infinity in one conv entry: refused, nothing changes.
    for bad in [f64::NAN, f64::INFINITY] {
        let mut g2 = g.clone();
        g2[r.start + 3] = bad;
        let snapshot = w.clone();
        let err = agd.step_spec(layout, &mut w, &g2, &mut norms).unwrap_err();
        assert_eq!(err, Error::NonFiniteGradient { layer: 1 });
        assert!(
            w.iter()
                .zip(&snapshot)
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );
    }
    // All zero: G = η = 0 and nothing moves.
    let zeros = vec![0.0; w.len()];
    let snapshot = w.clone();
    let rep = agd.step_spec(layout, &mut w, &zeros, &mut norms).unwrap();
    assert_eq!((rep.g, rep.eta), (0.0, 0.0));
    assert!(
        w.iter()
            .zip(&snapshot)
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
    // Wrong norm buffer: refused.
    let mut short = vec![0.0; norms.len() - 1];
    assert!(matches!(
        agd.step_spec(layout, &mut w, &g, &mut short),
        Err(Error::BufferSize {
            buffer: "norms",
            ..
        })
    ));
}

#[test]
fn init_makes_every_kernel_slice_semi_orthogonal_times_s() {
    // Wide (c_out < c_in), tall (c_out > c_in) and square slices, in f64 and f32.
    const LAYERS: [LayerSpec; 4] = chain(
        [6, 5, 5],
        [
            conv(3, 3, 1, 1),
            conv(7, 2, 1, 0),
            conv(7, 3, 2, 1),
            dense(4),
        ],
    );
    let layout = SpecLayout::new(&LAYERS).unwrap();
    let mut w = vec![0.0f64; layout.param_count()];
    init::orthogonal_spec(layout, &mut w, &mut SplitMix64::new(4));
    let mut w32 = vec![0.0f32; layout.param_count()];
    init::orthogonal_spec(layout, &mut w32, &mut SplitMix64::new(4));
    for k in 0..3 {
        let LayerSpec::Conv(c) = *layout.layer(k) else {
            unreachable!()
        };
        let s: f64 = c.scale();
        let wk = &w[layout.weight_range(k)];
        let w32k = &w32[layout.weight_range(k)];
        let positions = c.kernel_positions();
        let entry = |p: usize, o: usize, i: usize| (o * c.c_in + i) * positions + p;
        let mut slices = Vec::new();
        for p in 0..positions {
            // Gram matrix of the short side must be s² I.
            let (short, long) = (c.c_out.min(c.c_in), c.c_out.max(c.c_in));
            let get = |a: usize, e: usize| {
                if c.c_out <= c.c_in {
                    entry(p, a, e)
                } else {
                    entry(p, e, a)
                }
            };
            let mut worst = 0.0f64;
            let mut worst32 = 0.0f64;
            for a in 0..short {
                for b in 0..short {
                    let dot: f64 = (0..long).map(|e| wk[get(a, e)] * wk[get(b, e)]).sum();
                    let dot32: f64 = (0..long)
                        .map(|e| w32k[get(a, e)] as f64 * w32k[get(b, e)] as f64)
                        .sum();
                    let want = if a == b { s * s } else { 0.0 };
                    worst = worst.max((dot - want).abs());
                    worst32 = worst32.max((dot32 - want).abs());
                }
            }
            assert!(worst < 1e-14, "layer {k} slice {p}: {worst:e}");
            assert!(worst32 < 1e-6, "f32 layer {k} slice {p}: {worst32:e}");
            slices.push(
                (0..c.c_out * c.c_in)
                    .map(|e| wk[entry(p, e / c.c_in, e % c.c_in)])
                    .collect::<Vec<_>>(),
            );
        }
        // Independent draws: no two slices alike.
        for a in 0..positions {
            for b in a + 1..positions {
                assert_ne!(slices[a], slices[b], "layer {k}: slices {a} and {b} equal");
            }
        }
    }
}

#[test]
fn layers_that_do_not_fit_are_refused() {
    let mut too_big = [conv(2, 5, 1, 0), dense(3)];
    assert_eq!(
        spec::try_chain([1, 4, 4], &mut too_big),
        Err(Error::InvalidLayer { layer: 0 })
    );
    let mut zero_stride = [conv(2, 3, 0, 1)];
    assert_eq!(
        spec::try_chain([1, 4, 4], &mut zero_stride),
        Err(Error::InvalidLayer { layer: 0 })
    );
    let mismatched = [
        LayerSpec::Dense {
            inputs: 4,
            outputs: 5,
        },
        LayerSpec::Dense {
            inputs: 6,
            outputs: 2,
        },
    ];
    assert_eq!(
        SpecLayout::new(&mismatched).unwrap_err(),
        Error::InvalidLayer { layer: 1 }
    );
    assert_eq!(SpecLayout::new(&[]).unwrap_err(), Error::InvalidWidths);

    // Sizes beyond usize are refused, not wrapped (nor panicking in debug builds): a padding
    // whose padded input overflows, channels whose unfolding overflows, a dense layer's
    // inputs, the weights summed over the layers.
    let mut padded = [conv(2, 3, 1, usize::MAX / 2), dense(3)];
    assert_eq!(
        spec::try_chain([1, 4, 4], &mut padded).and_then(|()| SpecLayout::new(&padded).map(|_| ())),
        Err(Error::TooLarge)
    );
    let huge = 1usize << 40;
    let mut wide = [conv(huge, 3, 1, 1), dense(3)];
    assert_eq!(
        spec::try_chain([huge, 4, 4], &mut wide),
        Err(Error::TooLarge)
    );
    let wide = Conv2d {
        c_in: huge,
        c_out: huge,
        kh: 3,
        kw: 3,
        h: 4,
        w: 4,
        stride: 1,
        pad: 1,
    };
    assert_eq!(
        SpecLayout::new(&[LayerSpec::Conv(wide)]).unwrap_err(),
        Error::TooLarge
    );
    let mut flat = [dense(3)];
    assert_eq!(
        spec::try_chain([1 << 40, 1 << 20, 1 << 10], &mut flat),
        Err(Error::TooLarge)
    );
    let d = |inputs, outputs| LayerSpec::Dense { inputs, outputs };
    let summed = [d(1 << 62, 2), d(2, 1 << 62)];
    assert_eq!(SpecLayout::new(&summed).unwrap_err(), Error::TooLarge);
    // Weights of 2^63 fit, but the scratch that holds them twice would not.
    let half = Conv2d {
        c_in: 1 << 31,
        c_out: 1 << 32,
        kh: 1,
        kw: 1,
        h: 1,
        w: 1,
        stride: 1,
        pad: 0,
    };
    assert!(!half.fits());
    assert_eq!(
        SpecLayout::new(&[LayerSpec::Conv(half)]).unwrap_err(),
        Error::TooLarge
    );
    // As large as still fits: accepted.
    assert!(SpecLayout::new(&[d(1 << 40, 2)]).is_ok());
    let c = Conv2d {
        c_in: 1,
        c_out: 1,
        kh: 3,
        kw: 3,
        h: 1 << 20,
        w: 1 << 20,
        stride: 1,
        pad: 1,
    };
    assert!(c.fits() && c.is_valid());
    assert!(
        !Conv2d {
            pad: usize::MAX,
            ..c
        }
        .fits()
    );
}

agd_core::conv_network!(Tiny: f32 = [1, 6, 6] => [conv(4, 3, 1, 1), conv(6, 3, 2, 1), dense(3)], batch 6);

#[test]
fn a_static_conv_network_learns_a_fixed_batch() {
    let mut net = Tiny::new();
    assert_eq!(Tiny::PARAMS, 4 * 9 + 6 * 4 * 9 + 3 * 6 * 3 * 3);
    let mut v = net.view();
    v.init_orthogonal(&mut SplitMix64::new(8));
    let mut rng = SplitMix64::new(9);
    let x: Vec<f32> = gaussian(&mut rng, 6 * 36)
        .iter()
        .map(|&a| a as f32)
        .collect();
    let y = [0, 1, 2, 0, 1, 2];
    v.set_input(&x).unwrap();
    let first = v.train_step(&Agd::new(), Loss::Xent, &y).unwrap();
    let mut last = first.clone();
    for _ in 0..30 {
        last = v.train_step(&Agd::new(), Loss::Xent, &y).unwrap();
    }
    assert!(
        last.loss < 0.5 * first.loss,
        "loss {} -> {}",
        first.loss,
        last.loss
    );
    assert_eq!(last.correct, 6);
}
