//! `agd bench --quick --json` runs in seconds and reports every figure the performance
//! issue asks for, as one JSON object.

use std::process::Command;

#[test]
fn quick_bench_reports_every_figure_as_json() {
    let out = Command::new(env!("CARGO_BIN_EXE_agd"))
        .args(["bench", "--quick", "--json", "--threads", "2"])
        .output()
        .expect("run agd");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let gemm = v["gemm"].as_array().expect("gemm array");
    let shapes: Vec<(u64, u64, u64)> = gemm
        .iter()
        .map(|r| {
            (
                r["m"].as_u64().unwrap(),
                r["k"].as_u64().unwrap(),
                r["n"].as_u64().unwrap(),
            )
        })
        .collect();
    for s in [
        (128, 784, 256),
        (128, 256, 256),
        (128, 256, 10),
        (1, 784, 256),
        (64, 64, 64),
        (16, 16, 16),
        (256, 256, 256),
    ] {
        assert!(shapes.contains(&s), "shape {s:?} missing");
    }
    for r in gemm {
        for key in ["ours_gflops", "matrixmultiply_gflops", "naive_gflops"] {
            let g = r[key].as_f64().unwrap_or_else(|| panic!("{key} in {r}"));
            assert!(g.is_finite() && g > 0.0, "{key} = {g} in {r}");
        }
    }
    let square = v["gemm_square"].as_array().expect("gemm_square array");
    let square: Vec<(&str, u64)> = square
        .iter()
        .map(|r| {
            assert!(r["ratio"].as_f64().unwrap() > 0.0, "{r}");
            (r["op"].as_str().unwrap(), r["m"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(square, vec![("nn", 64), ("nn", 16), ("nn", 256)]);
    let steps = v["step"].as_array().expect("step array");
    let widths: Vec<Vec<u64>> = steps
        .iter()
        .map(|s| {
            s["widths"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w.as_u64().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(
        widths,
        vec![
            vec![784, 256, 256, 10],
            vec![784, 1024, 1024, 1024, 10],
            vec![64, 64, 10]
        ]
    );
    // The FMA peak beside each step: null only on a CPU without AVX2 and FMA.
    for row in steps.iter().chain([&v["cnn_step"]]) {
        let p = &row["fma_peak_gflops"];
        assert!(
            p.is_null() || p.as_f64().is_some_and(|g| g.is_finite() && g > 0.0),
            "{row}"
        );
    }
    for s in steps {
        assert!(s["batch"].as_u64().unwrap() >= 1);
        let us = s["median_us"].as_f64().unwrap();
        assert!(us.is_finite() && us > 0.0, "{s}");
        let separate = s["separate_norms_median_us"].as_f64().unwrap();
        assert!(separate.is_finite() && separate > 0.0, "{s}");
    }
    assert_eq!(steps[0]["threads"].as_u64(), Some(2));
    // Batch 1 cannot be split over threads.
    assert!(steps[2]["threads"].is_null(), "{}", steps[2]);
    assert!(steps[0]["threaded_best_wall_us"].as_f64().unwrap() > 0.0);
    let cnn = &v["cnn_step"];
    assert_eq!(
        cnn["layers"],
        "conv16k3p1,conv32k3s2p1,conv32k3s2p1,dense10"
    );
    assert_eq!(cnn["batch"], 128);
    let us = cnn["median_us"].as_f64().unwrap();
    assert!(us.is_finite() && us > 0.0, "{cnn}");
    let epoch = cnn["epoch_seconds"].as_f64().unwrap();
    assert!(
        (epoch - 469.0 * us * 1e-6).abs() < 1e-9 * epoch.max(1.0),
        "{cnn}"
    );
    assert!(cnn["vs_dense_step"].as_f64().unwrap() > 0.0);
    assert_eq!(cnn["threads"].as_u64(), Some(2));
    assert!(cnn["threaded_best_wall_us"].as_f64().unwrap() > 0.0);
    let p = v["power_iteration_us"].as_f64().unwrap();
    assert!(p.is_finite() && p > 0.0);
    // Thread CPU time where the OS has a fine one, the wall clock elsewhere (Windows).
    assert_eq!(v["clock"], if cfg!(unix) { "thread_cpu" } else { "wall" });
    assert_eq!(v["kernel"], agd_simd::kernel());
    // The caches as agd-simd reads them, and the measures its products took from them.
    let t = agd_simd::cache_tuning();
    let cache = &v["cache"];
    assert_eq!(
        cache["l1d_ways"].as_u64(),
        t.l1d_ways.map(u64::from),
        "{cache}"
    );
    assert_eq!(
        cache["l2_kib"].as_u64(),
        t.l2_bytes.map(|b| b >> 10),
        "{cache}"
    );
    assert_eq!(cache["prefetch"].as_bool(), Some(t.prefetch), "{cache}");
    assert_eq!(cache["copy_a"].as_bool(), Some(t.copy_a), "{cache}");
    // Every forward shape on every kernel this CPU runs, by name, the picked one among them.
    let names: Vec<&str> = agd_simd::Kernel::runnable().map(|k| k.name()).collect();
    assert!(names.contains(&agd_simd::kernel()), "{names:?}");
    let kernels = v["kernels"].as_array().expect("kernels array");
    assert_eq!(kernels.len(), gemm.len());
    for (r, g) in kernels.iter().zip(gemm) {
        assert_eq!((&r["m"], &r["k"], &r["n"]), (&g["m"], &g["k"], &g["n"]));
        let mm = r["matrixmultiply_gflops"].as_f64().unwrap();
        assert!(mm.is_finite() && mm > 0.0, "{r}");
        let speeds = r["kernels"].as_array().expect("per-kernel speeds");
        let got: Vec<&str> = speeds
            .iter()
            .map(|s| s["kernel"].as_str().unwrap())
            .collect();
        assert_eq!(got, names, "{r}");
        for s in speeds {
            let (g, ratio) = (s["gflops"].as_f64().unwrap(), s["ratio"].as_f64().unwrap());
            assert!(g.is_finite() && g > 0.0, "{s}");
            assert!((ratio - g / mm).abs() <= 1e-9 * ratio, "{s}");
        }
    }
}

#[test]
fn bench_refuses_zero_threads_with_exit_code_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_agd"))
        .args(["bench", "--quick", "--threads", "0"])
        .output()
        .expect("run agd");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}
