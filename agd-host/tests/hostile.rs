//! The hostile-input matrix: every bad invocation of `agd train` and `agd eval` ends with exit
//! code 2 and exactly one line on stderr, never a panic, and never leaves an output behind as
//! if it were good: the run directory is not created and an existing checkpoint at the
//! `--save` path is left byte for byte as it was.
//!
//! Run with `--nocapture` to print the table of cases and the line each produced.

mod common;

use std::path::Path;

use common::{agd, agd_ok, assert_refused, digits_raw, f32_payload, idx, idx_digits, json, stdout};

/// One bad invocation: a name, the arguments, and a word the message must contain.
struct Case {
    name: &'static str,
    args: Vec<String>,
    needle: &'static str,
}

fn case(name: &'static str, args: &[&str], needle: &'static str) -> Case {
    Case {
        name,
        args: args.iter().map(|s| s.to_string()).collect(),
        needle,
    }
}

/// A `--dataset idx` directory of tiny digits with one file replaced by `bytes`.
fn idx_with(name: &str, bytes: Vec<u8>) -> tempfile::TempDir {
    let dir = idx_digits(100, 30);
    std::fs::write(dir.path().join(name), bytes).unwrap();
    dir
}

fn p(path: &Path) -> String {
    path.to_str().unwrap().to_string()
}

#[test]
fn every_hostile_input_is_one_line_and_exit_2() {
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    // A good checkpoint, saved by a short run, that every refused `--save` must leave intact.
    let good = s.join("good.agdc");
    agd_ok(&[
        "train",
        "--widths",
        "64,16,10",
        "--epochs",
        "1",
        "--out",
        &p(&s.join("good-run")),
        "--save",
        &p(&good),
    ]);
    let good_bytes = std::fs::read(&good).unwrap();
    let bad_ckpt = |name: &str, bytes: &[u8]| {
        let path = s.join(name);
        std::fs::write(&path, bytes).unwrap();
        p(&path)
    };
    let truncated_ckpt = bad_ckpt("truncated.agdc", &good_bytes[..good_bytes.len() / 2]);
    let mut magic = good_bytes.clone();
    magic[..4].copy_from_slice(b"PK\x03\x04");
    let magic_ckpt = bad_ckpt("magic.agdc", &magic);
    let mut flipped = good_bytes.clone();
    flipped[200] ^= 0x10;
    let crc_ckpt = bad_ckpt("crc.agdc", &flipped);
    let mut longer = good_bytes.clone();
    longer[8..16].copy_from_slice(&(good_bytes.len() as u64 + 4096).to_le_bytes());
    let claims_more_ckpt = bad_ckpt("claims-more.agdc", &longer);

    let (images, labels) = digits_raw();
    let img = |n: u32| idx(0x08, &[n, 8, 8], &images[..n as usize * 64]);
    // Kept alive until the end of the test: the cases refer to them by path.
    let mut dirs = Vec::new();
    let mut dir_of = |d: tempfile::TempDir| {
        let path = p(d.path());
        dirs.push(d);
        path
    };
    let missing = {
        let d = idx_digits(100, 30);
        std::fs::remove_file(d.path().join("train-images-idx3-ubyte")).unwrap();
        dir_of(d)
    };
    let full = img(100);
    let truncated = dir_of(idx_with(
        "train-images-idx3-ubyte",
        full[..full.len() - 7].to_vec(),
    ));
    let bad_magic = dir_of(idx_with("train-images-idx3-ubyte", {
        let mut b = full.clone();
        b[0] = 0x12;
        b
    }));
    let claims_more = dir_of(idx_with(
        "train-images-idx3-ubyte",
        idx(0x08, &[1000, 8, 8], &images[..100 * 64]),
    ));
    let overflow = dir_of(idx_with(
        "train-images-idx3-ubyte",
        idx(0x08, &[u32::MAX, u32::MAX, u32::MAX], &[0; 64]),
    ));
    let over_cap = dir_of(idx_with(
        "train-images-idx3-ubyte",
        idx(0x08, &[1 << 16, 1 << 15], &[0; 64]),
    ));
    let bomb = dir_of({
        use std::io::Write;
        let d = idx_digits(100, 30);
        std::fs::remove_file(d.path().join("train-images-idx3-ubyte")).unwrap();
        let mut raw = img(100);
        raw.resize(raw.len() + (8 << 20), 0);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&raw).unwrap();
        std::fs::write(
            d.path().join("train-images-idx3-ubyte.gz"),
            enc.finish().unwrap(),
        )
        .unwrap();
        d
    });
    // Float tables (100 x 64) with a NaN, and with an infinity.
    let table = |bad: f32| {
        let mut v: Vec<f32> = images[..100 * 64].iter().map(|&x| x as f32).collect();
        v[1234] = bad;
        idx(0x0D, &[100, 64], &f32_payload(&v))
    };
    let test_table = {
        let v: Vec<f32> = images[100 * 64..130 * 64]
            .iter()
            .map(|&x| x as f32)
            .collect();
        idx(0x0D, &[30, 64], &f32_payload(&v))
    };
    let float_dir = |bad: f32| {
        let d = idx_with("train-images-idx3-ubyte", table(bad));
        std::fs::write(d.path().join("t10k-images-idx3-ubyte"), &test_table).unwrap();
        d
    };
    let nan = dir_of(float_dir(f32::NAN));
    let inf = dir_of(float_dir(f32::INFINITY));
    let f64_overflows_f32 = dir_of({
        let mut v: Vec<f64> = images[..100 * 64].iter().map(|&x| x as f64).collect();
        v[77] = 1e300;
        let d = idx_with(
            "train-images-idx3-ubyte",
            idx(
                0x0E,
                &[100, 64],
                &v.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<_>>(),
            ),
        );
        let t: Vec<u8> = images[100 * 64..130 * 64]
            .iter()
            .flat_map(|&x| (x as f64).to_be_bytes())
            .collect();
        std::fs::write(
            d.path().join("t10k-images-idx3-ubyte"),
            idx(0x0E, &[30, 64], &t),
        )
        .unwrap();
        d
    });
    // Labels out of range: digits with a label 10; idx with a test label no training label has.
    let digits_label_10 = dir_of({
        let d = tempfile::tempdir().unwrap();
        let mut l = labels.clone();
        l[5] = 10;
        std::fs::write(
            d.path().join("digits-images-idx3-ubyte"),
            idx(0x08, &[1797, 8, 8], &images),
        )
        .unwrap();
        std::fs::write(
            d.path().join("digits-labels-idx1-ubyte"),
            idx(0x08, &[1797], &l),
        )
        .unwrap();
        d
    });
    let idx_test_label = dir_of(idx_with(
        "t10k-labels-idx1-ubyte",
        idx(0x08, &[30], &[[7u8; 29].as_slice(), &[200]].concat()),
    ));
    let empty = dir_of({
        let d = idx_with("train-images-idx3-ubyte", idx(0x08, &[0, 8, 8], &[]));
        std::fs::write(
            d.path().join("train-labels-idx1-ubyte"),
            idx(0x08, &[0], &[]),
        )
        .unwrap();
        d
    });
    let empty_digits = dir_of({
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("digits-images-idx3-ubyte"),
            idx(0x08, &[0, 8, 8], &[]),
        )
        .unwrap();
        std::fs::write(
            d.path().join("digits-labels-idx1-ubyte"),
            idx(0x08, &[0], &[]),
        )
        .unwrap();
        d
    });
    // Breast-cancer features rewritten as an f64 table whose first column is 1.5e308: finite,
    // but its mean overflows, so standardising it cannot give a finite value.
    let bc_overflow = dir_of({
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/breast_cancer");
        let f = std::fs::read(src.join("breast_cancer-features-idx2-float")).unwrap();
        let mut v: Vec<f64> = f[12..]
            .chunks_exact(4)
            .map(|c| f32::from_be_bytes(c.try_into().unwrap()) as f64)
            .collect();
        for row in v.chunks_exact_mut(30) {
            row[0] = 1.5e308;
        }
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("breast_cancer-features-idx2-float"),
            idx(
                0x0E,
                &[569, 30],
                &v.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<_>>(),
            ),
        )
        .unwrap();
        std::fs::copy(
            src.join("breast_cancer-labels-idx1-ubyte"),
            d.path().join("breast_cancer-labels-idx1-ubyte"),
        )
        .unwrap();
        d
    });
    let good_idx = dir_of(idx_digits(100, 30));
    let idx_args = |dir: &str| ["--dataset", "idx", "--data-dir", dir].map(String::from);
    let train = |extra: &[String]| {
        let mut a: Vec<String> = ["train", "--epochs", "1", "--widths", "64,16,10"]
            .map(String::from)
            .to_vec();
        a.extend_from_slice(extra);
        a
    };
    let cases: Vec<Case> = vec![
        case("unknown flag", &["train", "--bogus"], "--bogus"),
        // Networks too large for memory or for `usize`: refused, not aborted by the allocator
        // or sized with wrapped numbers. The "to allocate" cases ask for a buffer larger than
        // a 47-bit address space, so it fails to allocate even where the kernel overcommits
        // memory (nothing is ever touched).
        case(
            "dense layer too large to allocate",
            &["train", "--widths", "64,4000000000000,10"],
            "too large",
        ),
        case(
            "dense weights beyond the address space",
            &["train", "--widths", "64,4000000000,4000000000,10"],
            "too large",
        ),
        case(
            "conv channels too large to allocate",
            &["train", "--layers", "conv4000000000000k3,dense10"],
            "too large",
        ),
        case(
            "conv padding beyond usize",
            &["train", "--layers", "conv8k3p9999999999999999999,dense10"],
            "too large",
        ),
        case(
            "batch too large to allocate",
            &["train", "--batch", "4000000000000"],
            "too large",
        ),
        case(
            "negative learning rate",
            &["train", "--optimizer", "adam", "--lr", "-1"],
            "finite and positive",
        ),
        case(
            "negative gain",
            &["train", "--gain", "-2"],
            "finite and positive",
        ),
        case("negative seed", &["train", "--seed", "-1"], "--seed"),
        case(
            "missing required argument",
            &["eval", "--dataset", "digits"],
            "not provided: --load <FILE>",
        ),
        case(
            "missing file (idx)",
            &train(&idx_args(&missing))
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            "no train-images",
        ),
        case(
            "missing file (checkpoint)",
            &["eval", "--load", &p(&s.join("nope.agdc"))],
            "(os error 2)",
        ),
        case(
            "truncated file (idx)",
            &str_args(&train(&idx_args(&truncated))),
            "truncated IDX data",
        ),
        case(
            "truncated file (checkpoint)",
            &["eval", "--load", &truncated_ckpt],
            "truncated",
        ),
        case(
            "wrong magic (idx)",
            &str_args(&train(&idx_args(&bad_magic))),
            "magic",
        ),
        case(
            "wrong magic (checkpoint)",
            &["eval", "--load", &magic_ckpt],
            "bad magic",
        ),
        case(
            "header claims more data (idx)",
            &str_args(&train(&idx_args(&claims_more))),
            "needs 64000 data bytes",
        ),
        case(
            "header claims more data (checkpoint)",
            &["eval", "--load", &claims_more_ckpt],
            "truncated",
        ),
        case(
            "dimensions overflow (idx)",
            &str_args(&train(&idx_args(&overflow))),
            "overflow",
        ),
        case(
            "dimensions over the 1 GiB cap (idx)",
            &str_args(&train(&idx_args(&over_cap))),
            "more than the 1073741824",
        ),
        case(
            "gzip bomb (idx)",
            &str_args(&train(&idx_args(&bomb))),
            "inflates to more than",
        ),
        case(
            "NaN in a float table",
            &str_args(&train(&idx_args(&nan))),
            "not finite (NaN)",
        ),
        case(
            "infinity in a float table",
            &str_args(&train(&idx_args(&inf))),
            "not finite (inf)",
        ),
        case(
            "f64 value beyond f32",
            &str_args(&train(&idx_args(&f64_overflows_f32))),
            "does not fit f32",
        ),
        case(
            "normalisation overflows (f64 breast-cancer table)",
            &[
                "train",
                "--dataset",
                "breast-cancer",
                "--data-dir",
                &bc_overflow,
                "--epochs",
                "1",
            ],
            "not finite after normalisation",
        ),
        case(
            "label out of range (digits)",
            &str_args(&train(&["--data-dir".into(), digits_label_10.clone()])),
            "label 10 of sample 5",
        ),
        case(
            "label out of range (idx test set)",
            &str_args(&train(&idx_args(&idx_test_label))),
            "label 200 of test sample 29",
        ),
        case(
            "empty dataset (idx)",
            &str_args(&train(&idx_args(&empty))),
            "empty dataset",
        ),
        case(
            "empty dataset (digits)",
            &str_args(&train(&["--data-dir".into(), empty_digits.clone()])),
            "empty dataset",
        ),
        case(
            "widths do not fit the data",
            &str_args(&{
                let mut a: Vec<String> =
                    ["train", "--widths", "30,16,2"].map(String::from).to_vec();
                a.extend(idx_args(&good_idx));
                a
            }),
            "first width must be its 64 inputs",
        ),
        case(
            "widths do not fit the checkpoint (eval)",
            &["eval", "--load", &p(&good), "--dataset", "breast-cancer"],
            "takes 64 inputs and gives 10 classes",
        ),
        case(
            "corrupted checkpoint (CRC)",
            &["eval", "--load", &crc_ckpt],
            "corrupt: CRC-32",
        ),
        case(
            "--save into a missing directory",
            &["train", "--save", &p(&s.join("no-dir").join("x.agdc"))],
            "does not exist",
        ),
    ];
    let mut table = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let out_dir = s.join(format!("out-{i}"));
        let mut args = c.args.clone();
        if args[0] == "train" && !args.iter().any(|a| a == "--save") {
            args.extend(["--out".into(), p(&out_dir), "--save".into(), p(&good)]);
        }
        let o = agd(&str_args(&args));
        let line = assert_refused(&o, c.needle);
        assert!(!out_dir.exists(), "{}: left {}", c.name, out_dir.display());
        assert_eq!(
            std::fs::read(&good).unwrap(),
            good_bytes,
            "{}: the good checkpoint changed",
            c.name
        );
        table.push(format!("| {} | {:?} | `{line}` |", c.name, o.status.code()));
    }
    // No temporary file was left next to the checkpoint either.
    let leftovers: Vec<_> = std::fs::read_dir(s)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    println!(
        "| case | exit | stderr |\n|---|---|---|\n{}",
        table.join("\n")
    );
}

fn str_args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn train_save_then_eval_reports_the_same_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let ckpt = dir.path().join("digits.agdc");
    agd_ok(&[
        "train",
        "--widths",
        "64,32,10",
        "--epochs",
        "3",
        "--out",
        &p(&run),
        "--save",
        &p(&ckpt),
    ]);
    let m = json(&run.join("metrics.json"));
    let trained = m["final_test_accuracy"].as_f64().unwrap();
    let o = agd_ok(&["eval", "--load", &p(&ckpt)]);
    let text = stdout(&o);
    // "digits test set: accuracy 85.28 % (307 of 360), mse loss 0.452449"
    let counts = text
        .split_once('(')
        .and_then(|(_, r)| r.split_once(')'))
        .map(|(c, _)| c.to_string())
        .unwrap_or_default();
    let (correct, total) = counts.split_once(" of ").expect("counts printed");
    let (correct, total): (usize, usize) = (correct.parse().unwrap(), total.parse().unwrap());
    assert_eq!(total, 360, "{text}");
    assert_eq!(correct as f64 / total as f64, trained, "{text}");
    assert!(text.contains("dense [64,32,10], f32, step 36"), "{text}");
    let loss: f64 = text
        .rsplit_once("mse loss ")
        .unwrap()
        .1
        .trim()
        .parse()
        .unwrap();
    assert!(loss.is_finite() && loss > 0.0, "{text}");
    // The f64 path, and an idx dataset made of the same digits.
    let idx_dir = idx_digits(300, 100);
    let ckpt64 = dir.path().join("idx64.agdc");
    let run64 = dir.path().join("run64");
    let d = p(idx_dir.path());
    agd_ok(&[
        "train",
        "--dataset",
        "idx",
        "--data-dir",
        &d,
        "--dtype",
        "f64",
        "--epochs",
        "2",
        "--widths",
        "64,16,10",
        "--out",
        &p(&run64),
        "--save",
        &p(&ckpt64),
    ]);
    let m = json(&run64.join("metrics.json"));
    let o = agd_ok(&[
        "eval",
        "--load",
        &p(&ckpt64),
        "--dataset",
        "idx",
        "--data-dir",
        &d,
    ]);
    let text = stdout(&o);
    let acc = m["final_test_accuracy"].as_f64().unwrap();
    assert!(text.contains("of 100)") && text.contains("f64"), "{text}");
    assert!(
        text.contains(&format!("accuracy {:.2} %", 100.0 * acc)),
        "{acc}: {text}"
    );
}

/// A float table (already scaled) with one training sample of 1e30: finite in f32, but its
/// square loss (~1e60) is not. The batch holding it cannot be trained on in f32.
fn idx_with_a_huge_sample() -> tempfile::TempDir {
    let (images, _) = digits_raw();
    let scaled = |r: std::ops::Range<usize>| -> Vec<f32> {
        images[r].iter().map(|&x| x as f32 / 16.0 - 0.3).collect()
    };
    let mut train = scaled(0..200 * 64);
    for v in &mut train[17 * 64..18 * 64] {
        *v = 1e30;
    }
    let dir = idx_digits(200, 60);
    std::fs::write(
        dir.path().join("train-images-idx3-ubyte"),
        idx(0x0D, &[200, 64], &f32_payload(&train)),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("t10k-images-idx3-ubyte"),
        idx(0x0D, &[60, 64], &f32_payload(&scaled(200 * 64..260 * 64))),
    )
    .unwrap();
    dir
}

#[test]
fn a_bad_batch_stops_the_run_or_is_skipped_on_request() {
    let data = idx_with_a_huge_sample();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("stopped");
    let ckpt = dir.path().join("net.agdc");
    let base = [
        "train",
        "--dataset",
        "idx",
        "--data-dir",
        data.path().to_str().unwrap(),
        "--widths",
        "64,32,10",
        "--loss",
        "mse",
        "--batch",
        "32",
        "--epochs",
        "3",
    ];
    let mut args = base.to_vec();
    let (run_s, ckpt_s) = (p(&run), p(&ckpt));
    args.extend(["--out", &run_s, "--save", &ckpt_s]);
    let line = assert_refused(&agd(&args), "bad batch at epoch 1");
    assert!(line.contains("--skip-bad-batches"), "{line}");
    println!("| bad batch (f32 loss overflows) | Some(2) | `{line}` |");
    // The metrics so far are written, marked as stopped; no checkpoint of a failed run.
    let m = json(&run.join("metrics.json"));
    assert!(m["failure"].as_str().unwrap().contains("bad batch"), "{m}");
    assert_eq!(m["final_test_accuracy"], serde_json::Value::Null);
    assert_eq!(m["train_loss"].as_array().unwrap().len(), 0);
    assert!(!ckpt.exists());

    // Skipped on request: one batch per epoch (the one holding sample 17), counted.
    let run = dir.path().join("skipped");
    let run_s = p(&run);
    let mut args = base.to_vec();
    args.extend(["--out", &run_s, "--save", &ckpt_s, "--skip-bad-batches"]);
    let o = agd_ok(&args);
    assert!(
        stdout(&o).contains("skipped 3 bad batches"),
        "{}",
        stdout(&o)
    );
    let m = json(&run.join("metrics.json"));
    assert_eq!(m["skipped_batches"], 3);
    assert_eq!(m["failure"], serde_json::Value::Null);
    for l in m["train_loss"].as_array().unwrap() {
        assert!(l.as_f64().unwrap().is_finite());
    }
    assert!(m["final_test_accuracy"].as_f64().unwrap() > 0.5, "{m}");
    assert!(ckpt.exists());

    // In f64 the same sample's loss is finite: nothing to skip.
    let run = dir.path().join("f64");
    let run_s = p(&run);
    let mut args = base.to_vec();
    args.extend(["--out", &run_s, "--dtype", "f64", "--skip-bad-batches"]);
    agd_ok(&args);
    assert_eq!(json(&run.join("metrics.json"))["skipped_batches"], 0);
}

#[test]
fn eval_reads_conv_checkpoints() {
    use agd_core::checkpoint::{ElemType, Progress};
    use agd_core::spec::{chain, conv, dense};
    use agd_core::{ConvNetwork, SplitMix64};
    use agd_host::checkpoint_file::save_conv;
    use agd_host::data::{DatasetKind, Split, load};
    use agd_host::net::HostConvNet;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cnn.agdc");
    let layers = chain([1, 8, 8], [conv(4, 3, 1, 1), dense(10)]);
    let mut net = HostConvNet::<f32>::new(&layers, 128).unwrap();
    net.view().init_orthogonal(&mut SplitMix64::new(5));
    save_conv(&path, &mut net, Progress { step: 3, rng: 4 }).unwrap();
    // What the untrained network gets right on the digits test set, computed here.
    let data = load::<f32>(DatasetKind::Digits, None, Split::Seeded).unwrap();
    let mut correct = 0;
    let mut v = net.view();
    for (xs, ys) in data.test_x.chunks(128 * 64).zip(data.test_y.chunks(128)) {
        v.set_input(xs).unwrap();
        v.forward(ys.len()).unwrap();
        correct += v.count_correct(ys);
    }
    let o = agd_ok(&["eval", "--load", &p(&path)]);
    let text = stdout(&o);
    assert!(
        text.contains("input 1x8x8 → conv 4 3x3 s1 p1 → dense 10, f32, step 3"),
        "{text}"
    );
    assert!(text.contains(&format!("({correct} of 360)")), "{text}");
    // A conv network for 6x6 inputs does not fit digits.
    let small = chain([1, 6, 6], [conv(2, 3, 1, 1), dense(10)]);
    let mut net = HostConvNet::<f64>::new(&small, 1).unwrap();
    let path = dir.path().join("small.agdc");
    save_conv(&path, &mut net, Progress::default()).unwrap();
    let line = assert_refused(
        &agd(&["eval", "--load", &p(&path)]),
        "takes 36 inputs and gives 10 classes",
    );
    assert!(line.contains("conv 2 3x3"), "{line}");
    // A crafted checkpoint: three weights in all, but a 40,002 x 40,002 feature map (padding
    // 20,000) that would need gigabytes of buffers. Refused before anything is allocated.
    let huge = chain(
        [1, 8, 8],
        [conv(1, 1, 1, 20_000), conv(1, 1, 40_000, 0), dense(10)],
    );
    let w = vec![0.5f32; agd_core::spec::param_count(&huge)];
    let mut bytes = vec![0u8; agd_core::checkpoint::spec_checkpoint_len(&huge, ElemType::F32)];
    agd_core::checkpoint::encode_spec(&huge, &w, Progress::default(), &mut bytes).unwrap();
    let path = dir.path().join("huge.agdc");
    std::fs::write(&path, &bytes).unwrap();
    assert_refused(
        &agd(&["eval", "--load", &p(&path)]),
        "buffers at batch 128 would exceed",
    );
}
