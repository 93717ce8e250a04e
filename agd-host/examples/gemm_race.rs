//! Ours against `matrixmultiply` at one product shape, the way `agd bench` measures it
//! (interleaved rounds, median thread CPU time) but one shape per run and as many rounds as
//! asked, for A/B comparisons of kernel changes:
//! `cargo run --release -p agd-host --example gemm_race -- nt 64 64 64 [rounds] [f64]`
//! (`nt`, `nn` or `tn`, then M K N). Prints each contender's median GFLOP/s, the ratio, and
//! the FMA peak measured in the same rounds.
use std::hint::black_box;
use std::time::Instant;

use agd_host::fma_peak::FmaPeak;
use agd_host::pages::HugeBuf;
use agd_host::timing::thread_cpu;
use agd_simd::Element;

/// `matrixmultiply::sgemm` or `dgemm`.
type MmGemm<T> = unsafe fn(
    usize,
    usize,
    usize,
    T,
    *const T,
    isize,
    isize,
    *const T,
    isize,
    isize,
    T,
    *mut T,
    isize,
    isize,
);

fn race<T: Element>(op: &str, m: usize, k: usize, n: usize, rounds: usize, gemm: MmGemm<T>) {
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        T::from_f64((s % 2001) as f64 / 1000.0 - 1.0)
    };
    // Operands where `agd bench` and the networks keep them (huge pages, 64-byte aligned).
    let a: Vec<T> = (0..m * k).map(|_| next()).collect();
    let b: Vec<T> = (0..k * n).map(|_| next()).collect();
    let (a, b) = (HugeBuf::copy_of(&a).unwrap(), HugeBuf::copy_of(&b).unwrap());
    let mut c1 = HugeBuf::<T>::zeros(m * n).unwrap();
    let mut c2 = HugeBuf::<T>::zeros(m * n).unwrap();
    let (rsa, csa): (isize, isize) = if op == "tn" {
        (1, m as isize)
    } else {
        (k as isize, 1)
    };
    let (rsb, csb): (isize, isize) = if op == "nt" {
        (1, k as isize)
    } else {
        (n as isize, 1)
    };
    let ours = |c: &mut [T]| {
        match op {
            "nt" => agd_simd::matmul_nt(m, n, k, T::ONE, &a, &b, T::ZERO, c),
            "nn" => agd_simd::matmul_nn(m, n, k, T::ONE, &a, &b, T::ZERO, c),
            _ => agd_simd::matmul_tn(m, n, k, T::ONE, &a, &b, T::ZERO, c),
        }
        .unwrap()
    };
    // SAFETY: the pointers and strides describe `a` (m x k), `b` (k x n) and `c` (m x n),
    // each holding exactly that many values.
    let mm = |c: &mut [T]| unsafe {
        gemm(
            m,
            k,
            n,
            T::ONE,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            T::ZERO,
            c.as_mut_ptr(),
            n as isize,
            1,
        )
    };
    ours(&mut c1);
    mm(&mut c2);
    for (x, y) in c1.iter().zip(c2.iter()) {
        let (x, y) = (x.to_f64(), y.to_f64());
        assert!((x - y).abs() <= 1e-3 * (1.0 + y.abs()), "disagree");
    }
    let t = Instant::now();
    ours(&mut c1);
    let reps = ((300e-6 / t.elapsed().as_secs_f64()) as usize).max(1);
    let (mut to, mut tm, mut tp) = (Vec::new(), Vec::new(), Vec::new());
    let peak = FmaPeak::detect();
    for _ in 0..rounds {
        if let Some(p) = peak {
            let c0 = thread_cpu();
            black_box(p.run(black_box(16384)));
            tp.push(p.flops(16384) / (thread_cpu() - c0) / 1e9);
        }
        let c0 = thread_cpu();
        for _ in 0..reps {
            ours(black_box(&mut c1));
        }
        to.push((thread_cpu() - c0) / reps as f64);
        let c0 = thread_cpu();
        for _ in 0..reps {
            mm(black_box(&mut c2));
        }
        tm.push((thread_cpu() - c0) / reps as f64);
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (o, mmt) = (med(&mut to), med(&mut tm));
    let peak_gflops = if tp.is_empty() {
        f64::NAN
    } else {
        med(&mut tp)
    };
    let g = |t: f64| 2.0 * (m * n * k) as f64 / t / 1e9;
    println!(
        "{op} {m}x{k}x{n}: ours {:.1} GFLOP/s ({:.2} us), mm {:.1} GFLOP/s, ours/mm {:.3}x, \
         FMA peak {:.0} GFLOP/s (ours {:.0} %)",
        g(o),
        o * 1e6,
        g(mmt),
        mmt / o,
        peak_gflops,
        100.0 * g(o) / peak_gflops
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let op = args.get(1).map_or("nt", |s| s.as_str());
    let num = |i: usize, d: usize| args.get(i).map_or(d, |s| s.parse().unwrap());
    let (m, k, n, rounds) = (num(2, 64), num(3, 64), num(4, 64), num(5, 201));
    if args.get(6).is_some_and(|s| s == "f64") {
        race::<f64>(op, m, k, n, rounds, matrixmultiply::dgemm);
    } else {
        race::<f32>(op, m, k, n, rounds, matrixmultiply::sgemm);
    }
}
