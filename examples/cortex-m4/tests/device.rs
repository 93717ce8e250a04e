//! On-device tests (defmt-test under QEMU): the kernels against their naive twins, the
//! buffer-free AGD step against the standard step, the refusals, the data split, the
//! instruction counter, and checkpoints saved to and restored from the emulated flash through
//! the A/B store — all compiled for and run on the Cortex-M4F.
#![no_std]
#![no_main]

use defmt_semihosting as _;
use panic_probe as _;

agd_cortex_m4::exit_on_hard_fault!();

agd_core::dense_network!(WithGrads: f32 = [16, 12, 5], batch 4);
agd_core::dense_network!(NoGrads: f32 = [16, 12, 5], batch 4, buffer_free);

/// `max|got − want| <= tol · max|want|` (the golden README's tensor metric).
fn close(got: &[f32], want: &[f32], tol: f32) -> bool {
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    got.len() == want.len()
        && got
            .iter()
            .zip(want)
            .all(|(a, b)| (a - b).abs() <= tol * scale)
}

fn rel(a: f32, b: f32, tol: f32) -> bool {
    (a - b).abs() <= tol * b.abs()
}

fn gaussian(x: &mut [f32], seed: u64) {
    agd_core::init::fill_gaussian(x, &mut agd_core::SplitMix64::new(seed));
}

/// `steps` training steps of `net` on random batches drawn from `rng` (inputs and targets), so
/// that the data order is part of the saved state.
fn train_random(net: &mut NoGrads, rng: &mut agd_core::SplitMix64, steps: usize) {
    use agd_core::{Agd, Loss, Network};
    use rand_core::Rng;
    let mut v = net.view();
    for _ in 0..steps {
        agd_core::init::fill_gaussian(v.input_mut(4).unwrap(), rng);
        let targets = core::array::from_fn::<usize, 4, _>(|_| (rng.next_u64() % 5) as usize);
        v.train_step_buffer_free(&Agd::new(), Loss::Xent, &targets)
            .unwrap();
    }
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[defmt_test::tests]
mod tests {
    use super::{NoGrads, WithGrads, close, gaussian, rel, same_bits, train_random};
    use agd_core::{Agd, Error, Loss, Network, buffer_free::grad_norm};
    use agd_cortex_m4::cycles;
    use agd_cortex_m4::data::{DIGITS_SAMPLES, DIGITS_TRAIN, digits_split};
    use agd_simd::naive;

    #[init]
    fn init() {
        let cp = cortex_m::Peripherals::take().unwrap();
        cycles::start(cp.SYST);
    }

    #[test]
    fn matmul_kernels_match_naive() {
        // Every edge of the hand-written 4x4 and 2x4 tiles and of the unrolled loops: sizes
        // below, at and above multiples of 2 and 4, odd depths, and blocks of zero
        // coefficients (the skipped ones).
        const SIZES: [usize; 9] = [1, 2, 3, 4, 5, 6, 9, 10, 13];
        let shapes = SIZES
            .iter()
            .flat_map(|&m| SIZES.iter().map(move |&n| (m, n)))
            .flat_map(|(m, n)| [1, 2, 5, 8, 10, 13].into_iter().map(move |k| (m, n, k)));
        for (m, n, k) in shapes {
            let mut a = [0.0f32; 17 * 17];
            let mut b = [0.0f32; 17 * 17];
            let mut c = [0.0f32; 17 * 17];
            let mut r = [0.0f32; 17 * 17];
            gaussian(&mut a, (m * 100 + n) as u64);
            gaussian(&mut b, (k * 100 + n) as u64);
            gaussian(&mut c, 7);
            if (m + n + k) % 2 == 0 {
                a[..4 * k.max(m)].fill(0.0);
            }
            r.copy_from_slice(&c);
            let (a_mk, b_nk, mn) = (&a[..m * k], &b[..n * k], m * n);
            agd_simd::matmul_nt(m, n, k, 0.5, a_mk, b_nk, 1.5, &mut c[..mn]).unwrap();
            naive::matmul_nt(m, n, k, 0.5, a_mk, b_nk, 1.5, &mut r[..mn]);
            assert!(
                close(&c[..mn], &r[..mn], 1e-5),
                "matmul_nt {} {} {}",
                m,
                n,
                k
            );
            agd_simd::matmul_nn(m, n, k, -1.0, a_mk, &b[..k * n], 0.0, &mut c[..mn]).unwrap();
            naive::matmul_nn(m, n, k, -1.0, a_mk, &b[..k * n], 0.0, &mut r[..mn]);
            assert!(
                close(&c[..mn], &r[..mn], 1e-5),
                "matmul_nn {} {} {}",
                m,
                n,
                k
            );
            agd_simd::matmul_tn(m, n, k, 2.0, &a[..k * m], &b[..k * n], 1.0, &mut c[..mn]).unwrap();
            naive::matmul_tn(m, n, k, 2.0, &a[..k * m], &b[..k * n], 1.0, &mut r[..mn]);
            assert!(
                close(&c[..mn], &r[..mn], 1e-5),
                "matmul_tn {} {} {}",
                m,
                n,
                k
            );
        }
    }

    #[test]
    fn level1_kernels_match_naive() {
        let mut x = [0.0f32; 37];
        let mut y = [0.0f32; 37];
        gaussian(&mut x, 1);
        gaussian(&mut y, 2);
        let d = agd_simd::dot(&x, &y);
        assert!(rel(d, naive::dot(&x, &y), 1e-5));
        let n = agd_simd::nrm2(&x);
        assert!(rel(n, naive::nrm2(&x) as f32, 1e-6));
        let mut z = y;
        agd_simd::axpy(0.25, &x, &mut z);
        let mut zr = y;
        naive::axpy(0.25, &x, &mut zr);
        assert!(close(&z, &zr, 1e-6));
        // The overflow-safe norm: squares of 1e30 overflow f32, the norm does not.
        let big = [3e30f32, 4e30];
        assert!(rel(agd_simd::nrm2(&big), 5e30, 1e-6));
    }

    #[test]
    fn gram_norm_equals_norm_of_formed_gradient() {
        let mut d = [0.0f32; 4 * 12];
        let mut h = [0.0f32; 4 * 16];
        gaussian(&mut d, 3);
        gaussian(&mut h, 4);
        let mut g = [0.0f32; 12 * 16];
        agd_simd::matmul_tn(12, 16, 4, 1.0, &d, &h, 0.0, &mut g).unwrap();
        for batch in 1..=4 {
            agd_simd::matmul_tn(
                12,
                16,
                batch,
                1.0,
                &d[..batch * 12],
                &h[..batch * 16],
                0.0,
                &mut g,
            )
            .unwrap();
            let want = agd_simd::nrm2(&g);
            let got = grad_norm(batch, &d[..batch * 12], &h[..batch * 16]).unwrap();
            assert!(rel(got, want, 1e-5), "batch {}: {} vs {}", batch, got, want);
        }
    }

    #[test]
    fn buffer_free_step_equals_standard_step() {
        let mut a = WithGrads::new();
        let mut b = NoGrads::new();
        let mut va = a.view();
        let mut vb = b.view();
        va.init_orthogonal(&mut agd_core::SplitMix64::new(11));
        vb.weights_mut().copy_from_slice(va.weights());
        let agd = Agd::new();
        let targets = [1, 4, 0, 2];
        for step in 0..5u64 {
            gaussian(va.input_mut(4).unwrap(), 20 + step);
            gaussian(vb.input_mut(4).unwrap(), 20 + step);
            let ra = va.train_step(&agd, Loss::Xent, &targets).unwrap();
            let rb = vb
                .train_step_buffer_free(&agd, Loss::Xent, &targets)
                .unwrap();
            assert!(rel(rb.loss, ra.loss, 1e-4));
            assert!(rel(rb.step.eta, ra.step.eta, 1e-4));
            for (x, y) in rb.step.grad_norms.iter().zip(&ra.step.grad_norms) {
                assert!(rel(*x, *y, 1e-4));
            }
            assert!(
                close(vb.weights(), va.weights(), 1e-4),
                "weights after step {}",
                step
            );
        }
        assert!(rel(va.weights()[0], vb.weights()[0], 1e-4));
    }

    #[test]
    fn buffer_free_network_saves_the_gradient_buffer() {
        assert_eq!(
            WithGrads::RAM_BYTES - NoGrads::RAM_BYTES,
            WithGrads::PARAMS * core::mem::size_of::<f32>()
        );
    }

    #[test]
    fn non_finite_input_changes_no_weight() {
        let mut b = NoGrads::new();
        let mut v = b.view();
        v.init_orthogonal(&mut agd_core::SplitMix64::new(12));
        let mut before = [0.0f32; NoGrads::PARAMS];
        before.copy_from_slice(v.weights());
        let input = v.input_mut(2).unwrap();
        gaussian(input, 3);
        input[5] = f32::NAN;
        let err = v
            .train_step_buffer_free(&Agd::new(), Loss::Xent, &[0, 1])
            .unwrap_err();
        // Caught before the forward pass, naming the sample.
        assert_eq!(
            err,
            Error::NonFiniteInput {
                sample: 5 / NoGrads::WIDTHS[0]
            }
        );
        assert!(
            v.weights()
                .iter()
                .zip(&before)
                .all(|(x, y)| x.to_bits() == y.to_bits())
        );
    }

    #[test]
    fn digits_split_is_a_fixed_permutation() {
        let mut a = [0u16; DIGITS_SAMPLES];
        let mut b = [0u16; DIGITS_SAMPLES];
        digits_split(&mut a);
        digits_split(&mut b);
        assert_eq!(a, b);
        let mut seen = [false; DIGITS_SAMPLES];
        for &i in &a {
            assert!(!seen[i as usize]);
            seen[i as usize] = true;
        }
        // Shuffled: the training part is not the first 1437 indices in order.
        assert!(
            a[..DIGITS_TRAIN]
                .iter()
                .enumerate()
                .any(|(k, &i)| k != i as usize)
        );
    }

    #[test]
    fn systick_counts_instructions() {
        // `subs` + `bne` per turn: 2·N + 1 instructions with the `movw/movt` pair, which at
        // 40 instructions per tick (`-icount shift=0`) is N/20 ticks.
        const N: u32 = 200_000;
        let t0 = cycles::now();
        unsafe {
            core::arch::asm!(
                "1:",
                "subs {n}, #1",
                "bne 1b",
                n = inout(reg) N => _,
                options(nomem, nostack),
            );
        }
        let t1 = cycles::now();
        let instr = cycles::instructions(t0, t1);
        defmt::info!("{=u32}-turn loop: {=u64} instructions", N, instr);
        // The loop is 400,000 instructions; reading the counter around it adds a few dozen.
        assert!((400_000..400_400).contains(&instr), "{}", instr);
    }

    #[test]
    fn checkpoints_on_the_emulated_flash_restore_bit_exactly_and_fall_back() {
        use agd_core::checkpoint::{ElemType, Progress, checkpoint_len};
        use agd_core::storage::{AbStore, Flash, RECORD_OVERHEAD, Record, slot_bytes};
        use agd_core::{Network, SplitMix64};
        use agd_cortex_m4::emuflash;

        const CKPT: usize = checkpoint_len(NoGrads::WIDTHS, ElemType::F32);
        const SLOT: usize = slot_bytes(CKPT, emuflash::PAGE);
        let mut flash = emuflash::take().unwrap();
        assert!(emuflash::take().is_none());
        // Start blank whatever the region holds (all zeros after power-on).
        for p in (0..2 * SLOT).step_by(emuflash::PAGE) {
            flash.erase_page(p).unwrap();
        }
        let mut store = AbStore::new(flash, 0, SLOT).unwrap();
        assert_eq!(store.newest(), Ok(None));

        let mut net = NoGrads::new();
        let mut rng = SplitMix64::new(21);
        net.view().init_orthogonal(&mut rng);
        let mut buf = [0u8; CKPT];
        // Train, save (record 1, slot 0); train further, save again (record 2, slot 1).
        let mut saved = [([0.0f32; NoGrads::PARAMS], Progress::default()); 2];
        for (k, (weights, progress)) in saved.iter_mut().enumerate() {
            train_random(&mut net, &mut rng, 3 + k);
            *progress = Progress {
                step: [3, 7][k],
                rng: rng.state(),
            };
            weights.copy_from_slice(net.view().weights());
            let n = net.view().save_checkpoint(*progress, &mut buf).unwrap();
            let rec = store.commit(&buf[..n]).unwrap();
            assert_eq!(
                rec,
                Record {
                    seq: k as u32 + 1,
                    len: CKPT
                }
            );
        }

        // Restore into a fresh network: the last save, bit for bit.
        let mut back = NoGrads::new();
        let mut out = [0u8; CKPT];
        let rec = store.restore(&mut out).unwrap();
        assert_eq!(rec.seq, 2);
        let progress = back.view().load_checkpoint(&out[..rec.len]).unwrap();
        assert_eq!(progress, saved[1].1);
        assert!(same_bits(back.view().weights(), &saved[1].0));
        // The RNG state resumes the data order: both go on identically.
        let mut resumed = SplitMix64::new(progress.rng);
        train_random(&mut net, &mut rng, 2);
        train_random(&mut back, &mut resumed, 2);
        assert!(same_bits(back.view().weights(), net.view().weights()));
        assert!(!same_bits(back.view().weights(), &saved[1].0));

        // Flip one byte of the newest record's checkpoint in the flash: the older one comes back.
        store.flash().contents_mut()[SLOT + RECORD_OVERHEAD + 100] ^= 0x5A;
        let rec = store.restore(&mut out).unwrap();
        assert_eq!(rec.seq, 1);
        let progress = back.view().load_checkpoint(&out[..rec.len]).unwrap();
        assert_eq!(progress, saved[0].1);
        assert!(same_bits(back.view().weights(), &saved[0].0));
    }
}
