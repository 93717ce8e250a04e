//! The datasets `agd train` knows, with their splits and normalisation.
//!
//! | dataset | files | split | inputs |
//! |---|---|---|---|
//! | `digits` | `data/digits/` (in the repo) | seeded permutation: 1,437 train / 360 test | 64 = 8x8, ÷16, then train-set global mean/std |
//! | `mnist` | `--data-dir` with the four standard files | official 60,000 / 10,000 | 784 = 28x28, ÷255, then train-set global mean/std |
//! | `breast-cancer` | `data/breast_cancer/` (in the repo) | seeded permutation: 455 train / 114 test | 30 features, each standardised with its train-split mean/std |
//! | `idx` | your own files in `--data-dir` (below) | the files' own train / test | `u8`: ÷255, then train-set global mean/std; any other type: used as given |
//!
//! **Your own data** (`--dataset idx --data-dir DIR`): `DIR` holds four IDX files (raw or
//! gzip), found by the start of their names: `train-images*`, `train-labels*`,
//! `test-images*` (or `t10k-images*`) and `test-labels*` (or `t10k-labels*`) — so MNIST-style
//! datasets (MNIST, Fashion-MNIST, KMNIST) work as downloaded. Images are `(N, …)` of any
//! IDX type, each sample flattened; labels are `(N,)` of an integer type, from 0. The number
//! of classes is the largest training label plus one (at least 2); a test label at or above
//! it is refused. `u8` images are normalised as MNIST's are; a table of another type (floats,
//! say) is taken as already scaled, and every value must be finite in the element type
//! trained in (`--dtype`).
//!
//! **Split** for a dataset without an official one ([`split_permutation`]): the indices
//! `0..n` shuffled by Fisher–Yates driven by `SplitMix64::new(0)` (`for i in (1..n).rev()
//! { j = next_u64() % (i+1); swap(i, j) }`); the first `n − ⌈n/5⌉` shuffled indices are the
//! training set, the last `⌈n/5⌉` the test set. The firmware uses this very split for digits.
//! For digits, `--split reference` takes the reference implementation's split instead
//! ([`Split::Reference`]), to hold results against `REFERENCE-RESULTS.md` on the same test set.
//!
//! **Normalisation** for images, exactly as the reference runs: pixels scaled to `[0, 1]`,
//! then standardised with one global mean and standard deviation (population, over every pixel
//! of the training set): `x = (p/scale − mean)/std`. Each input then has a mean square of
//! about 1, i.e. norm about `sqrt(d_0)` — what the paper assumes. The test set uses the
//! training set's statistics. Breast-cancer's 30 features differ in scale by four orders of
//! magnitude, so each column is standardised separately with its training-split mean and
//! (population) standard deviation.

use std::path::{Path, PathBuf};

use agd_core::{Element, SplitMix64};
use rand_core::Rng;

use crate::HostError;
use crate::idx::{IdxArray, IdxType};

/// A dataset `agd train` can load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// sklearn's 8x8 digits (1,797 images), shipped in `data/digits/`.
    Digits,
    /// MNIST 28x28 (60,000 + 10,000 images), from `--data-dir`.
    Mnist,
    /// Breast Cancer Wisconsin (569 samples, 30 features, 2 classes), in `data/breast_cancer/`.
    BreastCancer,
    /// Your own IDX files in `--data-dir`: train-images, train-labels, test-images (or
    /// t10k-images), test-labels (or t10k-labels), raw or .gz.
    Idx,
}

/// How a dataset without an official split is split into training and test sets (`--split`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Split {
    /// This project's seeded permutation (Fisher-Yates on SplitMix64 seed 0, see
    /// `split_permutation`), the one the firmware uses.
    #[default]
    Seeded,
    /// digits only: the reference implementation's split, numpy's
    /// default_rng(0).permutation(1797) (shipped in data/digits/reference-split.txt), the
    /// first 1,437 indices for training.
    Reference,
}

impl Split {
    /// What the split of `kind` is, for the log and `metrics.json`.
    pub fn describe(self, kind: DatasetKind) -> &'static str {
        match (kind, self) {
            (DatasetKind::Mnist | DatasetKind::Idx, _) => "the files' own",
            (_, Split::Seeded) => "seeded, Fisher-Yates on SplitMix64 seed 0",
            (_, Split::Reference) => "the reference's, numpy default_rng(0).permutation(1797)",
        }
    }
}

/// The reference implementation's digits split, generated once with numpy 2.4.6 (the header
/// of the file says how): its training set's pixel mean and std, 0.305447 / 0.376037, are the
/// ones `REFERENCE-RESULTS.md` gives (tested).
const REFERENCE_DIGITS_SPLIT: &str = include_str!("../../data/digits/reference-split.txt");

/// The permutation of `0..1797` behind [`Split::Reference`].
pub fn reference_permutation() -> Vec<usize> {
    REFERENCE_DIGITS_SPLIT
        .lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(str::split_whitespace)
        // The file is part of the build and tested to be a permutation of 0..1797.
        .map(|t| t.parse().expect("reference-split.txt holds indices"))
        .collect()
}

/// The standard MNIST file names, in the order train images, train labels, test images, test
/// labels (each may also be present with a `.gz` suffix).
pub const MNIST_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

impl DatasetKind {
    /// The name on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Digits => "digits",
            DatasetKind::Mnist => "mnist",
            DatasetKind::BreastCancer => "breast-cancer",
            DatasetKind::Idx => "idx",
        }
    }

    /// Input size `d_0` (`None` for `idx`: known once the files are read).
    pub fn inputs(self) -> Option<usize> {
        match self {
            DatasetKind::Digits => Some(64),
            DatasetKind::Mnist => Some(784),
            DatasetKind::BreastCancer => Some(30),
            DatasetKind::Idx => None,
        }
    }

    /// Number of classes `d_L` (`None` for `idx`: known once the files are read).
    pub fn classes(self) -> Option<usize> {
        match self {
            DatasetKind::Digits | DatasetKind::Mnist => Some(10),
            DatasetKind::BreastCancer => Some(2),
            DatasetKind::Idx => None,
        }
    }

    /// Default widths: reach the reference's accuracy and finish quickly (`idx`: empty, see
    /// [`Dataset::default_widths`]).
    pub fn default_widths(self) -> Vec<usize> {
        match self {
            DatasetKind::Digits => vec![64, 128, 128, 10],
            DatasetKind::Mnist => vec![784, 256, 256, 10],
            DatasetKind::BreastCancer => vec![30, 64, 64, 2],
            DatasetKind::Idx => Vec::new(),
        }
    }

    /// Default number of epochs.
    pub fn default_epochs(self) -> usize {
        match self {
            DatasetKind::Digits => 50,
            DatasetKind::Mnist | DatasetKind::Idx => 20,
            DatasetKind::BreastCancer => 50,
        }
    }

    /// The directory the files are looked for in when `--data-dir` is not given, relative to
    /// the repository root.
    fn default_subdir(self) -> &'static str {
        match self {
            DatasetKind::Digits => "data/digits",
            DatasetKind::Mnist => "../shared/data/mnist",
            DatasetKind::BreastCancer => "data/breast_cancer",
            DatasetKind::Idx => "",
        }
    }
}

/// A dataset split into training and test sets, normalised, in element type `T`.
#[derive(Debug, Clone)]
pub struct Dataset<T> {
    /// Which dataset.
    pub kind: DatasetKind,
    /// Features per sample `d_0`.
    pub inputs: usize,
    /// Number of classes `d_L`.
    pub classes: usize,
    /// Training inputs, `n_train x inputs` row-major.
    pub train_x: Vec<T>,
    /// Training labels.
    pub train_y: Vec<usize>,
    /// Test inputs, `n_test x inputs` row-major.
    pub test_x: Vec<T>,
    /// Test labels.
    pub test_y: Vec<usize>,
    /// How the inputs were normalised, for the log.
    pub normalisation: String,
}

impl<T> Dataset<T> {
    /// Input size.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Shape of one input `[channels, height, width]`, what `--layers` starts from: MNIST
    /// 1x28x28, digits 1x8x8, breast-cancer 30 channels of 1x1; `idx` inputs 1xSxS when their
    /// count is a square `S·S`, else that many channels of 1x1.
    pub fn input_shape(&self) -> [usize; 3] {
        match self.kind {
            DatasetKind::Digits => [1, 8, 8],
            DatasetKind::Mnist => [1, 28, 28],
            DatasetKind::BreastCancer | DatasetKind::Idx => {
                let s = (self.inputs as f64).sqrt().round() as usize;
                if s * s == self.inputs {
                    [1, s, s]
                } else {
                    [self.inputs, 1, 1]
                }
            }
        }
    }

    /// The widths a run uses when `--widths` is not given: the dataset's defaults, or for
    /// `idx` two hidden layers of 128 between its inputs and classes.
    pub fn default_widths(&self) -> Vec<usize> {
        match self.kind {
            DatasetKind::Idx => vec![self.inputs, 128, 128, self.classes],
            kind => kind.default_widths(),
        }
    }
}

/// The permutation of `0..n` that defines the train/test split of a dataset without an
/// official one (see the module docs): Fisher–Yates driven by `SplitMix64::new(0)`.
pub fn split_permutation(n: usize) -> Vec<usize> {
    let mut rng = SplitMix64::new(0);
    let mut idx: Vec<usize> = (0..n).collect();
    shuffle(&mut idx, &mut rng);
    idx
}

/// Fisher–Yates: `for i in (1..n).rev() { j = next_u64() % (i+1); swap(i, j) }`.
pub fn shuffle<R: Rng + ?Sized>(items: &mut [usize], rng: &mut R) {
    for i in (1..items.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// Test-set size of the seeded split: `⌈n/5⌉` (digits: 360 of 1,797; breast-cancer: 114 of
/// 569).
pub fn test_count(n: usize) -> usize {
    n.div_ceil(5)
}

/// The directory a dataset is read from: `data_dir` if given, else the default location
/// relative to the working directory, else relative to this crate's workspace.
pub fn resolve_dir(kind: DatasetKind, data_dir: Option<&Path>) -> Result<PathBuf, HostError> {
    if kind == DatasetKind::Idx && data_dir.is_none() {
        return Err(HostError::Usage(
            "--dataset idx needs --data-dir DIR holding train-images, train-labels, \
             test-images and test-labels IDX files"
                .into(),
        ));
    }
    if let Some(dir) = data_dir {
        if !dir.is_dir() {
            return Err(HostError::Data(format!(
                "--data-dir {}: not a directory",
                dir.display()
            )));
        }
        return Ok(dir.to_path_buf());
    }
    let sub = kind.default_subdir();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let candidates = [PathBuf::from(sub), workspace.join(sub)];
    if let Some(found) = candidates.iter().find(|p| p.is_dir()) {
        return Ok(found.clone());
    }
    Err(HostError::Data(match kind {
        DatasetKind::Mnist => format!(
            "MNIST not found in {sub}: pass --data-dir DIR holding {}",
            MNIST_FILES.join(", ")
        ),
        _ => format!(
            "{} data not found in {sub} (nor in {}): pass --data-dir DIR",
            kind.name(),
            workspace.join(sub).display()
        ),
    }))
}

/// `dir/name`, or `dir/name.gz` if only that exists.
fn find_file(dir: &Path, name: &str) -> PathBuf {
    let plain = dir.join(name);
    let gz = dir.join(format!("{name}.gz"));
    if !plain.exists() && gz.exists() {
        gz
    } else {
        plain
    }
}

fn read_images(path: &Path, side: usize) -> Result<(usize, Vec<u8>), HostError> {
    let a = IdxArray::read(path)?;
    match (a.dims(), a.as_u8()) {
        ([n, h, w], Some(v)) if *h == side && *w == side => Ok((*n, v.to_vec())),
        (dims, _) => Err(HostError::Data(format!(
            "{}: expected u8 images of shape (N, {side}, {side}), found {} {dims:?}",
            path.display(),
            a.dtype().name()
        ))),
    }
}

fn read_labels(path: &Path, n: usize, classes: usize) -> Result<Vec<usize>, HostError> {
    let a = IdxArray::read(path)?;
    let v = match (a.dims(), a.as_u8()) {
        ([m], Some(v)) if *m == n => v,
        (dims, _) => {
            return Err(HostError::Data(format!(
                "{}: expected {n} u8 labels (shape ({n},)), found {} {dims:?}",
                path.display(),
                a.dtype().name()
            )));
        }
    };
    if let Some((i, &y)) = v
        .iter()
        .enumerate()
        .find(|&(_, &y)| usize::from(y) >= classes)
    {
        return Err(HostError::Data(format!(
            "{}: label {y} of sample {i} is not below the {classes} classes",
            path.display()
        )));
    }
    Ok(v.iter().map(|&y| usize::from(y)).collect())
}

/// Population mean and standard deviation, accumulated in `f64`.
fn mean_std<I: Iterator<Item = f64> + Clone>(values: I) -> (f64, f64) {
    let (mut n, mut sum) = (0usize, 0.0f64);
    for v in values.clone() {
        n += 1;
        sum += v;
    }
    let mean = sum / n.max(1) as f64;
    let var = values.map(|v| (v - mean) * (v - mean)).sum::<f64>() / n.max(1) as f64;
    (mean, var.sqrt())
}

/// Scales `raw` by `1/scale` and standardises with `(mean, std)`, gathering `rows` (each
/// `d` long) in the given order.
fn standardise<T: Element>(
    raw: &[u8],
    d: usize,
    rows: &[usize],
    scale: f64,
    mean: f64,
    std: f64,
) -> Vec<T> {
    let mut out = crate::pages::vec_on_huge_pages(rows.len() * d);
    for &r in rows {
        out.extend(
            raw[r * d..(r + 1) * d]
                .iter()
                .map(|&p| T::from_f64((f64::from(p) / scale - mean) / std)),
        );
    }
    out
}

/// Image datasets: global mean/std of the scaled training pixels.
fn image_dataset<T: Element>(
    kind: DatasetKind,
    (d, classes): (usize, usize),
    scale: f64,
    train: (&[u8], &[usize]),
    test: (&[u8], &[usize]),
    train_y: Vec<usize>,
    test_y: Vec<usize>,
) -> Dataset<T> {
    let (train_raw, train_rows) = train;
    let (test_raw, test_rows) = test;
    let (mean, std) = mean_std(
        train_rows
            .iter()
            .flat_map(|&r| &train_raw[r * d..(r + 1) * d])
            .map(|&p| f64::from(p) / scale),
    );
    // All-equal pixels would give std 0; standardising then only centres.
    let std = if std > 0.0 { std } else { 1.0 };
    Dataset {
        kind,
        inputs: d,
        classes,
        train_x: standardise(train_raw, d, train_rows, scale, mean, std),
        test_x: standardise(test_raw, d, test_rows, scale, mean, std),
        train_y,
        test_y,
        normalisation: format!(
            "pixels ÷{scale}, then (x − {mean:.6})/{std:.6} (train-set global mean/std)"
        ),
    }
}

fn split_rows(n: usize) -> (Vec<usize>, Vec<usize>) {
    cut(split_permutation(n))
}

/// A permutation of `0..n` cut into its training rows (the first `n − ⌈n/5⌉`) and test rows.
fn cut(mut perm: Vec<usize>) -> (Vec<usize>, Vec<usize>) {
    let test = perm.split_off(perm.len() - test_count(perm.len()));
    (perm, test)
}

/// The training and test rows of `n` digits under `split`.
fn digits_rows(n: usize, split: Split, dir: &Path) -> Result<(Vec<usize>, Vec<usize>), HostError> {
    match split {
        Split::Seeded => Ok(split_rows(n)),
        Split::Reference => {
            let perm = reference_permutation();
            if perm.len() != n {
                return Err(HostError::Data(format!(
                    "{}: --split reference is a split of sklearn's {} digits; these files hold {n}",
                    dir.display(),
                    perm.len()
                )));
            }
            Ok(cut(perm))
        }
    }
}

fn gather(labels: &[usize], rows: &[usize]) -> Vec<usize> {
    rows.iter().map(|&r| labels[r]).collect()
}

/// Loads a dataset from `data_dir` (or its default location; see [`resolve_dir`]), split and
/// normalised as the module docs say. An empty training or test set is an error.
pub fn load<T: Element>(
    kind: DatasetKind,
    data_dir: Option<&Path>,
    split: Split,
) -> Result<Dataset<T>, HostError> {
    if split == Split::Reference && kind != DatasetKind::Digits {
        return Err(HostError::Usage(format!(
            "--split reference is the reference implementation's split of digits; {}'s split is {}",
            kind.name(),
            Split::Seeded.describe(kind)
        )));
    }
    let dir = resolve_dir(kind, data_dir)?;
    let data = load_from::<T>(kind, &dir, split)?;
    if data.train_y.is_empty() || data.test_y.is_empty() {
        return Err(HostError::Data(format!(
            "{}: empty dataset: {} training and {} test samples",
            dir.display(),
            data.train_y.len(),
            data.test_y.len()
        )));
    }
    // Files are checked for NaN and infinity as they are read; standardising values near the
    // largest float can still overflow (the mean or variance), which is refused here rather
    // than found as a bad batch in the middle of training.
    for (set, x) in [("training", &data.train_x), ("test", &data.test_x)] {
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(HostError::Data(format!(
                "{}: {set} sample {}, feature {}, is not finite after normalisation \
                 ({}); values too large?",
                dir.display(),
                i / data.inputs,
                i % data.inputs,
                data.normalisation
            )));
        }
    }
    Ok(data)
}

fn load_from<T: Element>(
    kind: DatasetKind,
    dir: &Path,
    split: Split,
) -> Result<Dataset<T>, HostError> {
    let dir = dir.to_path_buf();
    match kind {
        DatasetKind::Idx => load_idx(&dir),
        DatasetKind::Digits => {
            let (n, raw) = read_images(&find_file(&dir, "digits-images-idx3-ubyte"), 8)?;
            let labels = read_labels(&find_file(&dir, "digits-labels-idx1-ubyte"), n, 10)?;
            if let Some(&p) = raw.iter().find(|&&p| p > 16) {
                return Err(HostError::Data(format!(
                    "{}: digits pixels are counts in 0..=16, found {p}",
                    dir.display()
                )));
            }
            let (train, test) = digits_rows(n, split, &dir)?;
            let (train_y, test_y) = (gather(&labels, &train), gather(&labels, &test));
            Ok(image_dataset(
                kind,
                (64, 10),
                16.0,
                (&raw, &train),
                (&raw, &test),
                train_y,
                test_y,
            ))
        }
        DatasetKind::Mnist => {
            let [tri, trl, tei, tel] = MNIST_FILES.map(|f| find_file(&dir, f));
            let (n_train, train_raw) = read_images(&tri, 28)?;
            let train_y = read_labels(&trl, n_train, 10)?;
            let (n_test, test_raw) = read_images(&tei, 28)?;
            let test_y = read_labels(&tel, n_test, 10)?;
            let train: Vec<usize> = (0..n_train).collect();
            let test: Vec<usize> = (0..n_test).collect();
            Ok(image_dataset(
                kind,
                (784, 10),
                255.0,
                (&train_raw, &train),
                (&test_raw, &test),
                train_y,
                test_y,
            ))
        }
        DatasetKind::BreastCancer => {
            let fpath = find_file(&dir, "breast_cancer-features-idx2-float");
            let a = IdxArray::read(&fpath)?;
            let d = 30;
            let n = match a.dims() {
                [n, f] if *f == d => *n,
                dims => {
                    return Err(HostError::Data(format!(
                        "{}: expected a feature table of shape (N, {d}), found {dims:?}",
                        fpath.display()
                    )));
                }
            };
            let x = a.to_f64();
            let labels = read_labels(&find_file(&dir, "breast_cancer-labels-idx1-ubyte"), n, 2)?;
            let (train, test) = split_rows(n);
            let stats: Vec<(f64, f64)> = (0..d)
                .map(|j| {
                    let (m, s) = mean_std(train.iter().map(|&r| x[r * d + j]));
                    (m, if s > 0.0 { s } else { 1.0 })
                })
                .collect();
            let rows = |rows: &[usize]| -> Vec<T> {
                rows.iter()
                    .flat_map(|&r| {
                        stats
                            .iter()
                            .enumerate()
                            .map(move |(j, &(m, s))| (r, j, m, s))
                    })
                    .map(|(r, j, m, s)| T::from_f64((x[r * d + j] - m) / s))
                    .collect()
            };
            Ok(Dataset {
                kind,
                inputs: d,
                classes: 2,
                train_x: rows(&train),
                test_x: rows(&test),
                train_y: gather(&labels, &train),
                test_y: gather(&labels, &test),
                normalisation: "each feature (x − mean)/std with its train-split statistics"
                    .to_string(),
            })
        }
    }
}

/// Most classes `--dataset idx` accepts (a label table is not a regression target).
pub const MAX_CLASSES: usize = 65_536;

/// The one file in `dir` whose name starts with one of `prefixes` (hidden files ignored).
fn find_role(dir: &Path, prefixes: &[&str]) -> Result<PathBuf, HostError> {
    let entries = std::fs::read_dir(dir).map_err(|source| HostError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            !name.starts_with('.') && prefixes.iter().any(|p| name.starts_with(p))
        })
        .map(|e| e.path())
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(HostError::Data(format!(
            "{}: no {}* IDX file (see `agd train --help`, --dataset idx)",
            dir.display(),
            prefixes.join("* or ")
        ))),
        _ => Err(HostError::Data(format!(
            "{}: several files could be the {}* file: {}",
            dir.display(),
            prefixes[0],
            found
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Samples `(N, …)` of an IDX file: `N`, features per sample, the array.
fn read_samples(path: &Path) -> Result<(usize, usize, IdxArray), HostError> {
    let a = IdxArray::read(path)?;
    match a.dims() {
        [n, rest @ ..] if !rest.is_empty() => {
            // The product fits: the reader checked the dimensions' product against the file.
            let d: usize = rest.iter().product();
            if d == 0 {
                return Err(HostError::Data(format!(
                    "{}: samples of shape {rest:?} have no features",
                    path.display()
                )));
            }
            Ok((*n, d, a))
        }
        dims => Err(HostError::Data(format!(
            "{}: expected samples of shape (N, …), found {} {dims:?}",
            path.display(),
            a.dtype().name()
        ))),
    }
}

/// Integer labels `(n,)` of an IDX file, each in `0..MAX_CLASSES`.
fn read_int_labels(path: &Path, n: usize) -> Result<Vec<usize>, HostError> {
    let a = IdxArray::read(path)?;
    let integer = !matches!(a.dtype(), IdxType::F32 | IdxType::F64);
    if a.dims() != [n] || !integer {
        return Err(HostError::Data(format!(
            "{}: expected {n} integer labels (shape ({n},)), found {} {:?}",
            path.display(),
            a.dtype().name(),
            a.dims()
        )));
    }
    a.to_f64()
        .iter()
        .enumerate()
        .map(|(i, &y)| {
            if (0.0..MAX_CLASSES as f64).contains(&y) {
                Ok(y as usize)
            } else {
                Err(HostError::Data(format!(
                    "{}: label {y} of sample {i} is out of range (0 to {})",
                    path.display(),
                    MAX_CLASSES - 1
                )))
            }
        })
        .collect()
}

/// Values of a non-`u8` table in `T`, every one finite there.
fn table_in<T: Element>(path: &Path, a: &IdxArray, d: usize) -> Result<Vec<T>, HostError> {
    let values = a.to_f64();
    let mut out = crate::pages::vec_on_huge_pages(values.len());
    for (i, &v) in values.iter().enumerate() {
        let x = T::from_f64(v);
        if !x.is_finite() {
            return Err(HostError::Data(format!(
                "{}: value {v:e} (sample {}, feature {}) does not fit {} (try --dtype f64)",
                path.display(),
                i / d,
                i % d,
                T::NAME
            )));
        }
        out.push(x);
    }
    Ok(out)
}

/// `--dataset idx`: see the module docs.
fn load_idx<T: Element>(dir: &Path) -> Result<Dataset<T>, HostError> {
    let tri = find_role(dir, &["train-images"])?;
    let trl = find_role(dir, &["train-labels"])?;
    let tei = find_role(dir, &["test-images", "t10k-images"])?;
    let tel = find_role(dir, &["test-labels", "t10k-labels"])?;
    let (n_train, d, train) = read_samples(&tri)?;
    let (n_test, d_test, test) = read_samples(&tei)?;
    if d_test != d || train.dtype() != test.dtype() {
        return Err(HostError::Data(format!(
            "{}: test samples are {} x {d_test}, training samples {} x {d}",
            tei.display(),
            test.dtype().name(),
            train.dtype().name()
        )));
    }
    let train_y = read_int_labels(&trl, n_train)?;
    let test_y = read_int_labels(&tel, n_test)?;
    if n_train == 0 || n_test == 0 {
        return Err(HostError::Data(format!(
            "{}: empty dataset: {n_train} training and {n_test} test samples",
            dir.display()
        )));
    }
    let classes = train_y.iter().max().map_or(0, |&m| m + 1);
    if classes < 2 {
        return Err(HostError::Data(format!(
            "{}: every training label is 0: a classifier needs at least two classes",
            trl.display()
        )));
    }
    if let Some((i, &y)) = test_y.iter().enumerate().find(|&(_, &y)| y >= classes) {
        return Err(HostError::Data(format!(
            "{}: label {y} of test sample {i} is out of range: the training labels have \
             {classes} classes",
            tel.display()
        )));
    }
    if let (Some(train_raw), Some(test_raw)) = (train.as_u8(), test.as_u8()) {
        let train_rows: Vec<usize> = (0..n_train).collect();
        let test_rows: Vec<usize> = (0..n_test).collect();
        return Ok(image_dataset(
            DatasetKind::Idx,
            (d, classes),
            255.0,
            (train_raw, &train_rows),
            (test_raw, &test_rows),
            train_y,
            test_y,
        ));
    }
    Ok(Dataset {
        kind: DatasetKind::Idx,
        inputs: d,
        classes,
        train_x: table_in(&tri, &train, d)?,
        test_x: table_in(&tei, &test, d)?,
        train_y,
        test_y,
        normalisation: format!("{} values as given", train.dtype().name()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_a_permutation_with_the_documented_sizes() {
        for n in [1797, 569, 1, 2] {
            let mut p = split_permutation(n);
            p.sort_unstable();
            assert_eq!(p, (0..n).collect::<Vec<_>>());
        }
        assert_eq!(test_count(1797), 360);
        assert_eq!(test_count(569), 114);
    }

    #[test]
    fn shuffle_follows_the_recipe() {
        // Replays the documented loop by hand for n = 4.
        let mut rng = SplitMix64::new(0);
        let mut expected = [0usize, 1, 2, 3];
        for i in (1..4usize).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            expected.swap(i, j);
        }
        assert_eq!(split_permutation(4), expected);
    }

    #[test]
    fn digits_load_split_and_normalise() {
        let d = load::<f64>(DatasetKind::Digits, None, Split::Seeded).unwrap();
        assert_eq!(d.train_y.len(), 1437);
        assert_eq!(d.test_y.len(), 360);
        assert_eq!(d.train_x.len(), 1437 * 64);
        assert_eq!(d.test_x.len(), 360 * 64);
        // Standardised with its own statistics, the training set has mean 0 and variance 1.
        let (m, s) = mean_std(d.train_x.iter().copied());
        assert!(m.abs() < 1e-12, "{m}");
        assert!((s - 1.0).abs() < 1e-12, "{s}");
        // Every class is in both sets.
        for c in 0..10 {
            assert!(d.test_y.contains(&c));
            assert!(d.train_y.contains(&c));
        }
    }

    #[test]
    fn reference_split_is_the_references() {
        let perm = reference_permutation();
        let mut sorted = perm.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (0..1797).collect::<Vec<_>>(),
            "a permutation of 0..1797"
        );
        assert_ne!(perm, split_permutation(1797));
        let d = load::<f64>(DatasetKind::Digits, None, Split::Reference).unwrap();
        assert_eq!((d.train_y.len(), d.test_y.len()), (1437, 360));
        // REFERENCE-RESULTS.md: the reference's digits train split has pixel mean / std
        // 0.305447 / 0.376037 (after ÷16); the seeded split's are others.
        assert!(
            d.normalisation.contains("(x − 0.305447)/0.376037"),
            "{}",
            d.normalisation
        );
        let seeded = load::<f64>(DatasetKind::Digits, None, Split::Seeded).unwrap();
        assert!(!seeded.normalisation.contains("0.305447"));
        // Its rows are the files' rows in the permutation's order.
        let labels = read_labels(
            &find_file(
                &resolve_dir(DatasetKind::Digits, None).unwrap(),
                "digits-labels-idx1-ubyte",
            ),
            1797,
            10,
        )
        .unwrap();
        assert_eq!(d.test_y, gather(&labels, &perm[1437..]));
    }

    #[test]
    fn reference_split_is_refused_for_other_datasets() {
        for kind in [
            DatasetKind::Mnist,
            DatasetKind::BreastCancer,
            DatasetKind::Idx,
        ] {
            let err = load::<f32>(kind, None, Split::Reference).unwrap_err();
            assert!(matches!(err, HostError::Usage(_)), "{kind:?}: {err}");
            assert!(err.to_string().contains("--split reference"), "{err}");
        }
    }

    #[test]
    fn breast_cancer_columns_are_standardised_on_the_train_split() {
        let d = load::<f64>(DatasetKind::BreastCancer, None, Split::Seeded).unwrap();
        assert_eq!((d.train_y.len(), d.test_y.len()), (455, 114));
        for j in 0..30 {
            let (m, s) = mean_std(d.train_x.iter().skip(j).step_by(30).copied());
            assert!(
                m.abs() < 1e-9 && (s - 1.0).abs() < 1e-9,
                "column {j}: {m} {s}"
            );
        }
    }

    #[test]
    fn missing_directory_is_an_error() {
        let err = load::<f32>(
            DatasetKind::Mnist,
            Some(Path::new("/nonexistent/agd")),
            Split::Seeded,
        )
        .unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
    }
}
