//! Trains a small CNN on the digits dataset (8x8x1 images), on the device, with AGD (no
//! learning rate); every buffer is a `static` declared by `conv_network!`, the dataset sits in
//! flash.
//!
//! The network: conv 1→8 3x3 pad 1 → conv 8→16 3x3 stride 2 pad 1 → flatten 256 → dense 10,
//! `sqrt(2)·relu` between layers, no bias. Logs per epoch: mean loss, mean η, training and test
//! accuracy, instructions per training step (SysTick under `-icount shift=0`); then the RAM.
//! Finally saves the trained network to the emulated flash (`src/emuflash.rs`, agd-core's A/B
//! store, layer-spec checkpoint), overwrites the weights, restores them and checks they are
//! bit-identical and score the same. Exits 0 only if that holds and the final test accuracy
//! is at least 90 %.
#![no_std]
#![no_main]

use agd_core::checkpoint::{ElemType, Progress, spec_checkpoint_len};
use agd_core::storage::{AbStore, slot_bytes};
use agd_core::{Agd, ConvNetMut, ConvNetwork, Loss, SplitMix64};
use agd_cortex_m4::data::{DIGITS_SAMPLES, DIGITS_TRAIN, digits_batch};
use agd_cortex_m4::train::Digits as Data;
use agd_cortex_m4::{cycles, emuflash};
use cortex_m_rt::entry;
use defmt_semihosting as _;
use panic_probe as _;
use static_cell::ConstStaticCell;

agd_cortex_m4::exit_on_hard_fault!();

agd_core::conv_network!(
    /// The digits CNN: weights, gradients, activations, errors, im2col scratch and norms.
    DigitsCnn: f32 = [1, 8, 8] => [conv(8, 3, 1, 1), conv(16, 3, 2, 1), dense(10)], batch 8
);

/// Every buffer is a static (zero-initialised `.bss`, no heap, nothing large on the stack),
/// handed out once as `&'static mut`.
static NET: ConstStaticCell<DigitsCnn> = ConstStaticCell::new(DigitsCnn::new());
static SPLIT: ConstStaticCell<[u16; DIGITS_SAMPLES]> = ConstStaticCell::new([0; DIGITS_SAMPLES]);
const CKPT: usize = spec_checkpoint_len(&DigitsCnn::LAYERS, ElemType::F32);
static CKPT_BUF: ConstStaticCell<[u8; CKPT]> = ConstStaticCell::new([0; CKPT]);

const EPOCHS: usize = 10;
const BATCH: usize = DigitsCnn::BATCH;
/// Seed of the weight initialisation and of the per-epoch reshuffles.
const SEED: u64 = 1;

#[entry]
fn main() -> ! {
    agd_cortex_m4::run_and_exit(run)
}

fn run() -> Result<bool, ()> {
    let (split, net) = (SPLIT.take(), NET.take());
    let data = Data::load(split)?;
    let (train, test) = split.split_at_mut(DIGITS_TRAIN);

    let mut v = net.view();
    let mut rng = SplitMix64::new(SEED);
    v.init_orthogonal(&mut rng);
    let agd = Agd::new();
    defmt::info!(
        "CNN [1, 8, 8] => conv 8 3x3 p1 => conv 16 3x3 s2 p1 => flatten 256 => dense 10, {=usize} weights, batch {=usize}, AGD gain 1, xent; RAM for the network and its training buffers: {=usize} B",
        DigitsCnn::PARAMS,
        BATCH,
        DigitsCnn::RAM_BYTES
    );

    let step =
        |v: &mut ConvNetMut<'_, f32>, targets: &[usize]| v.train_step(&agd, Loss::Xent, targets);
    let (acc, step_instr) =
        data.train::<_, BATCH>(&mut v, EPOCHS, (train, test), &mut rng, step)?;

    let test_correct = data.evaluate::<_, BATCH>(&mut v, test)?;
    let steps = (EPOCHS * train.len().div_ceil(BATCH)) as u64;
    let restored = save_and_restore(&mut v, steps, rng.state(), test_correct, test, &data)?;
    phases(&mut v, &agd, train, &data)?;
    let ram = agd_cortex_m4::static_ram();
    let stack = agd_cortex_m4::stack_peak();
    defmt::info!(
        "instructions per training step (batch 8): {=u64}",
        step_instr
    );
    defmt::info!(
        "RAM: network + training buffers {=usize} B; all statics {=usize} B (of which the checkpoint buffer {=usize} B) + peak stack {=usize} B = {=usize} B",
        DigitsCnn::RAM_BYTES,
        ram,
        CKPT,
        stack,
        ram + stack
    );
    let pass = acc >= 0.9 && restored;
    if !restored {
        defmt::error!("FAIL: the network restored from the emulated flash differs");
    }
    if pass {
        defmt::info!("PASS: final test accuracy {=f32} % >= 90 %", 100.0 * acc);
    } else {
        defmt::error!("FAIL: final test accuracy {=f32} % < 90 %", 100.0 * acc);
    }
    Ok(pass)
}

/// FNV-1a over the bits of the weights: a fingerprint to compare before and after.
fn fingerprint(weights: &[f32]) -> u64 {
    weights.iter().fold(0xcbf2_9ce4_8422_2325, |h, w| {
        w.to_bits().to_le_bytes().iter().fold(h, |h, &b| {
            (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
        })
    })
}

/// Saves the network (layer-spec checkpoint with step count and RNG state) to the emulated
/// flash through the A/B store, overwrites every weight with a fresh initialisation, restores
/// the checkpoint and checks weights (fingerprint), progress and test score came back.
fn save_and_restore(
    v: &mut ConvNetMut<'_, f32>,
    step: u64,
    rng: u64,
    test_correct: usize,
    test: &[u16],
    data: &Data<'_>,
) -> Result<bool, ()> {
    let buf = CKPT_BUF.take();
    let flash = emuflash::take().ok_or_else(|| defmt::error!("emulated flash taken twice"))?;
    let mut store = AbStore::new(flash, 0, slot_bytes(CKPT, emuflash::PAGE))
        .map_err(|e| defmt::error!("A/B store: {}", e))?;
    let saved = Progress { step, rng };
    let before = fingerprint(v.weights());
    let t0 = cycles::now();
    let n = v
        .save_checkpoint(saved, buf)
        .map_err(|e| defmt::error!("save: {}", e))?;
    let rec = store
        .commit(&buf[..n])
        .map_err(|e| defmt::error!("commit: {}", e))?;
    let t1 = cycles::now();
    v.init_orthogonal(&mut SplitMix64::new(99));
    let scrambled = fingerprint(v.weights()) != before;
    buf.fill(0);
    let t2 = cycles::now();
    let rec2 = store
        .restore(buf)
        .map_err(|e| defmt::error!("restore: {}", e))?;
    let progress = v
        .load_checkpoint(&buf[..rec2.len])
        .map_err(|e| defmt::error!("load: {}", e))?;
    let t3 = cycles::now();
    let same = fingerprint(v.weights()) == before;
    let again = data.evaluate::<_, BATCH>(v, test)?;
    defmt::info!(
        "checkpoint {=usize} B saved to the emulated flash (record seq {=u32}) in {=u64} instructions, restored in {=u64}: weights bit-identical {=bool}, step {=u64} RNG {=u64:#x} as saved {=bool}, test {=usize}/{=usize} as before {=bool}",
        n,
        rec.seq,
        cycles::instructions(t0, t1),
        cycles::instructions(t2, t3),
        same,
        progress.step,
        progress.rng,
        progress == saved,
        again,
        test.len(),
        again == test_correct
    );
    Ok(scrambled && same && rec2 == rec && progress == saved && again == test_correct)
}

/// Instructions of each phase of one more training step (a full batch): forward, loss,
/// backward (error and weight gradients; im2col inside the conv layers), AGD step.
fn phases(
    v: &mut ConvNetMut<'_, f32>,
    agd: &Agd<f32>,
    train: &[u16],
    data: &Data<'_>,
) -> Result<(), ()> {
    let mut targets = [0usize; BATCH];
    let input = v.input_mut(BATCH).map_err(|e| defmt::error!("{}", e))?;
    let (images, labels, norm) = (data.images, data.labels, &data.norm);
    digits_batch(images, labels, norm, &train[..BATCH], input, &mut targets);
    let t0 = cycles::now();
    v.forward(BATCH).map_err(|e| defmt::error!("{}", e))?;
    let t1 = cycles::now();
    v.loss_grad(Loss::Xent, &targets)
        .map_err(|e| defmt::error!("{}", e))?;
    let t2 = cycles::now();
    v.backward(BATCH).map_err(|e| defmt::error!("{}", e))?;
    let t3 = cycles::now();
    v.step(agd).map_err(|e| defmt::error!("{}", e))?;
    let t4 = cycles::now();
    defmt::info!(
        "one step by phase: forward {=u64}, loss {=u64}, backward {=u64}, AGD step {=u64} instructions",
        cycles::instructions(t0, t1),
        cycles::instructions(t1, t2),
        cycles::instructions(t2, t3),
        cycles::instructions(t3, t4)
    );
    Ok(())
}
