//! Training that survives resets: each boot restores the newest checkpoint from the emulated
//! flash (if there is one), trains one more epoch of the digits network `[64, 32, 10]`, saves
//! through agd-core's A/B store, and resets the chip (`SCB::sys_reset`, SYSRESETREQ; QEMU
//! reboots and reloads the image, and the emulated flash keeps its contents, see
//! `src/emuflash.rs`).
//!
//! The boot after the last epoch checks the result: test accuracy at least 90 %, one record
//! per training boot (sequence number = epochs, so every boot resumed from the one before),
//! and the weights, step count and RNG state bit-identical to the same training run here
//! without any reset. Exits 0 only then.
#![no_std]
#![no_main]

use agd_core::checkpoint::{ElemType, Progress, checkpoint_len};
use agd_core::storage::{AbStore, SliceFlash, slot_bytes};
use agd_core::{Agd, Error, Loss, NetMut, Network, SplitMix64};
use agd_cortex_m4::data::{
    DIGITS_PIXELS, DIGITS_SAMPLES, DIGITS_TRAIN, Standardize, digits, digits_batch, digits_split,
    pixel_stats, shuffle,
};
use agd_cortex_m4::{cycles, emuflash, exit};
use cortex_m_rt::entry;
use defmt_semihosting as _;
use panic_probe as _;
use static_cell::ConstStaticCell;

agd_cortex_m4::exit_on_hard_fault!();

agd_core::dense_network!(
    /// The digits network, without a gradient buffer.
    Digits: f32 = [64, 32, 10], batch 8, buffer_free
);

const BATCH: usize = Digits::BATCH;
/// Epochs to train, one per boot.
const EPOCHS: u64 = 5;
const STEPS_PER_EPOCH: u64 = DIGITS_TRAIN.div_ceil(BATCH) as u64;
/// Seed of the weight initialisation; the same generator then orders the data.
const SEED: u64 = 1;
const CKPT: usize = checkpoint_len(Digits::WIDTHS, ElemType::F32);
const SLOT: usize = slot_bytes(CKPT, emuflash::PAGE);
/// A boot that finds no checkpoint after this much host CPU time (semihosting `SYS_CLOCK`,
/// which QEMU counts from its own start, across resets) is not the first boot: the flash was
/// lost in a reset. Stop rather than start over forever.
const FIRST_BOOT_CENTISECONDS: usize = 500;

static NET: ConstStaticCell<Digits> = ConstStaticCell::new(Digits::new());
/// The same training without resets, for the final comparison.
static REFERENCE: ConstStaticCell<Digits> = ConstStaticCell::new(Digits::new());
static SPLIT: ConstStaticCell<[u16; DIGITS_SAMPLES]> = ConstStaticCell::new([0; DIGITS_SAMPLES]);
static ORDER: ConstStaticCell<[u16; DIGITS_TRAIN]> = ConstStaticCell::new([0; DIGITS_TRAIN]);
static CKPT_BUF: ConstStaticCell<[u8; CKPT]> = ConstStaticCell::new([0; CKPT]);

#[entry]
fn main() -> ! {
    let cp = cortex_m::Peripherals::take().unwrap();
    cycles::start(cp.SYST);
    match run() {
        Ok(true) => exit(0),
        Ok(false) => exit(1),
        Err(()) => exit(2),
    }
}

/// The dataset, split and normalisation every boot derives the same way.
struct Data<'a> {
    images: &'static [u8],
    labels: &'static [u8],
    train: &'a [u16],
    test: &'a [u16],
    norm: Standardize,
}

fn run() -> Result<bool, ()> {
    let (images, labels) = digits().map_err(|e| defmt::error!("digits: {}", e))?;
    let split = SPLIT.take();
    digits_split(split);
    let (train, test) = split.split_at(DIGITS_TRAIN);
    let (mean, std) = pixel_stats(images, DIGITS_PIXELS, train, 16);
    let data = Data {
        images,
        labels,
        train,
        test,
        norm: Standardize::new(16, mean, std),
    };
    let (net, order, buf) = (NET.take(), ORDER.take(), CKPT_BUF.take());

    let flash = emuflash::take().ok_or_else(|| defmt::error!("emulated flash taken twice"))?;
    let mut store: AbStore<SliceFlash<'static>> = AbStore::new(flash, 0, SLOT)
        .map_err(|e| defmt::error!("A/B store on the emulated flash: {}", e))?;
    let mut v = net.view();

    let t0 = cycles::now();
    let restored = store.restore(buf);
    let (mut progress, seq) = match restored {
        Ok(rec) => {
            let p = v
                .load_checkpoint(&buf[..rec.len])
                .map_err(|e| defmt::error!("checkpoint refused: {}", e))?;
            let t1 = cycles::now();
            defmt::info!(
                "boot: restored record seq {=u32} ({=usize} B): step {=u64}, RNG state {=u64:#x}; {=u64} instructions to find, check and load it",
                rec.seq,
                rec.len,
                p.step,
                p.rng,
                cycles::instructions(t0, t1)
            );
            (p, rec.seq)
        }
        Err(Error::NoCheckpoint) => {
            let clock = semihosting::sys::arm_compat::sys_clock().unwrap_or(0);
            if clock > FIRST_BOOT_CENTISECONDS {
                defmt::error!(
                    "no checkpoint after {=usize} cs of QEMU time: the emulated flash did not survive the reset",
                    clock
                );
                return Err(());
            }
            let mut rng = SplitMix64::new(SEED);
            v.init_orthogonal(&mut rng);
            defmt::info!(
                "boot: no checkpoint in the emulated flash ({=usize} KiB at the top of SSRAM1, {=usize} B slots): fresh start",
                emuflash::capacity() / 1024,
                SLOT
            );
            (
                Progress {
                    step: 0,
                    rng: rng.state(),
                },
                0,
            )
        }
        Err(e) => {
            defmt::error!("restore failed: {}", e);
            return Err(());
        }
    };

    let agd = Agd::new();
    if progress.step < EPOCHS * STEPS_PER_EPOCH {
        let mut rng = SplitMix64::new(progress.rng);
        let (loss, correct, steps) = train_epoch(&mut v, &agd, &mut rng, &data, order)?;
        progress = Progress {
            step: progress.step + steps,
            rng: rng.state(),
        };
        let t1 = cycles::now();
        let n = v
            .save_checkpoint(progress, buf)
            .map_err(|e| defmt::error!("save: {}", e))?;
        let rec = store
            .commit(&buf[..n])
            .map_err(|e| defmt::error!("commit: {}", e))?;
        let t2 = cycles::now();
        let test_correct = evaluate(&mut v, &data)?;
        defmt::info!(
            "epoch {=u64}: loss {=f32} train acc {=f32} % test acc {=f32} %; saved step {=u64} as record seq {=u32} in {=u64} instructions (encode + erase + write + verify); resetting",
            progress.step / STEPS_PER_EPOCH,
            loss,
            100.0 * correct as f32 / DIGITS_TRAIN as f32,
            100.0 * test_correct as f32 / data.test.len() as f32,
            progress.step,
            rec.seq,
            cycles::instructions(t1, t2)
        );
        cortex_m::peripheral::SCB::sys_reset();
    }

    // The last boot: check what came back through the resets.
    let test_correct = evaluate(&mut v, &data)?;
    let acc = test_correct as f32 / data.test.len() as f32;
    let mut reference = REFERENCE.take().view();
    let mut rng = SplitMix64::new(SEED);
    reference.init_orthogonal(&mut rng);
    let mut steps = 0;
    for _ in 0..EPOCHS {
        steps += train_epoch(&mut reference, &agd, &mut rng, &data, order)?.2;
    }
    let same_weights = v
        .weights()
        .iter()
        .zip(reference.weights())
        .all(|(a, b)| a.to_bits() == b.to_bits());
    defmt::info!(
        "after {=u32} boots that trained: step {=u64} (without resets {=u64}), RNG state {=u64:#x} ({=u64:#x}), weights bit-identical to the run without resets: {=bool}",
        seq,
        progress.step,
        steps,
        progress.rng,
        rng.state(),
        same_weights
    );
    let ram = agd_cortex_m4::static_ram();
    let stack = agd_cortex_m4::stack_peak();
    defmt::info!(
        "RAM: all statics {=usize} B (two networks, a {=usize} B checkpoint buffer) + peak stack {=usize} B; emulated flash: 2 slots of {=usize} B",
        ram,
        CKPT,
        stack,
        SLOT
    );
    let pass = same_weights
        && progress.step == steps
        && progress.rng == rng.state()
        && u64::from(seq) == EPOCHS
        && acc >= 0.9;
    if pass {
        defmt::info!(
            "PASS: resumed across {=u64} resets bit-exactly; test accuracy {=f32} % >= 90 %",
            EPOCHS,
            100.0 * acc
        );
    } else {
        defmt::error!(
            "FAIL: resume not exact, or test accuracy {=f32} % < 90 %",
            100.0 * acc
        );
    }
    Ok(pass)
}

/// One epoch: the training indices in an order drawn from `rng` (a fresh Fisher–Yates of the
/// split's order, so the order depends on the RNG state alone), batches of 8, the buffer-free
/// AGD step. Returns the mean loss, correct predictions and steps taken.
fn train_epoch(
    v: &mut NetMut<'_, f32>,
    agd: &Agd<f32>,
    rng: &mut SplitMix64,
    data: &Data<'_>,
    order: &mut [u16; DIGITS_TRAIN],
) -> Result<(f32, usize, u64), ()> {
    order.copy_from_slice(data.train);
    shuffle(order, rng);
    let (mut loss_sum, mut correct, mut steps) = (0.0f32, 0, 0);
    for chunk in order.chunks(BATCH) {
        let mut targets = [0usize; BATCH];
        let input = v
            .input_mut(chunk.len())
            .map_err(|e| defmt::error!("{}", e))?;
        digits_batch(
            data.images,
            data.labels,
            &data.norm,
            chunk,
            input,
            &mut targets,
        );
        let r = v
            .train_step_buffer_free(agd, Loss::Xent, &targets[..chunk.len()])
            .map_err(|e| defmt::error!("step failed: {}", e))?;
        loss_sum += r.loss * chunk.len() as f32;
        correct += r.correct;
        steps += 1;
    }
    Ok((loss_sum / DIGITS_TRAIN as f32, correct, steps))
}

/// Correct predictions over the test split, forward pass only.
fn evaluate(v: &mut NetMut<'_, f32>, data: &Data<'_>) -> Result<usize, ()> {
    let mut correct = 0;
    for chunk in data.test.chunks(BATCH) {
        let mut targets = [0usize; BATCH];
        let input = v
            .input_mut(chunk.len())
            .map_err(|e| defmt::error!("{}", e))?;
        digits_batch(
            data.images,
            data.labels,
            &data.norm,
            chunk,
            input,
            &mut targets,
        );
        v.forward(chunk.len()).map_err(|e| defmt::error!("{}", e))?;
        correct += v.count_correct(&targets[..chunk.len()]);
    }
    Ok(correct)
}
