//! Training that survives resets: each boot restores the newest checkpoint from the emulated
//! flash (if there is one), trains one more epoch of the digits network `[64, 32, 10]`, saves
//! through agd-core's A/B store, and resets the chip (`SCB::sys_reset`, SYSRESETREQ; QEMU
//! reboots and reloads the image, and the emulated flash keeps its contents, see
//! `src/emuflash.rs`).
//!
//! Once, the commit of epoch [`CUT_EPOCH`] is cut short by a reset halfway through writing the
//! checkpoint (a power cut, as far as the flash is concerned): the next boot must find the
//! previous checkpoint, train that epoch again and go on.
//!
//! The boot after the last epoch checks the result: test accuracy at least 90 %, one record
//! per completed epoch (sequence number = epochs, so every boot resumed from the newest good
//! one), the interrupted commit happened, and the weights, step count and RNG state are
//! bit-identical to the same training run here without any reset. Exits 0 only then.
#![no_std]
#![no_main]

use agd_core::checkpoint::{ElemType, Progress, checkpoint_len};
use agd_core::storage::{AbStore, Flash, SliceFlash, slot_bytes};
use agd_core::{Agd, Error, Loss, NetMut, Network, SplitMix64};
use agd_cortex_m4::data::{DIGITS_SAMPLES, DIGITS_TRAIN, shuffle};
use agd_cortex_m4::train::Digits as Set;
use agd_cortex_m4::{cycles, emuflash};
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
/// The epoch whose commit the first time is cut short by a reset.
const CUT_EPOCH: u64 = 3;
/// Where, in the emulated flash, past the two slots, the firmware notes that it has cut a
/// commit short (so that it does so once): a page of its own.
const NOTE_AT: usize = 2 * SLOT;
const CUT_NOTE: [u8; 4] = *b"CUT!";

static NET: ConstStaticCell<Digits> = ConstStaticCell::new(Digits::new());
/// The same training without resets, for the final comparison.
static REFERENCE: ConstStaticCell<Digits> = ConstStaticCell::new(Digits::new());
static SPLIT: ConstStaticCell<[u16; DIGITS_SAMPLES]> = ConstStaticCell::new([0; DIGITS_SAMPLES]);
static ORDER: ConstStaticCell<[u16; DIGITS_TRAIN]> = ConstStaticCell::new([0; DIGITS_TRAIN]);
static CKPT_BUF: ConstStaticCell<[u8; CKPT]> = ConstStaticCell::new([0; CKPT]);

#[entry]
fn main() -> ! {
    agd_cortex_m4::run_and_exit(run)
}

/// The dataset, split and normalisation every boot derives the same way.
struct Data<'a> {
    digits: Set<'static>,
    train: &'a [u16],
    test: &'a [u16],
}

fn run() -> Result<bool, ()> {
    let split = SPLIT.take();
    let digits = Set::load(split)?;
    let (train, test) = split.split_at(DIGITS_TRAIN);
    let data = Data {
        digits,
        train,
        test,
    };
    let (net, order, buf) = (NET.take(), ORDER.take(), CKPT_BUF.take());

    let flash = emuflash::take().ok_or_else(|| defmt::error!("emulated flash taken twice"))?;
    let mut store = AbStore::new(CutFlash::new(flash), 0, SLOT)
        .map_err(|e| defmt::error!("A/B store on the emulated flash: {}", e))?;
    let mut note = [0u8; 4];
    store
        .flash()
        .read(NOTE_AT, &mut note)
        .map_err(|e| defmt::error!("{}", e))?;
    let cut_done = note == CUT_NOTE;
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
            // The page of the note starts erased (power-on RAM is all zeros).
            store
                .flash()
                .erase_page(NOTE_AT)
                .map_err(|e| defmt::error!("{}", e))?;
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
        if progress.step / STEPS_PER_EPOCH == CUT_EPOCH && !cut_done {
            store
                .flash()
                .write(NOTE_AT, &CUT_NOTE)
                .map_err(|e| defmt::error!("{}", e))?;
            // Bytes the commit writes before the checkpoint: zeros over the old mark (4), the
            // header (32); then half the checkpoint.
            store.flash().cut_after(4 + 32 + n / 2);
        }
        let rec = store
            .commit(&buf[..n])
            .map_err(|e| defmt::error!("commit: {}", e))?;
        let t2 = cycles::now();
        let test_correct = data.digits.evaluate::<_, BATCH>(&mut v, data.test)?;
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
    let test_correct = data.digits.evaluate::<_, BATCH>(&mut v, data.test)?;
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
        "after {=u32} committed epochs: step {=u64} (without resets {=u64}), RNG state {=u64:#x} ({=u64:#x}), weights bit-identical to the run without resets: {=bool}",
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
    defmt::info!(
        "the commit of epoch {=u64} was cut short by a reset once: {=bool}",
        CUT_EPOCH,
        cut_done
    );
    let pass = same_weights
        && cut_done
        && progress.step == steps
        && progress.rng == rng.state()
        && u64::from(seq) == EPOCHS
        && acc >= 0.9;
    if pass {
        defmt::info!(
            "PASS: resumed bit-exactly across {=u64} resets, one of them in the middle of a commit; test accuracy {=f32} % >= 90 %",
            EPOCHS + 1,
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

/// The emulated flash, with a power cut on demand: [`CutFlash::cut_after`] `k` more bytes
/// written, it writes the whole words that fit and resets the chip in the middle of the write.
struct CutFlash {
    flash: SliceFlash<'static>,
    left: Option<usize>,
}

impl CutFlash {
    fn new(flash: SliceFlash<'static>) -> Self {
        CutFlash { flash, left: None }
    }

    fn cut_after(&mut self, bytes: usize) {
        self.left = Some(bytes);
    }
}

impl Flash for CutFlash {
    fn capacity(&self) -> usize {
        self.flash.capacity()
    }

    fn page_size(&self) -> usize {
        self.flash.page_size()
    }

    fn write_size(&self) -> usize {
        self.flash.write_size()
    }

    fn erase_page(&mut self, offset: usize) -> Result<(), Error> {
        self.flash.erase_page(offset)
    }

    fn write(&mut self, offset: usize, data: &[u8]) -> Result<(), Error> {
        if let Some(left) = self.left {
            if data.len() > left {
                let part = left - left % self.flash.write_size();
                self.flash.write(offset, &data[..part])?;
                defmt::warn!(
                    "power cut: reset after {=usize} of the {=usize} bytes of a flash write at {=usize}",
                    part,
                    data.len(),
                    offset
                );
                cortex_m::peripheral::SCB::sys_reset();
            }
            self.left = Some(left - data.len());
        }
        self.flash.write(offset, data)
    }

    fn read(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), Error> {
        self.flash.read(offset, buf)
    }
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
    let step = |v: &mut NetMut<'_, f32>, targets: &[usize]| {
        v.train_step_buffer_free(agd, Loss::Xent, targets)
    };
    let e = data.digits.epoch::<_, BATCH>(v, order, step)?;
    Ok((e.loss, e.correct, e.steps))
}
