//! Runs one matrix product in a loop for a profiler, ours or matrixmultiply's:
//! `gemm_loop nt 128 784 256 ours 1000`.

use std::time::Instant;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let op = a[1].as_str();
    let (m, k, n): (usize, usize, usize) = (
        a[2].parse().unwrap(),
        a[3].parse().unwrap(),
        a[4].parse().unwrap(),
    );
    let who = a[5].as_str();
    let reps: usize = a[6].parse().unwrap();
    let x: Vec<f32> = (0..m * k).map(|i| (i % 17) as f32 * 0.1 - 0.8).collect();
    let y: Vec<f32> = (0..k * n).map(|i| (i % 13) as f32 * 0.1 - 0.6).collect();
    let mut c = vec![0.0f32; m * n];
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
    let t = Instant::now();
    let cpu0 = cpu();
    for _ in 0..reps {
        if who == "ours" {
            match op {
                "nt" => agd_simd::matmul_nt(m, n, k, 1.0, &x, &y, 0.0, &mut c).unwrap(),
                "nn" => agd_simd::matmul_nn(m, n, k, 1.0, &x, &y, 0.0, &mut c).unwrap(),
                _ => agd_simd::matmul_tn(m, n, k, 1.0, &x, &y, 0.0, &mut c).unwrap(),
            }
        } else {
            unsafe {
                matrixmultiply::sgemm(
                    m,
                    k,
                    n,
                    1.0,
                    x.as_ptr(),
                    rsa,
                    csa,
                    y.as_ptr(),
                    rsb,
                    csb,
                    0.0,
                    c.as_mut_ptr(),
                    n as isize,
                    1,
                )
            }
        }
        std::hint::black_box(&mut c);
    }
    let wall = t.elapsed().as_secs_f64();
    let cpu = cpu() - cpu0;
    let fl = 2.0 * (m * n * k * reps) as f64;
    println!(
        "{who} {op} {m}x{k}x{n}: {:.1} GFLOP/s wall, {:.1} GFLOP/s cpu",
        fl / wall / 1e9,
        fl / cpu / 1e9
    );
}

fn cpu() -> f64 {
    let mut ts = libc_timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { clock_gettime(3, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}
#[repr(C)]
struct libc_timespec {
    tv_sec: i64,
    tv_nsec: i64,
}
unsafe extern "C" {
    fn clock_gettime(clk: i32, ts: *mut libc_timespec) -> i32;
}
