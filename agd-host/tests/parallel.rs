//! The batch-parallel step computes the same step as the single-threaded one, up to the
//! rounding of the gradient sum.

use agd_core::{Agd, ConvNetwork, Loss, Network, SplitMix64};
use agd_host::net::{HostConvNet, HostNet};
use agd_host::parallel::{DataParallel, Replica};
use agd_host::train::TrainNet;
use rand_core::Rng;

#[test]
fn two_threads_train_like_one() {
    let widths = [20, 16, 12, 5];
    let batch = 9;
    let mut single = HostNet::<f64>::new(&widths, batch, true).unwrap();
    single.view().init_orthogonal(&mut SplitMix64::new(1));
    let mut par = DataParallel::<f64>::new(&widths, batch, 2).unwrap();
    par.net().view().init_orthogonal(&mut SplitMix64::new(1));
    par.sync();
    let mut rng = SplitMix64::new(5);
    let agd = Agd::new();
    for step in 0..10 {
        let n = batch - step % 3;
        let x: Vec<f64> = (0..n * widths[0])
            .map(|_| rng.next_u32() as f64 / u32::MAX as f64 - 0.5)
            .collect();
        let y: Vec<usize> = (0..n).map(|_| rng.next_u32() as usize % 5).collect();
        let mut v = single.view();
        v.set_input(&x).unwrap();
        let a = v.train_step(&agd, Loss::Xent, &y).unwrap();
        let b = par.train_step(&agd, Loss::Xent, &x, &y).unwrap();
        assert_eq!(a.correct, b.correct);
        assert!(
            (a.loss - b.loss).abs() <= 1e-12 * a.loss.abs().max(1.0),
            "step {step}"
        );
        assert!((a.step.eta - b.step.eta).abs() <= 1e-12, "step {step}");
    }
    for (p, q) in single.weights().iter().zip(par.net().weights()) {
        assert!((p - q).abs() <= 1e-10, "{p} vs {q}");
    }
    same_weights_everywhere(&par);

    // Scoring more samples than a copy holds (it holds half a batch) goes slice by slice
    // and gives the single network's figures on the same weights.
    single.weights_mut().copy_from_slice(par.net().weights());
    let n = 2 * batch + 3;
    let x: Vec<f64> = (0..n * widths[0])
        .map(|_| rng.next_u32() as f64 / u32::MAX as f64 - 0.5)
        .collect();
    let y: Vec<usize> = (0..n).map(|_| rng.next_u32() as usize % 5).collect();
    let (mut correct, mut sum) = (0, 0.0);
    for (xs, ys) in x.chunks(batch * widths[0]).zip(y.chunks(batch)) {
        let (c, l) = TrainNet::score(&mut single, xs, ys, Loss::Xent).unwrap();
        correct += c;
        sum += l * ys.len() as f64;
    }
    let (c, l) = par.score(&x, &y, Loss::Xent).unwrap();
    assert_eq!(c, correct);
    assert_eq!(par.count_correct(&x, &y).unwrap(), correct);
    assert!(
        (l - sum / n as f64).abs() <= 1e-12,
        "{l} vs {}",
        sum / n as f64
    );
}

/// Every copy took the same steps: bit-identical weights.
fn same_weights_everywhere<T: agd_core::Element + std::fmt::Debug, N: Replica<T>>(
    par: &DataParallel<T, N>,
) {
    let copies = par.copies();
    assert!(copies.len() > 1);
    for c in &copies[1..] {
        assert_eq!(c.weights(), copies[0].weights());
    }
}

#[test]
fn a_conv_network_on_three_threads_trains_like_one() {
    // 6x6 grey input, a strided conv, then dense: three copies of 3 + 3 + 1 samples at the
    // last step.
    let layers = agd_host::layers::parse("conv3k3p1,conv4k3s2p1,dense5", [1, 6, 6], 5).unwrap();
    let batch = 8;
    let mut single = HostConvNet::<f64>::new(&layers, batch).unwrap();
    single.view().init_orthogonal(&mut SplitMix64::new(3));
    let mut par = DataParallel::<f64, HostConvNet<f64>>::new_conv(&layers, batch, 3).unwrap();
    par.net().view().init_orthogonal(&mut SplitMix64::new(3));
    par.sync();
    assert_eq!(par.threads(), 3);
    let mut rng = SplitMix64::new(9);
    let agd = Agd::new();
    for step in 0..6 {
        let n = batch - step % 2;
        let x: Vec<f64> = (0..n * 36)
            .map(|_| rng.next_u32() as f64 / u32::MAX as f64)
            .collect();
        let y: Vec<usize> = (0..n).map(|_| rng.next_u32() as usize % 5).collect();
        let mut v = single.view();
        v.set_input(&x).unwrap();
        let a = v.train_step(&agd, Loss::Xent, &y).unwrap();
        let b = par.train_step(&agd, Loss::Xent, &x, &y).unwrap();
        assert_eq!(a.correct, b.correct);
        assert!((a.loss - b.loss).abs() <= 1e-12 * a.loss.abs().max(1.0));
        assert!((a.step.eta - b.step.eta).abs() <= 1e-12, "step {step}");
    }
    for (p, q) in single.weights().iter().zip(par.net().weights()) {
        assert!((p - q).abs() <= 1e-10, "{p} vs {q}");
    }
    same_weights_everywhere(&par);
    // A NaN sample is refused, on every copy, with no weight changed.
    let before = par.net().weights().to_vec();
    let mut x = vec![0.5; batch * 36];
    x[100] = f64::NAN;
    assert!(par.train_step(&agd, Loss::Xent, &x, &[0; 8]).is_err());
    assert_eq!(before, par.net().weights());
    same_weights_everywhere(&par);
}

#[test]
fn a_bad_batch_is_refused_and_leaves_the_weights() {
    let mut par = DataParallel::<f32>::new(&[4, 3, 2], 4, 2).unwrap();
    par.net().view().init_orthogonal(&mut SplitMix64::new(2));
    par.sync();
    let before = par.net().weights().to_vec();
    let agd = Agd::new();
    assert!(
        par.train_step(&agd, Loss::Xent, &[0.0; 7], &[0, 1])
            .is_err()
    );
    assert!(
        par.train_step(&agd, Loss::Xent, &[0.0; 8], &[0, 9])
            .is_err()
    );
    assert!(
        par.train_step(&agd, Loss::Xent, &[f32::NAN; 8], &[0, 1])
            .is_err()
    );
    assert_eq!(before, par.net().weights());
    same_weights_everywhere(&par);
}

/// A dense network big enough for the split step's parts to cut layers and hold several
/// blocks (the weights: 32,448 entries), on two and three threads.
#[test]
fn a_larger_dense_network_on_two_and_three_threads_trains_like_one() {
    let widths = [150, 128, 96, 10];
    let batch = 12;
    for threads in [2, 3] {
        let mut single = HostNet::<f64>::new(&widths, batch, true).unwrap();
        single.view().init_orthogonal(&mut SplitMix64::new(4));
        let mut par = DataParallel::<f64>::new(&widths, batch, threads).unwrap();
        par.net().view().init_orthogonal(&mut SplitMix64::new(4));
        par.sync();
        let mut rng = SplitMix64::new(6);
        let agd = Agd::with_gain(0.5).unwrap();
        for step in 0..4 {
            let x: Vec<f64> = (0..batch * widths[0])
                .map(|_| rng.next_u32() as f64 / u32::MAX as f64 - 0.5)
                .collect();
            let y: Vec<usize> = (0..batch).map(|_| rng.next_u32() as usize % 10).collect();
            let mut v = single.view();
            v.set_input(&x).unwrap();
            let a = v.train_step(&agd, Loss::Xent, &y).unwrap();
            let b = par.train_step(&agd, Loss::Xent, &x, &y).unwrap();
            assert_eq!(a.correct, b.correct);
            assert!((a.step.eta - b.step.eta).abs() <= 1e-12, "step {step}");
            for (p, q) in a.step.grad_norms.iter().zip(&b.step.grad_norms) {
                assert!((p - q).abs() <= 1e-12 * p, "step {step}: {p} vs {q}");
            }
        }
        for (p, q) in single.weights().iter().zip(par.net().weights()) {
            assert!((p - q).abs() <= 1e-10, "{threads} threads: {p} vs {q}");
        }
        same_weights_everywhere(&par);
    }
}

/// A step the plan refuses (an update that could push a weight past the largest finite
/// number) changes no weight on any copy.
#[test]
fn a_refused_dense_step_changes_no_copy() {
    let widths = [6, 5, 3];
    let batch = 4;
    let mut par = DataParallel::<f64>::new(&widths, batch, 2).unwrap();
    par.net().view().init_orthogonal(&mut SplitMix64::new(8));
    // The first weight reads input 0, which is 0 in every sample: the forward pass stays
    // finite, but an update of its layer could overflow it.
    par.net().weights_mut()[0] = f64::MAX;
    par.sync();
    let before = par.net().weights().to_vec();
    let x: Vec<f64> = (0..batch * 6)
        .map(|i| {
            if i % 6 == 0 {
                0.0
            } else {
                (i % 5) as f64 * 0.2 - 0.4
            }
        })
        .collect();
    let huge = Agd::with_gain(1e300).unwrap();
    assert_eq!(
        par.train_step(&huge, Loss::Xent, &x, &[0, 1, 2, 1])
            .unwrap_err(),
        agd_core::Error::WeightOverflow { layer: 0 }
    );
    assert_eq!(before, par.net().weights());
    same_weights_everywhere(&par);
    // The same batch with gain 1 is taken, and every weight but the dead one moves.
    par.train_step(&Agd::new(), Loss::Xent, &x, &[0, 1, 2, 1])
        .unwrap();
    assert_eq!(par.net().weights()[0], f64::MAX);
    assert_ne!(before, par.net().weights());
    same_weights_everywhere(&par);
}
