//! End-to-end tests of `agd train` and `agd compare`: they run the binary on the digits data
//! shipped in the repository and on deliberately broken copies of it.

mod common;

use common::{agd, agd_ok, digits_dir, json, refused, stderr, stdout};

/// A copy of the digits directory whose image file is replaced by `images`.
fn digits_copy_with_images(images: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        digits_dir().join("digits-labels-idx1-ubyte"),
        dir.path().join("digits-labels-idx1-ubyte"),
    )
    .unwrap();
    std::fs::write(dir.path().join("digits-images-idx3-ubyte"), images).unwrap();
    dir
}

fn digits_images() -> Vec<u8> {
    std::fs::read(digits_dir().join("digits-images-idx3-ubyte")).unwrap()
}

#[test]
fn train_on_digits_writes_metrics_and_learns() {
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let o = agd_ok(&[
        "train",
        "--widths",
        "64,32,10",
        "--epochs",
        "3",
        "--out",
        run.to_str().unwrap(),
    ]);
    let stdout = stdout(&o);
    assert_eq!(stdout.matches("epoch ").count(), 3, "{stdout}");
    assert!(stdout.contains("final test accuracy"), "{stdout}");
    let m = json(&run.join("metrics.json"));
    assert_eq!(m["dataset"], "digits");
    assert_eq!(m["optimizer"], "agd");
    assert_eq!(m["lr"], serde_json::Value::Null);
    assert_eq!(m["widths"], serde_json::json!([64, 32, 10]));
    for key in ["train_loss", "train_accuracy", "test_accuracy", "eta"] {
        assert_eq!(m[key].as_array().unwrap().len(), 3, "{key}");
    }
    // Ten classes: chance is 10 %. Three epochs of AGD get far above it.
    let acc = m["final_test_accuracy"].as_f64().unwrap();
    assert!(acc > 0.6, "final test accuracy {acc}");
    let losses: Vec<f64> = m["train_loss"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(losses[2] < losses[0], "{losses:?}");
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(csv.starts_with("epoch,train_loss,train_accuracy,test_accuracy,eta,seconds"));
    let png = std::fs::read(run.join("curves.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "curves.png is a PNG");
}

#[test]
fn digits_train_on_the_references_split_when_asked() {
    let out = tempfile::tempdir().unwrap();
    let runs = [("seeded", "seeded"), ("reference", "reference's")];
    for (split, says) in runs {
        let run = out.path().join(split);
        let text = stdout(&agd_ok(&[
            "train",
            "--split",
            split,
            "--widths",
            "64,32,10",
            "--epochs",
            "1",
            "--out",
            run.to_str().unwrap(),
        ]));
        assert!(text.contains(says), "{text}");
        let m = json(&run.join("metrics.json"));
        assert!(
            m["split"].as_str().unwrap().contains(says),
            "{}",
            m["split"]
        );
        // The training set's statistics tell the two splits apart (REFERENCE-RESULTS.md gives
        // the reference's: 0.305447 / 0.376037).
        let reference = m["normalisation"].as_str().unwrap().contains("0.305447");
        assert_eq!(reference, split == "reference", "{}", m["normalisation"]);
    }
    refused(
        &[
            "train",
            "--dataset",
            "breast-cancer",
            "--split",
            "reference",
        ],
        "--split reference",
    );
}

#[test]
fn baselines_train_and_need_a_learning_rate() {
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("adam");
    agd_ok(&[
        "train",
        "--optimizer",
        "adam",
        "--lr",
        "0.003",
        "--widths",
        "64,32,10",
        "--epochs",
        "2",
        "--out",
        run.to_str().unwrap(),
    ]);
    let m = json(&run.join("metrics.json"));
    assert_eq!(m["optimizer"], "adam");
    assert_eq!(m["lr"], 0.003);
    assert_eq!(m["eta"], serde_json::Value::Null);
    assert!(m["final_test_accuracy"].as_f64().unwrap() > 0.6);

    refused(&["train", "--optimizer", "sgd"], "needs --lr");
    refused(&["train", "--lr", "0.1"], "no learning rate");
    refused(
        &["train", "--optimizer", "adam", "--lr=-1"],
        "finite and positive",
    );
}

#[test]
fn a_diverging_baseline_exits_1_and_records_the_failure() {
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("sgd");
    let o = agd(&[
        "train",
        "--optimizer",
        "sgd",
        "--lr",
        "1e30",
        "--widths",
        "64,32,10",
        "--epochs",
        "2",
        "--out",
        run.to_str().unwrap(),
    ]);
    let stderr = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let m = json(&run.join("metrics.json"));
    assert!(m["failure"].as_str().unwrap().contains("training failed"));
    assert_eq!(m["final_test_accuracy"], serde_json::Value::Null);
}

#[test]
fn gzip_files_are_read() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    for name in ["digits-images-idx3-ubyte", "digits-labels-idx1-ubyte"] {
        let raw = std::fs::read(digits_dir().join(name)).unwrap();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&raw).unwrap();
        std::fs::write(dir.path().join(format!("{name}.gz")), enc.finish().unwrap()).unwrap();
    }
    let out = dir.path().join("run");
    agd_ok(&[
        "train",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--widths",
        "64,16,10",
        "--epochs",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(out.join("metrics.json").exists());
}

#[test]
fn compare_writes_table_json_and_plot() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("cmp");
    let o = agd_ok(&[
        "compare",
        "--widths",
        "64,16,10",
        "--epochs",
        "2",
        "--adam-lr",
        "1e-3,1e-2",
        "--sgd-lr",
        "0.1",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let stdout = stdout(&o);
    assert!(stdout.contains("gap"), "{stdout}");
    let c = json(&dir.join("compare.json"));
    let runs = c["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    assert_eq!(runs[0]["optimizer"], "agd");
    assert_eq!(c["best_sgd"], 3);
    assert!(c["gap_points"].as_f64().unwrap().is_finite());
    let md = std::fs::read_to_string(dir.join("compare.md")).unwrap();
    assert_eq!(md.matches("\n| ").count(), 5, "{md}"); // header + 4 runs
    assert!(
        std::fs::read(dir.join("compare.png"))
            .unwrap()
            .starts_with(b"\x89PNG")
    );
    assert!(dir.join("runs/agd/metrics.json").exists());
}

#[test]
fn widths_that_do_not_fit_the_data_are_refused() {
    refused(
        &["train", "--widths", "784,256,10"],
        "first width must be its 64 inputs",
    );
    refused(&["train", "--widths", "64,32,3"], "10 classes");
    refused(&["train", "--widths", "64"], "at least two widths");
    refused(
        &["train", "--widths", "64,0,10"],
        "--widths 64,0,10: every width must be at least 1",
    );
    refused(
        &[
            "train",
            "--dataset",
            "breast-cancer",
            "--widths",
            "64,32,10",
        ],
        "30 inputs",
    );
}

#[test]
fn bad_flags_are_refused() {
    refused(&["train", "--bogus"], "--bogus");
    refused(&["train", "--dataset", "cifar"], "cifar");
    refused(&["train", "--widths", "64,x,10"], "invalid");
    refused(&["train", "--epochs", "0"], "at least 1");
    refused(&["train", "--batch", "0"], "at least 1");
    refused(&["train", "--gain", "0"], "gain");
    refused(&["train", "--threads", "0"], "--threads");
}

/// What the flags alone show to be wrong is refused before any data is read: a data
/// directory that does not exist is not what the error names.
#[test]
fn flags_are_checked_before_the_data_is_read() {
    let missing = ["--dataset", "mnist", "--data-dir", "/nonexistent/agd-test"];
    for cmd in ["train", "compare"] {
        for (flag, needle) in [
            (["--batch", "0"], "--batch must be at least 1"),
            (["--epochs", "0"], "--epochs must be at least 1"),
        ] {
            let mut args = vec![cmd];
            args.extend(missing);
            args.extend(flag);
            refused(&args, needle);
        }
    }
}

#[test]
fn two_threads_train_and_record_it() {
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    agd_ok(&[
        "train",
        "--widths",
        "64,32,10",
        "--epochs",
        "3",
        "--threads",
        "2",
        "--out",
        run.to_str().unwrap(),
    ]);
    let m = json(&run.join("metrics.json"));
    assert_eq!(m["threads"], 2);
    let acc = m["final_test_accuracy"].as_f64().unwrap();
    assert!(acc > 0.6, "final test accuracy {acc}");
}

#[test]
fn missing_files_are_refused() {
    let empty = tempfile::tempdir().unwrap();
    refused(
        &["train", "--data-dir", empty.path().to_str().unwrap()],
        "digits-images-idx3-ubyte",
    );
    refused(
        &["train", "--data-dir", "/nonexistent/agd-data"],
        "not a directory",
    );
    refused(
        &[
            "train",
            "--dataset",
            "mnist",
            "--data-dir",
            empty.path().to_str().unwrap(),
        ],
        "train-images-idx3-ubyte",
    );
}

#[test]
fn wrong_magic_is_refused() {
    let mut images = digits_images();
    images[0] = 0x1F; // neither IDX nor a complete gzip stream
    images[1] = 0x00;
    let dir = digits_copy_with_images(&images);
    refused(
        &["train", "--data-dir", dir.path().to_str().unwrap()],
        "magic",
    );
    // Labels where images belong: valid IDX, wrong shape.
    let labels = std::fs::read(digits_dir().join("digits-labels-idx1-ubyte")).unwrap();
    let dir = digits_copy_with_images(&labels);
    refused(
        &["train", "--data-dir", dir.path().to_str().unwrap()],
        "expected u8 images",
    );
}

#[test]
fn truncated_data_is_refused() {
    let images = digits_images();
    let dir = digits_copy_with_images(&images[..images.len() - 100]);
    refused(
        &["train", "--data-dir", dir.path().to_str().unwrap()],
        "truncated",
    );
    let dir = digits_copy_with_images(&images[..10]);
    refused(
        &["train", "--data-dir", dir.path().to_str().unwrap()],
        "truncated IDX header",
    );
    // A header that claims more images than the labels file has.
    let mut more = images.clone();
    more[4..8].copy_from_slice(&1798u32.to_be_bytes());
    more.extend_from_slice(&[0; 64]);
    let dir = digits_copy_with_images(&more);
    refused(
        &["train", "--data-dir", dir.path().to_str().unwrap()],
        "expected 1798 u8 labels",
    );
}

#[test]
fn the_readme_main_command_reaches_97_percent_on_digits() {
    // `agd train` with no flag at all: digits, [64,128,128,10], mse, 50 epochs, seed 0.
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("default");
    agd_ok(&["train", "--out", run.to_str().unwrap()]);
    let m = json(&run.join("metrics.json"));
    assert_eq!(m["widths"], serde_json::json!([64, 128, 128, 10]));
    assert_eq!(m["epochs"], 50);
    let acc = m["final_test_accuracy"].as_f64().unwrap();
    assert!(acc >= 0.97, "final test accuracy {acc}");
}

#[test]
fn a_cnn_trains_on_digits_through_the_cli() {
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("cnn");
    let o = agd_ok(&[
        "train",
        "--layers",
        "conv8k3p1,conv16k3s2p1,dense10",
        "--epochs",
        "10",
        "--out",
        run.to_str().unwrap(),
        "--save",
        out.path().join("cnn.agdc").to_str().unwrap(),
    ]);
    let text = stdout(&o);
    assert!(text.contains("conv8k3p1,conv16k3s2p1,dense10"), "{text}");
    assert_eq!(text.matches("epoch ").count(), 10, "{text}");
    let m = json(&run.join("metrics.json"));
    assert_eq!(m["layers"], "conv8k3p1,conv16k3s2p1,dense10");
    // Features between the layers: 1x8x8 → 8x8x8 → 16x4x4 → 10.
    assert_eq!(m["widths"], serde_json::json!([64, 512, 256, 10]));
    assert_eq!(m["eta"].as_array().unwrap().len(), 10);
    // Chance is 10 %; seed 0 is at 92 % here (mse; xent's test accuracy swings more).
    let acc = m["final_test_accuracy"].as_f64().unwrap();
    assert!(acc > 0.8, "final test accuracy {acc}");
    assert!(
        std::fs::read(run.join("curves.png"))
            .unwrap()
            .starts_with(b"\x89PNG")
    );
    // The saved CNN evaluates to the accuracy the run ended with.
    let e = agd_ok(&[
        "eval",
        "--load",
        out.path().join("cnn.agdc").to_str().unwrap(),
    ]);
    let shown = format!("accuracy {:.2} %", 100.0 * acc);
    assert!(stdout(&e).contains(&shown), "{shown} in {}", stdout(&e));
}

#[test]
fn baselines_train_a_cnn_and_compare_runs_on_one() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("cmp");
    let o = agd(&[
        "compare",
        "--layers",
        "conv4k3p1,conv8k3s2p1,dense10",
        "--loss",
        "xent",
        "--epochs",
        "3",
        "--adam-lr",
        "1e-2",
        "--sgd-lr",
        "0.1",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let c = json(&dir.join("compare.json"));
    assert_eq!(c["layers"], "conv4k3p1,conv8k3s2p1,dense10");
    let runs = c["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    for r in runs {
        // Every optimiser learns the CNN: far above the 10 % of chance.
        let acc = r["final_test_accuracy"].as_f64().unwrap();
        assert!(acc > 0.5, "{}: {acc}", r["optimizer"]);
    }
    let o = agd(&[
        "compare",
        "--layers",
        "conv4k3p1,dense10",
        "--epochs",
        "1",
        "--adam-lr",
        "1e-2",
        "--no-sgd",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        json(&dir.join("compare.json"))["runs"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn bad_layer_specs_are_refused_in_one_line() {
    refused(
        &["train", "--widths", "64,10", "--layers", "dense10"],
        "not both",
    );
    refused(&["train", "--layers", "conv8x3,dense10"], "conv8x3");
    refused(&["train", "--layers", "conv0k3,dense10"], "at least 1");
    refused(&["train", "--layers", "conv8k3s0,dense10"], "at least 1");
    refused(&["train", "--layers", "conv8k9,dense10"], "larger than");
    refused(&["train", "--layers", "conv8k3,dense7"], "10 classes");
    refused(&["train", "--layers", "pool2,dense10"], "pool2");
    refused(
        &["compare", "--widths", "64,10", "--layers", "dense10"],
        "not both",
    );
}
