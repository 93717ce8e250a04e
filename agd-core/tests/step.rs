//! The AGD step: its identities, the zero-gradient rule, and refusals that leave every weight
//! bit-identical.

use agd_core::agd::eta_from_g;
use agd_core::{Agd, Error, Layout, Loss, NetMut, SplitMix64, init};
use agd_simd::nrm2;
use rand_core::Rng;

struct Net {
    widths: Vec<usize>,
    cap: usize,
    w: Vec<f64>,
    g: Vec<f64>,
    a: Vec<f64>,
    d: Vec<f64>,
}

impl Net {
    fn new(widths: &[usize], cap: usize, seed: u64) -> Self {
        let layout = Layout::new(widths).unwrap();
        let mut w = vec![0.0; layout.param_count()];
        init::orthogonal(layout, &mut w, &mut SplitMix64::new(seed));
        Net {
            widths: widths.to_vec(),
            cap,
            g: vec![0.0; w.len()],
            w,
            a: vec![0.0; agd_core::act_count(widths, cap)],
            d: vec![0.0; agd_core::delta_count(widths, cap)],
        }
    }
    fn view(&mut self) -> NetMut<'_, f64> {
        NetMut::new(
            &self.widths,
            self.cap,
            &mut self.w,
            &mut self.g,
            &mut self.a,
            &mut self.d,
        )
        .unwrap()
    }
}

fn random_batch(
    rng: &mut SplitMix64,
    n: usize,
    d: usize,
    classes: usize,
) -> (Vec<f64>, Vec<usize>) {
    let x = (0..n * d).map(|_| init::gaussian_pair(rng).0).collect();
    let y = (0..n)
        .map(|_| (rng.next_u64() % classes as u64) as usize)
        .collect();
    (x, y)
}

#[test]
fn eta_satisfies_its_defining_identity() {
    // e^η (e^η − 1) = G, from η = ln((1 + sqrt(1 + 4G))/2).
    for g in [
        0.0,
        1e-300,
        1e-30,
        1e-12,
        1e-3,
        0.5,
        1.0,
        7.3,
        1e3,
        1e6,
        1.5e6,
        1e12,
        1e100,
        1e300,
        f64::MAX,
    ] {
        let eta = eta_from_g(g);
        assert!(eta.is_finite() && eta >= 0.0, "G = {g}: η = {eta}");
        if g > 0.0 && g < 1e150 {
            // e^η − 1 via exp_m1, or the check itself cancels for tiny η.
            let back = eta.exp() * eta.exp_m1();
            assert!((back - g).abs() <= 1e-9 * g, "G = {g}: e^η(e^η−1) = {back}");
        }
        if g > 1e20 {
            assert!((eta - 0.5 * g.ln()).abs() < 1e-9, "large G: η ≈ ½ ln G");
        }
    }
    assert_eq!(eta_from_g(0.0), 0.0);
    assert!(eta_from_g(f32::MAX).is_finite());
}

#[test]
fn every_update_has_norm_gain_eta_scale_over_depth() {
    let mut rng = SplitMix64::new(5);
    for (gain, widths) in [
        (1.0, vec![6, 9, 4]),
        (0.5, vec![5, 5, 5, 3]),
        (2.0, vec![3, 12, 2]),
    ] {
        let mut net = Net::new(&widths, 4, 1);
        let (x, y) = random_batch(&mut rng, 4, widths[0], *widths.last().unwrap());
        let before = net.w.clone();
        let mut v = net.view();
        v.set_input(&x).unwrap();
        let agd = Agd::with_gain(gain).unwrap();
        let r = v.train_step(&agd, Loss::Xent, &y).unwrap();
        let layout = v.layout();
        let depth = layout.depth() as f64;
        let mut g_sum = 0.0;
        for k in 0..layout.depth() {
            let range = layout.weight_range(k);
            let diff: Vec<f64> = v.weights()[range.clone()]
                .iter()
                .zip(&before[range])
                .map(|(a, b)| a - b)
                .collect();
            let want = gain * r.step.eta * layout.scale::<f64>(k) / depth;
            let got = nrm2(&diff);
            assert!(
                (got - want).abs() <= 1e-12 * want,
                "layer {k}: |ΔW| = {got}, want {want}"
            );
            assert!(
                (r.step.grad_norms[k] - nrm2(v.layer_grads(k))).abs()
                    <= 1e-15 * r.step.grad_norms[k]
            );
            g_sum += layout.scale::<f64>(k) * r.step.grad_norms[k];
        }
        assert!((r.step.g - g_sum / depth).abs() <= 1e-15 * r.step.g);
        let e = r.step.eta.exp();
        assert!((e * (e - 1.0) - r.step.g).abs() <= 1e-12 * r.step.g);
    }
}

#[test]
fn a_zero_gradient_layer_stays_bit_identical() {
    // Zero the last layer: the output is 0, so the hidden layers get exactly zero gradient.
    let widths = [4, 6, 6, 3];
    let mut net = Net::new(&widths, 2, 3);
    let layout = Layout::new(&widths).unwrap();
    let last = layout.weight_range(2);
    net.w[last.clone()].fill(0.0);
    let before = net.w.clone();
    let mut v = net.view();
    v.set_input(&[1.0, -2.0, 0.5, 3.0, 0.1, 0.2, -0.3, 0.4])
        .unwrap();
    let r = v.train_step(&Agd::new(), Loss::Mse, &[0, 2]).unwrap();
    assert_eq!(r.step.grad_norms[0], 0.0);
    assert_eq!(r.step.grad_norms[1], 0.0);
    assert!(r.step.grad_norms[2] > 0.0);
    let bits = |w: &[f64]| w.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let w = v.weights();
    assert_eq!(bits(&w[..last.start]), bits(&before[..last.start]));
    assert_ne!(bits(&w[last.clone()]), bits(&before[last]));
    assert!(w.iter().all(|x| x.is_finite()));
}

#[test]
fn non_finite_input_or_gradient_is_refused_and_nothing_moves() {
    let widths = [3, 5, 2];
    let mut net = Net::new(&widths, 2, 8);
    let before = net.w.clone();
    let mut v = net.view();
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        v.set_input(&[1.0, bad, 0.0, 1.0, 1.0, 1.0]).unwrap();
        let err = v.train_step(&Agd::new(), Loss::Xent, &[0, 1]).unwrap_err();
        assert_eq!(err, Error::NonFiniteInput { sample: 0 }, "input {bad}");
        assert_eq!(v.weights(), &before[..]);
    }
    // A gradient with a NaN handed straight to the step.
    let layout = v.layout();
    let mut grads = vec![0.1; layout.param_count()];
    grads[layout.weight_range(1).start + 3] = f64::NAN;
    let mut w = before.clone();
    assert_eq!(
        Agd::new().step(layout, &mut w, &grads).unwrap_err(),
        Error::NonFiniteGradient { layer: 1 }
    );
    assert_eq!(w, before);
}

#[test]
fn bad_arguments_are_typed_errors() {
    let widths = [3, 5, 2];
    let mut net = Net::new(&widths, 2, 8);
    let mut v = net.view();
    v.set_input(&[0.0; 6]).unwrap();
    assert_eq!(
        v.set_input(&[0.0; 9]).unwrap_err(),
        Error::BatchTooLarge {
            batch: 3,
            capacity: 2
        }
    );
    assert!(matches!(
        v.set_input(&[0.0; 4]).unwrap_err(),
        Error::BufferSize { .. }
    ));
    v.forward(2).unwrap();
    assert_eq!(
        v.loss_grad(Loss::Xent, &[0, 2]).unwrap_err(),
        Error::TargetOutOfRange {
            sample: 1,
            target: 2,
            classes: 2
        }
    );
    assert_eq!(v.forward(0).unwrap_err(), Error::EmptyBatch);
    assert_eq!(Agd::with_gain(0.0).unwrap_err(), Error::InvalidGain);
    assert_eq!(Agd::with_gain(f64::NAN).unwrap_err(), Error::InvalidGain);
    assert_eq!(Layout::new(&[3]).unwrap_err(), Error::InvalidWidths);
    assert_eq!(Layout::new(&[3, 0, 2]).unwrap_err(), Error::InvalidWidths);
    // Sizes beyond usize are refused, not wrapped: the weights of one layer, their sum over
    // the layers, and the sum of the widths.
    let big = 1usize << 33;
    assert_eq!(Layout::new(&[big, big, 2]).unwrap_err(), Error::TooLarge);
    assert_eq!(
        Layout::new(&[1 << 62, 2, 1 << 62]).unwrap_err(),
        Error::TooLarge
    );
    assert_eq!(
        Layout::new(&[usize::MAX, 1, usize::MAX]).unwrap_err(),
        Error::TooLarge
    );
    assert!(Layout::new(&[big, 1, 2]).is_ok());
    let (mut w, mut g, mut a, mut d) = (vec![0.0; 5], vec![], vec![0.0; 20], vec![0.0; 14]);
    assert!(matches!(
        NetMut::new(&widths, 2, &mut w, &mut g, &mut a, &mut d).unwrap_err(),
        Error::BufferSize {
            buffer: "weights",
            ..
        }
    ));
}

#[test]
fn training_one_batch_drives_the_loss_down() {
    let widths = [8, 32, 32, 4];
    let mut net = Net::new(&widths, 16, 2);
    let mut rng = SplitMix64::new(4);
    let (x, y) = random_batch(&mut rng, 16, 8, 4);
    let mut v = net.view();
    v.set_input(&x).unwrap();
    let first = v.train_step(&Agd::new(), Loss::Xent, &y).unwrap().loss;
    let mut last = first;
    for _ in 0..200 {
        last = v.train_step(&Agd::new(), Loss::Xent, &y).unwrap().loss;
    }
    assert!(last < 0.1 * first, "loss {first} → {last}");
}

#[test]
fn eta_stays_accurate_for_tiny_g_in_f32() {
    // The formula as written gives η = 0 in f32 for G < 3e-8: training would stall.
    for g in [1e-30f32, 1e-12, 1e-8, 3e-8, 1e-4] {
        let eta = eta_from_g(g);
        let back = (eta as f64).exp() * (eta as f64).exp_m1();
        assert!(
            (back - g as f64).abs() <= 1e-6 * g as f64,
            "G = {g}: η = {eta}"
        );
    }
}

/// `train_step` takes the gradient norms from sums of squares formed with the gradients
/// (`matmul_tn_sum_sq`); `compute_grads` then `Agd::step` forms them in a pass of their own.
/// Both must give the same step up to rounding, on the blocked and the unpacked products
/// (one- and two-row or one-column gradients, a batch of one).
#[test]
fn train_step_agrees_with_compute_grads_then_step() {
    let mut rng = SplitMix64::new(11);
    for (widths, batch) in [
        (vec![6, 9, 4], 4),
        (vec![1, 2, 1, 3], 3),
        (vec![20, 33, 17, 5], 16),
        (vec![7, 5, 3], 1),
    ] {
        let mut fused = Net::new(&widths, batch, 3);
        let mut plain = Net::new(&widths, batch, 3);
        for _ in 0..3 {
            let (x, y) = random_batch(&mut rng, batch, widths[0], *widths.last().unwrap());
            let mut v = fused.view();
            v.set_input(&x).unwrap();
            let r1 = v.train_step(&Agd::new(), Loss::Xent, &y).unwrap();
            let mut v = plain.view();
            v.set_input(&x).unwrap();
            let (loss, _) = v.compute_grads(Loss::Xent, &y).unwrap();
            let (layout, w, g) = v.step_parts();
            let r2 = Agd::new().step(layout, w, g).unwrap();
            assert_eq!(r1.loss.to_bits(), loss.to_bits(), "{widths:?}");
            for (a, b) in r1.step.grad_norms.iter().zip(&r2.grad_norms) {
                assert!((a - b).abs() <= 1e-14 * b, "{widths:?}: norm {a} vs {b}");
            }
            assert!((r1.step.eta - r2.eta).abs() <= 1e-14 * r2.eta);
            for (a, b) in fused.w.iter().zip(&plain.w) {
                assert!((a - b).abs() <= 1e-13, "{widths:?}: weight {a} vs {b}");
            }
            // Carry on from the same weights.
            plain.w.copy_from_slice(&fused.w);
        }
    }
}
