//! Conformance with the reference AGD: every shipped golden trajectory (dense, and the conv
//! case with its per-kernel-position norms) is replayed from its initial weights, and every
//! recorded loss, gradient, norm, G, η and post-step weight must match (f64: 1e-9 relative, f32: 1e-4), with exact zeros and bit-identical zero-gradient
//! layers where the reference has them.

use agd_host::golden::{Deviations, GoldenFile, StepKind, TOL_F32, TOL_F64, replay};
use agd_tests::{golden, golden_files};

fn dense_files() -> Vec<GoldenFile> {
    let files: Vec<GoldenFile> = golden_files()
        .iter()
        .map(|p| GoldenFile::load(p).unwrap_or_else(|e| panic!("{e}")))
        .filter(|f| !f.is_conv())
        .collect();
    assert_eq!(files.len(), 4, "four dense golden files ship with the repo");
    files
}

fn assert_passes(case: &str, dtype: &str, dev: &Deviations, tol: f64) {
    for (q, v) in dev.rows() {
        assert!(v <= tol, "{case} {dtype}: {q} deviates by {v:e} > {tol:e}");
    }
    assert_eq!(
        dev.zero_violations, 0,
        "{case} {dtype}: a value the reference has as exact 0 is not"
    );
    assert_eq!(
        dev.unchanged_violations, 0,
        "{case} {dtype}: a zero-gradient layer changed"
    );
}

#[test]
fn every_dense_golden_file_replays_in_f64() {
    for f in dense_files() {
        let dev = replay::<f64>(&f, StepKind::Standard).unwrap();
        assert_passes(&f.case, "f64", &dev, TOL_F64);
    }
}

#[test]
fn every_dense_golden_file_replays_in_f32() {
    for f in dense_files() {
        let dev = replay::<f32>(&f, StepKind::Standard).unwrap();
        assert_passes(&f.case, "f32", &dev, TOL_F32);
    }
}

#[test]
fn every_dense_golden_file_replays_with_the_buffer_free_step_in_f64() {
    for f in dense_files() {
        let dev = replay::<f64>(&f, StepKind::BufferFree).unwrap();
        assert_passes(&f.case, "f64 buffer-free", &dev, TOL_F64);
    }
}

#[test]
fn every_dense_golden_file_replays_with_the_buffer_free_step_in_f32() {
    for f in dense_files() {
        let dev = replay::<f32>(&f, StepKind::BufferFree).unwrap();
        assert_passes(&f.case, "f32 buffer-free", &dev, TOL_F32);
    }
}

#[test]
fn all_zero_gradients_leave_every_weight_bit_identical() {
    // Case d2: a zero middle layer makes every gradient exactly 0, so G = η = 0 forever.
    let f = GoldenFile::load(&golden("golden_d2_all_grads_zero.json")).unwrap();
    assert!(f.steps.iter().all(|s| s.g == 0.0 && s.eta == 0.0));
    let dev = replay::<f64>(&f, StepKind::Standard).unwrap();
    assert_eq!(dev.weights, 0.0);
    assert_eq!(dev.unchanged_violations, 0);
}

#[test]
fn a_perturbed_reference_is_caught() {
    // The replay must be able to fail: nudge one recorded weight by 1e-6 relative.
    let mut f = GoldenFile::load(&golden("golden_a_tiny_xent.json")).unwrap();
    let w = &mut f.steps[3].weights_after[1].data[5];
    *w *= 1.0 + 1e-6;
    let dev = replay::<f64>(&f, StepKind::Standard).unwrap();
    assert!(
        !dev.passes(TOL_F64),
        "a 1e-6 change went unnoticed: {dev:?}"
    );
}

#[test]
fn malformed_files_are_refused_with_a_message() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let base = std::fs::read_to_string(golden("golden_a_tiny_xent.json")).unwrap();
    let cases = [
        ("truncated", base[..base.len() / 2].to_string()),
        ("not json", "hello".to_string()),
        (
            "wrong shape",
            base.replacen("\"shape\": [5, 4]", "\"shape\": [5, 3]", 1),
        ),
        (
            "bad target",
            base.replacen("\"targets\": [", "\"targets\": [99, ", 1),
        ),
    ];
    for (what, text) in cases {
        let p = dir.join("bad.json");
        std::fs::write(&p, text).unwrap();
        let err = GoldenFile::load(&p).expect_err(what);
        assert!(err.to_string().contains("bad.json"), "{what}: {err}");
    }
    let conv = std::fs::read_to_string(golden(CONV)).unwrap();
    let conv_cases = [
        (
            "conv kernel larger than the input",
            conv.replacen("\"kernel\": [3, 3]", "\"kernel\": [7, 7]", 1),
        ),
        (
            "conv norms not one per kernel position",
            conv.replacen("\"grad_norms\": [[", "\"grad_norms\": [[1.0, ", 1),
        ),
        (
            "unknown architecture",
            conv.replacen("conv_then_linear", "resnet", 1),
        ),
    ];
    for (what, text) in conv_cases {
        let p = dir.join("bad_conv.json");
        std::fs::write(&p, text).unwrap();
        let err = GoldenFile::load(&p).expect_err(what);
        assert!(err.to_string().contains("bad_conv.json"), "{what}: {err}");
    }
}

const CONV: &str = "golden_g_conv_small_mse.json";

#[test]
fn the_conv_golden_file_replays_in_f64() {
    let f = GoldenFile::load(&golden(CONV)).unwrap_or_else(|e| panic!("{e}"));
    assert!(f.is_conv());
    let dev = replay::<f64>(&f, StepKind::Standard).unwrap();
    assert_passes(&f.case, "f64", &dev, TOL_F64);
}

#[test]
fn the_conv_golden_file_replays_in_f32() {
    let f = GoldenFile::load(&golden(CONV)).unwrap_or_else(|e| panic!("{e}"));
    let dev = replay::<f32>(&f, StepKind::Standard).unwrap();
    assert_passes(&f.case, "f32", &dev, TOL_F32);
}

#[test]
fn a_perturbed_conv_slice_norm_is_caught() {
    // One per-kernel-position norm off by 1e-6: the replay compares each of the 9.
    let mut f = GoldenFile::load(&golden(CONV)).unwrap();
    let n = &mut f.steps[2].grad_norms[0][4];
    *n = serde_json::json!(n.as_f64().unwrap() * (1.0 + 1e-6));
    let dev = replay::<f64>(&f, StepKind::Standard).unwrap();
    assert!(
        dev.grad_norms > TOL_F64,
        "a 1e-6 change went unnoticed: {dev:?}"
    );
}
