//! Numerics that cannot blow up: norms over 60+ decades, η for every finite G, refused steps
//! that leave every weight bit-identical, and a property test over random networks, scales
//! and gains asserting that no weight ever becomes NaN or infinite.

use agd_core::agd::eta_from_g;
use agd_core::{Agd, Element, Error, Layout, Loss, NetMut, SplitMix64, act_count, delta_count};
use proptest::prelude::*;

fn bits<T: Element>(w: &[T]) -> Vec<u64> {
    w.iter().map(|x| x.to_bits_u64()).collect()
}

/// ||x||_2 in f64 with scaling, as the reference for the step's norms.
fn norm_f64(x: &[f64]) -> f64 {
    let m = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if m == 0.0 {
        return 0.0;
    }
    m * x.iter().map(|v| (v / m) * (v / m)).sum::<f64>().sqrt()
}

/// The step's gradient norms for entries around `10^e`, against an f64 reference.
fn norms_over_decades<T: Element>(lo: i32, hi: i32) {
    let widths = [7usize, 5, 3];
    let layout = Layout::new(&widths).unwrap();
    let p = layout.param_count();
    for e in lo..=hi {
        let scale = 10f64.powi(e);
        let g64: Vec<f64> = (0..p)
            .map(|i| scale * (1.0 + 0.5 * ((i as f64) * 0.7).sin()))
            .collect();
        let grads: Vec<T> = g64.iter().map(|&v| T::from_f64(v)).collect();
        let mut w: Vec<T> = (0..p).map(|i| T::from_f64(0.1 * i as f64)).collect();
        let report = Agd::new().step(layout, &mut w, &grads).unwrap();
        for k in 0..2 {
            let r = layout.weight_range(k);
            // Reference from the values the step actually saw (rounded to T).
            let exact = norm_f64(&grads[r].iter().map(|v| v.to_f64()).collect::<Vec<_>>());
            let got = report.grad_norms[k].to_f64();
            let rel = ((got - exact) / exact).abs();
            assert!(
                got.is_finite() && rel <= 8.0 * T::EPSILON.to_f64(),
                "{}: 1e{e}, layer {k}: {got} vs {exact} (rel {rel:e})",
                T::NAME
            );
        }
        assert!(report.g.is_finite() && report.eta.is_finite());
        assert!(w.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn norms_are_finite_and_accurate_from_1e_minus30_to_1e30() {
    // f32: 1e-30 .. 1e30 as asked, and on to its subnormals and near its maximum.
    norms_over_decades::<f32>(-30, 30);
    norms_over_decades::<f32>(-37, 36);
    norms_over_decades::<f64>(-300, 300);
}

#[test]
fn subnormal_gradients_keep_their_norm() {
    let widths = [4usize, 2];
    let layout = Layout::new(&widths).unwrap();
    let grads = [1e-44f32, -2e-44, 3e-44, 0.0, 1e-45, 0.0, 5e-45, -1e-45];
    let exact = norm_f64(&grads.iter().map(|&v| v as f64).collect::<Vec<_>>());
    let mut w = [1.0f32; 8];
    let r = Agd::new().step(layout, &mut w, &grads).unwrap();
    // The norm is itself subnormal: exact to half a step of the subnormal grid (2^-149).
    let err = (r.grad_norms[0] as f64 - exact).abs();
    assert!(
        err <= 0.5 * 2f64.powi(-149) + 1e-6 * exact,
        "{} vs {exact}",
        r.grad_norms[0]
    );
    assert!(w.iter().all(|v| v.is_finite()));
}

/// `e^η (e^η − 1) = G`, relative, for G from the smallest normal number to the largest.
fn eta_identity<T: Element>() {
    let eps = T::EPSILON.to_f64();
    let lo = T::MIN_POSITIVE.to_f64().log10().ceil() as i32;
    let hi = T::MAX.to_f64().log10().floor() as i32;
    let mut gs: Vec<f64> = Vec::new();
    for e in lo..=hi {
        for m in [1.0, 2.5, 7.0] {
            gs.push(m * 10f64.powi(e));
        }
    }
    // Around the branch points, and the ends.
    gs.extend([0.25, 0.2499999, 0.2500001, 1e6, 999_999.9, 1_000_000.1]);
    gs.retain(|&g| g <= T::MAX.to_f64());
    gs.push(T::MAX.to_f64());
    gs.push(T::MIN_POSITIVE.to_f64());
    for g in gs {
        let g_t = T::from_f64(g);
        let eta = eta_from_g(g_t);
        assert!(eta.is_finite() && eta >= T::ZERO, "{}: G={g}", T::NAME);
        let eta = eta.to_f64();
        let g = g_t.to_f64();
        let back = eta.exp() * eta.exp_m1();
        let rel = ((back - g) / g).abs();
        assert!(
            rel <= 8.0 * eps * (1.0 + 2.0 * eta),
            "{}: G={g:e}: eta={eta}, e^eta(e^eta-1)={back:e}, rel {rel:e}",
            T::NAME
        );
    }
    assert_eq!(eta_from_g(T::ZERO), T::ZERO);
}

#[test]
fn eta_satisfies_its_defining_identity_for_every_finite_g() {
    eta_identity::<f32>();
    eta_identity::<f64>();
}

#[test]
fn eta_of_huge_g_is_half_ln_g() {
    for g in [1e7, 1e20, 1e100, f64::MAX] {
        let eta = eta_from_g(g);
        // η = ½ ln G + ln(1/(2√G) + sqrt(1 + 1/(4G))) = ½ ln G + 1/(2√G) + O(1/G).
        let approx = 0.5 * g.ln() + 0.5 / g.sqrt();
        assert!((eta - approx).abs() <= 1e-15 * eta + 1.0 / g, "G={g:e}");
    }
    let eta = eta_from_g(f32::MAX);
    assert!((eta as f64 - 0.5 * (f32::MAX as f64).ln()).abs() < 1e-5);
}

proptest! {
    #[test]
    fn eta_identity_at_random_g(exp in -300.0f64..308.0, m in 1.0f64..10.0) {
        let g = m * 10f64.powf(exp);
        prop_assume!(g.is_finite() && g >= f64::MIN_POSITIVE);
        let eta = eta_from_g(g);
        let back = eta.exp() * eta.exp_m1();
        prop_assert!(((back - g) / g).abs() <= 8.0 * f64::EPSILON * (1.0 + 2.0 * eta));
    }
}

/// Owned buffers for a run-time-sized network.
struct Bufs<T> {
    widths: Vec<usize>,
    cap: usize,
    w: Vec<T>,
    g: Vec<T>,
    a: Vec<T>,
    d: Vec<T>,
}

impl<T: Element> Bufs<T> {
    fn new(widths: &[usize], cap: usize, seed: u64) -> Self {
        let p = agd_core::param_count(widths);
        let mut b = Bufs {
            widths: widths.to_vec(),
            cap,
            w: vec![T::ZERO; p],
            g: vec![T::ZERO; p],
            a: vec![T::ZERO; act_count(widths, cap)],
            d: vec![T::ZERO; delta_count(widths, cap)],
        };
        b.view().init_orthogonal(&mut SplitMix64::new(seed));
        b
    }

    fn view(&mut self) -> NetMut<'_, T> {
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

/// Runs a train step and checks the contract: Ok with finite weights, or Err with every
/// weight bit-identical.
fn checked_step<T: Element>(
    b: &mut Bufs<T>,
    agd: &Agd<T>,
    loss: Loss,
    input: &[T],
    targets: &[usize],
) -> Result<(), Error> {
    checked_step_with(b, agd, loss, input, targets, false)
}

/// [`checked_step`] with the standard or the buffer-free step.
fn checked_step_with<T: Element>(
    b: &mut Bufs<T>,
    agd: &Agd<T>,
    loss: Loss,
    input: &[T],
    targets: &[usize],
    buffer_free: bool,
) -> Result<(), Error> {
    let before = bits(&b.w);
    let mut v = b.view();
    v.set_input(input).unwrap();
    let r = if buffer_free {
        v.train_step_buffer_free(agd, loss, targets)
    } else {
        v.train_step(agd, loss, targets)
    };
    match r {
        Ok(_) => assert!(b.w.iter().all(|x| x.is_finite()), "non-finite weight"),
        Err(e) => assert_eq!(bits(&b.w), before, "{e:?} changed weights"),
    }
    r.map(|_| ())
}

#[test]
fn non_finite_input_is_refused_with_weights_unchanged() {
    let mut b = Bufs::<f32>::new(&[3, 4, 2], 2, 1);
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        for loss in [Loss::Xent, Loss::Mse] {
            let input = [0.5, 0.1, -0.3, 1.0, bad, 2.0];
            assert_eq!(
                checked_step(&mut b, &Agd::new(), loss, &input, &[0, 1]),
                Err(Error::NonFiniteInput { sample: 1 })
            );
        }
    }
    // Evaluation refuses it too.
    let mut v = b.view();
    v.set_input(&[f32::NAN, 0.0, 0.0]).unwrap();
    assert_eq!(
        v.forward(1).err(),
        Some(Error::NonFiniteInput { sample: 0 })
    );
}

#[test]
fn non_finite_loss_is_refused_with_weights_unchanged() {
    // Finite inputs whose square loss overflows f32.
    let mut b = Bufs::<f32>::new(&[3, 4, 2], 1, 2);
    assert_eq!(
        checked_step(&mut b, &Agd::new(), Loss::Mse, &[1e20, -1e20, 1e20], &[0]),
        Err(Error::NonFiniteLoss)
    );
    // Finite weights and inputs whose outputs overflow to infinity inside the forward pass.
    b.w.fill(1e30);
    assert_eq!(
        checked_step(&mut b, &Agd::new(), Loss::Xent, &[1e10, 1e10, 1e10], &[0]),
        Err(Error::NonFiniteLoss)
    );
    let mut b = Bufs::<f64>::new(&[3, 4, 2], 1, 2);
    b.w.fill(1.0);
    assert_eq!(
        checked_step(
            &mut b,
            &Agd::new(),
            Loss::Mse,
            &[1e160, 1e160, -1e160],
            &[1]
        ),
        Err(Error::NonFiniteLoss)
    );
}

#[test]
fn non_finite_gradient_is_refused_with_weights_unchanged() {
    let widths = [2usize, 3, 2];
    let layout = Layout::new(&widths).unwrap();
    let w0: Vec<f32> = (0..12).map(|i| i as f32 * 0.25 - 1.0).collect();
    let cases: [(usize, f32, Error); 4] = [
        (0, f32::NAN, Error::NonFiniteGradient { layer: 0 }),
        (7, f32::INFINITY, Error::NonFiniteGradient { layer: 1 }),
        (11, f32::NEG_INFINITY, Error::NonFiniteGradient { layer: 1 }),
        // Finite entries whose norm overflows.
        (usize::MAX, 3e38, Error::NonFiniteGradient { layer: 0 }),
    ];
    for (at, bad, err) in cases {
        let mut g = vec![0.5f32; 12];
        if at == usize::MAX {
            g[..6].fill(bad);
        } else {
            g[at] = bad;
        }
        let mut w = w0.clone();
        assert_eq!(Agd::new().step(layout, &mut w, &g), Err(err));
        assert_eq!(bits(&w), bits(&w0));
    }
    // Every layer's norm finite, but G overflows.
    let mut g = vec![0.0f32; 12];
    g[0] = 3e38;
    g[6] = 3e38;
    let mut w = w0.clone();
    assert_eq!(
        Agd::new().step(layout, &mut w, &g),
        Err(Error::NonFiniteStep)
    );
    assert_eq!(bits(&w), bits(&w0));
}

#[test]
fn a_step_never_overflows_a_weight() {
    let layout = Layout::new(&[1, 1]).unwrap();
    let m = f32::MAX;
    // Near f32::MAX with the reference gain: the update rounds away, weights stay finite.
    let mut w = [m];
    Agd::new().step(layout, &mut w, &[-1.0]).unwrap();
    assert_eq!(w, [m]);
    // A gain that would carry 0.9·MAX past MAX: refused, unchanged.
    let eta = eta_from_g(1.0f32);
    let agd = Agd::with_gain(0.2 * m / eta).unwrap();
    let mut w = [0.9 * m];
    assert_eq!(
        agd.step(layout, &mut w, &[-1.0]),
        Err(Error::WeightOverflow { layer: 0 })
    );
    assert_eq!(w, [0.9 * m]);
    // The same gain from small weights is fine.
    let mut w = [1.0];
    agd.step(layout, &mut w, &[-1.0]).unwrap();
    assert!(w[0].is_finite() && w[0] > 0.19 * m);
    // A gain so large that gain·η overflows.
    let agd = Agd::with_gain(m).unwrap();
    let mut w = [1.0];
    assert_eq!(
        agd.step(layout, &mut w, &[-5.0]),
        Err(Error::WeightOverflow { layer: 0 })
    );
    assert_eq!(w, [1.0]);
}

#[test]
fn a_tiny_layer_norm_next_to_a_huge_g_stays_finite() {
    // Layer 1's gradient norm is a normal f32 (5e-38), so s/n = 2e37 is finite, but
    // (η/L)·(s/n) overflows because layer 0 makes G ~ 1e34 (η ≈ 39). The step must divide
    // entry by entry instead of multiplying by an infinite coefficient.
    let layout = Layout::new(&[1, 1, 1]).unwrap();
    let mut w = [1.0f32, 1.0];
    let r = Agd::new().step(layout, &mut w, &[1e34, 5e-38]).unwrap();
    assert!(r.eta > 38.0);
    assert!(w.iter().all(|v| v.is_finite()), "{w:?}");
    // Layer 1 moved by η·s/L in the gradient's direction, like any other layer.
    assert!((w[1] as f64 - (1.0 - r.eta as f64 / 2.0)).abs() < 1e-5);
}

#[derive(Debug, Clone)]
struct Case {
    widths: Vec<usize>,
    batch: usize,
    seed: u64,
    input_scale: f64,
    weight_scale: f64,
    gain: f64,
    mse: bool,
    f64_elems: bool,
    buffer_free: bool,
    nan_at: Option<usize>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::vec(1usize..6, 2..5),
        1usize..5,
        any::<u64>(),
        prop::sample::select(vec![1e-20, 1e-3, 1.0, 1e3, 1e20]),
        prop::sample::select(vec![1.0, 1e-20, 1e15, 1e30, 1e37]),
        prop::sample::select(vec![1.0, 0.1, 10.0, 1e6, 1e30, 1e38]),
        (any::<bool>(), any::<bool>(), any::<bool>()),
        prop::option::weighted(0.1, 0usize..40),
    )
        .prop_map(
            |(widths, batch, seed, input_scale, weight_scale, gain, flags, nan_at)| Case {
                widths,
                batch,
                seed,
                input_scale,
                weight_scale,
                gain,
                mse: flags.0,
                f64_elems: flags.1,
                buffer_free: flags.2,
                nan_at,
            },
        )
}

fn run_case<T: Element>(c: &Case) -> (usize, usize) {
    let mut b = Bufs::<T>::new(&c.widths, c.batch, c.seed);
    for w in b.w.iter_mut() {
        *w *= T::from_f64(c.weight_scale);
    }
    let agd = Agd::with_gain(T::from_f64(c.gain)).unwrap();
    let loss = if c.mse { Loss::Mse } else { Loss::Xent };
    let d0 = c.widths[0];
    let classes = *c.widths.last().unwrap();
    let mut rng = SplitMix64::new(c.seed ^ 0xA5A5);
    let (mut ok, mut refused) = (0, 0);
    for step in 0..25 {
        let mut input: Vec<T> = (0..c.batch * d0)
            .map(|_| {
                let (z, _) = agd_core::init::gaussian_pair(&mut rng);
                T::from_f64(z * c.input_scale)
            })
            .collect();
        if let Some(i) = c.nan_at
            && step == 3
        {
            let n = input.len();
            input[i % n] = T::from_f64(f64::NAN);
        }
        let targets: Vec<usize> = (0..c.batch)
            .map(|n| (c.seed as usize).wrapping_add(n * 7 + step) % classes)
            .collect();
        match checked_step_with(&mut b, &agd, loss, &input, &targets, c.buffer_free) {
            Ok(()) => ok += 1,
            Err(_) => refused += 1,
        }
    }
    (ok, refused)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// No weight ever becomes NaN or infinite: every step (standard or buffer-free) either
    /// succeeds with finite weights or refuses with every weight bit-identical (checked
    /// inside `checked_step_with`).
    #[test]
    fn weights_never_become_non_finite(c in case()) {
        let (ok, refused) = if c.f64_elems { run_case::<f64>(&c) } else { run_case::<f32>(&c) };
        prop_assert_eq!(ok + refused, 25);
    }
}

#[test]
fn the_property_test_exercises_both_outcomes() {
    // Deterministic cases that make sure both branches of the contract are really reached.
    let base = Case {
        widths: vec![4, 5, 3],
        batch: 3,
        seed: 11,
        input_scale: 1.0,
        weight_scale: 1.0,
        gain: 1.0,
        mse: false,
        f64_elems: false,
        buffer_free: false,
        nan_at: None,
    };
    assert_eq!(run_case::<f32>(&base), (25, 0));
    let huge = Case {
        input_scale: 1e20,
        mse: true,
        ..base.clone()
    };
    assert_eq!(run_case::<f32>(&huge).0, 0);
    let nan = Case {
        nan_at: Some(5),
        ..base.clone()
    };
    assert_eq!(run_case::<f32>(&nan), (24, 1));
    let gain = Case {
        gain: 1e30,
        weight_scale: 1e30,
        ..base
    };
    let (_, refused) = run_case::<f32>(&gain.clone());
    assert!(refused > 0);
    // The same through the buffer-free step.
    let bf = Case {
        buffer_free: true,
        ..gain
    };
    let (_, refused) = run_case::<f32>(&bf);
    assert!(refused > 0);
}

#[test]
fn a_conv_step_never_overflows_a_weight() {
    use agd_core::spec::{LayerSpec, SpecLayout, chain, conv, dense};
    const LAYERS: [LayerSpec; 2] = chain([1, 3, 3], [conv(2, 3, 1, 1), dense(2)]);
    let layout = SpecLayout::new(&LAYERS).unwrap();
    let p = layout.param_count();
    let g: Vec<f32> = (0..p)
        .map(|i| if i % 2 == 0 { -1.0 } else { 0.5 })
        .collect();
    let mut norms = vec![0.0f32; layout.norm_count()];
    // Weights near the top of the range, and a gain whose updates (norm gain·η·s_k/L per
    // slice) would carry them past f32::MAX.
    let w0: Vec<f32> = (0..p)
        .map(|i| f32::MAX * (0.99 - 0.001 * i as f32 / p as f32))
        .collect();
    let agd = Agd::with_gain(1e38f32).unwrap();
    let mut w = w0.clone();
    let err = agd.step_spec(layout, &mut w, &g, &mut norms).unwrap_err();
    assert!(matches!(err, Error::WeightOverflow { .. }), "{err:?}");
    assert_eq!(bits(&w), bits(&w0));
    // The reference gain from the same weights: a step, every weight finite.
    Agd::new()
        .step_spec(layout, &mut w, &g, &mut norms)
        .unwrap();
    assert!(w.iter().all(|x| x.is_finite()));
}

#[test]
fn the_buffer_free_kernel_never_overflows_in_between() {
    // Found by the property test: tiny inputs make the Gram norm of layer 0 tiny and the
    // coefficient c = (gain·η/L)·(s/n) about 5e29, while the errors δ are about 1e9. The
    // rank-B kernel forms c·δ first, which overflowed to infinity although the update itself
    // (norm gain·η·s/L ≈ 9e18) is finite. `checked_step_with` asserts finite weights.
    let c = Case {
        widths: vec![1, 1, 2],
        batch: 1,
        seed: 0,
        input_scale: 1e-20,
        weight_scale: 1.0,
        gain: 1e30,
        mse: false,
        f64_elems: false,
        buffer_free: true,
        nan_at: None,
    };
    let (ok, refused) = run_case::<f32>(&c);
    assert!(ok > 3, "{ok} steps taken, {refused} refused");
}

#[test]
fn minus_infinity_hidden_by_relu_is_still_refused() {
    // Every first-layer unit gets -inf, relu makes them all 0: the loss (ln 2) and every
    // gradient come out finite and zero, so without an input check the step would "succeed".
    for buffer_free in [false, true] {
        let mut b = Bufs::<f32>::new(&[2, 3, 2], 2, 4);
        b.w[..6].fill(1.0);
        let input = [0.5, 0.25, f32::NEG_INFINITY, 1.0];
        assert_eq!(
            checked_step_with(
                &mut b,
                &Agd::new(),
                Loss::Xent,
                &input,
                &[0, 1],
                buffer_free
            ),
            Err(Error::NonFiniteInput { sample: 1 })
        );
    }
}
