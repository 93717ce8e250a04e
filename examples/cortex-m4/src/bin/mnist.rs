//! Trains a `[784, 64, 10]` network on MNIST inside 256 KiB of RAM, on the device, with AGD
//! and the gradient-buffer-free step.
//!
//! The memory map gives RAM `LENGTH = 256K` (`memory-an386-256k.x`), so the link itself proves
//! that the weights, activations, errors, I/O buffers and a stack reserve fit. The standard step
//! would need another 203,264 B for the gradient — it does not fit.
//!
//! Samples come from the host through semihosting file I/O (a stand-in for a sensor stream):
//! the runner passes the directory of the four IDX files as the first argument. The firmware
//! trains on `TRAIN_SAMPLES` samples in file order, tests on all 10,000 test samples, and exits
//! 0 only if the test accuracy is at least 90 %.
#![no_std]
#![no_main]

use agd_core::{Agd, Loss, NetMut, Network, SplitMix64};
use agd_cortex_m4::cycles;
use agd_cortex_m4::data::{MNIST_MEAN, MNIST_STD, Standardize};
use agd_cortex_m4::idx_file::{IdxError, IdxFile};
use cortex_m_rt::entry;
use defmt_semihosting as _;
use panic_probe as _;
use static_cell::ConstStaticCell;

agd_cortex_m4::exit_on_hard_fault!();

agd_core::dense_network!(
    /// The MNIST network, without a gradient buffer.
    Mnist: f32 = [784, 64, 10], batch 8, buffer_free
);
// Only for its RAM constant: the same network with the standard step's gradient buffer.
agd_core::dense_network!(MnistWithGrads: f32 = [784, 64, 10], batch 8);

const BATCH: usize = Mnist::BATCH;
const PIXELS: usize = 784;
/// Training samples, in file order (wrapping around the 60,000 if larger).
const TRAIN_SAMPLES: usize = 30_000;
/// Log progress every this many training samples.
const LOG_EVERY: usize = 5_000;
const SEED: u64 = 1;

/// Every buffer is a static: the network, and one batch of raw pixels and labels.
static NET: ConstStaticCell<Mnist> = ConstStaticCell::new(Mnist::new());
static PIXEL_BUF: ConstStaticCell<[u8; BATCH * PIXELS]> = ConstStaticCell::new([0; BATCH * PIXELS]);

#[entry]
fn main() -> ! {
    agd_cortex_m4::run_and_exit(run)
}

/// The IDX directory: the first argument the runner passed (after the program name).
fn with_data_dir<R>(f: impl FnOnce(&str) -> R) -> Result<R, ()> {
    let args = semihosting::experimental::env::args::<512>()
        .map_err(|_| defmt::error!("no semihosting command line"))?;
    let mut it = &args;
    let dir = it
        .nth(1)
        .and_then(|a| a.ok())
        .filter(|d| *d != "none")
        .ok_or_else(|| {
            defmt::error!("pass the MNIST directory as the first argument (AGD_MNIST_DIR)")
        })?;
    defmt::info!("MNIST from {=str}", dir);
    Ok(f(dir))
}

struct Split {
    images: IdxFile,
    labels: IdxFile,
}

fn open(dir: &str, prefix: &str) -> Result<Split, IdxError> {
    let (img, lab) = match prefix {
        "train" => ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        _ => ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    };
    let images = IdxFile::open(dir, img, 3)?;
    let labels = IdxFile::open(dir, lab, 1)?;
    if images.header.record != PIXELS || labels.header.count != images.header.count {
        return Err(IdxError::BadHeader);
    }
    Ok(Split { images, labels })
}

impl Split {
    /// Reads samples `first..first + n` into the network's input block (standardised) and
    /// their labels into `targets`.
    fn load(
        &mut self,
        first: usize,
        n: usize,
        pixels: &mut [u8; BATCH * PIXELS],
        v: &mut NetMut<'_, f32>,
        norm: &Standardize,
        targets: &mut [usize; BATCH],
    ) -> Result<(), ()> {
        let raw = &mut pixels[..n * PIXELS];
        self.images
            .read(first, raw)
            .map_err(|e| defmt::error!("images: {}", e))?;
        let mut labels = [0u8; BATCH];
        self.labels
            .read(first, &mut labels[..n])
            .map_err(|e| defmt::error!("labels: {}", e))?;
        for (t, &l) in targets.iter_mut().zip(&labels[..n]) {
            *t = l as usize;
        }
        let input = v.input_mut(n).map_err(|e| defmt::error!("{}", e))?;
        norm.apply(raw, input);
        Ok(())
    }
}

fn run() -> Result<bool, ()> {
    let (train, test) = with_data_dir(|dir| (open(dir, "train"), open(dir, "t10k")))?;
    let mut train = train.map_err(|e| defmt::error!("MNIST training files: {}", e))?;
    let mut test = test.map_err(|e| defmt::error!("MNIST test files: {}", e))?;
    let norm = Standardize::new(255, MNIST_MEAN as f64, MNIST_STD as f64);

    let (net, pixels) = (NET.take(), PIXEL_BUF.take());
    let mut v = net.view();
    v.init_orthogonal(&mut SplitMix64::new(SEED));
    let agd = Agd::new();
    defmt::info!(
        "network [784, 64, 10], batch {=usize}, AGD gain 1, xent; RAM for the network and its training buffers: {=usize} B (with a gradient buffer: {=usize} B); all statics {=usize} B, stack room {=usize} B, of 262144 B",
        BATCH,
        Mnist::RAM_BYTES,
        MnistWithGrads::RAM_BYTES,
        agd_cortex_m4::static_ram(),
        agd_cortex_m4::stack_room()
    );

    let total = train.images.header.count;
    let mut targets = [0usize; BATCH];
    let (mut loss_sum, mut eta_sum, mut correct, mut steps) = (0.0f32, 0.0f32, 0usize, 0usize);
    let (mut step_instr, mut step_count) = (0u64, 0u64);
    let t_train = cycles::now();
    let mut seen = 0;
    while seen < TRAIN_SAMPLES {
        let first = seen % total;
        let n = BATCH.min(TRAIN_SAMPLES - seen).min(total - first);
        train.load(first, n, pixels, &mut v, &norm, &mut targets)?;
        let t0 = cycles::now();
        let r = v
            .train_step_buffer_free(&agd, Loss::Xent, &targets[..n])
            .map_err(|e| defmt::error!("step failed: {}", e))?;
        let t1 = cycles::now();
        if n == BATCH {
            step_instr += cycles::instructions(t0, t1);
            step_count += 1;
        }
        loss_sum += r.loss * n as f32;
        eta_sum += r.step.eta;
        correct += r.correct;
        steps += 1;
        seen += n;
        if seen % LOG_EVERY == 0 || seen == TRAIN_SAMPLES {
            defmt::info!(
                "trained on {=usize} samples: last {=usize} mean loss {=f32}, eta {=f32}, train acc {=f32} %",
                seen,
                LOG_EVERY,
                loss_sum / LOG_EVERY as f32,
                eta_sum / steps as f32,
                100.0 * correct as f32 / LOG_EVERY as f32
            );
            (loss_sum, eta_sum, correct, steps) = (0.0, 0.0, 0, 0);
        }
    }
    let train_instr = cycles::instructions(t_train, cycles::now());

    let t_test = cycles::now();
    let count = test.images.header.count;
    let mut right = 0;
    let mut first = 0;
    while first < count {
        let n = BATCH.min(count - first);
        test.load(first, n, pixels, &mut v, &norm, &mut targets)?;
        v.forward(n).map_err(|e| defmt::error!("{}", e))?;
        right += v.count_correct(&targets[..n]);
        first += n;
    }
    let acc = right as f32 / count as f32;
    let test_instr = cycles::instructions(t_test, cycles::now());

    defmt::info!(
        "instructions per training step (batch 8): {=u64}; whole training {=u64}, testing {=u64}",
        step_instr / step_count,
        train_instr,
        test_instr
    );
    defmt::info!(
        "RAM: all statics {=usize} B + peak stack {=usize} B = {=usize} B of 262144 B",
        agd_cortex_m4::static_ram(),
        agd_cortex_m4::stack_peak(),
        agd_cortex_m4::static_ram() + agd_cortex_m4::stack_peak()
    );
    let pass = acc >= 0.9;
    if pass {
        defmt::info!(
            "PASS: test accuracy {=f32} % ({=usize}/{=usize}) >= 90 % after {=usize} training samples",
            100.0 * acc,
            right,
            count,
            TRAIN_SAMPLES
        );
    } else {
        defmt::error!(
            "FAIL: test accuracy {=f32} % ({=usize}/{=usize}) < 90 %",
            100.0 * acc,
            right,
            count
        );
    }
    Ok(pass)
}
