use agd_host::timing::thread_cpu as cpu;
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn run(n: usize) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_set1_ps(0.0); 24];
    let a = _mm512_set1_ps(1.0000001);
    let b = _mm512_set1_ps(0.999999);
    for _ in 0..n {
        for x in acc.iter_mut() {
            *x = _mm512_fmadd_ps(a, *x, b);
        }
    }
    let mut s = 0.0;
    for x in acc {
        s += _mm512_reduce_add_ps(x);
    }
    s
}
fn main() {
    let n = 2_000_000;
    let mut r = vec![];
    for _ in 0..15 {
        let t = cpu();
        let s = unsafe { run(n) };
        let dt = cpu() - t;
        std::hint::black_box(s);
        r.push(24.0 * 32.0 * n as f64 / dt / 1e9);
    }
    r.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "FMA peak now: median {:.1} max {:.1} min {:.1} GFLOP/s",
        r[7], r[14], r[0]
    );
}
