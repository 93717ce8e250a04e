//! Trains a `[64, 32, 10]` network on the digits dataset, on the device, with AGD (no learning
//! rate) and the gradient-buffer-free step; the dataset sits in flash.
//!
//! Logs per epoch: mean loss, mean η, training and test accuracy, and the instructions per
//! training step (SysTick under `-icount shift=0`). Exits 0 only if the final test accuracy is
//! at least 90 %.
#![no_std]
#![no_main]

use agd_core::{Agd, Loss, NetMut, Network, SplitMix64};
use agd_cortex_m4::data::{DIGITS_SAMPLES, DIGITS_TRAIN};
use agd_cortex_m4::train::Digits as Data;
use cortex_m_rt::entry;
use defmt_semihosting as _;
use panic_probe as _;
use static_cell::ConstStaticCell;

agd_cortex_m4::exit_on_hard_fault!();

agd_core::dense_network!(
    /// The digits network, without a gradient buffer.
    Digits: f32 = [64, 32, 10], batch 8, buffer_free
);
// Only for its RAM constant: the same network with the standard step's gradient buffer.
agd_core::dense_network!(DigitsWithGrads: f32 = [64, 32, 10], batch 8);

/// Every buffer is a static (zero-initialised `.bss`, no heap, nothing large on the stack),
/// handed out once as `&'static mut`.
static NET: ConstStaticCell<Digits> = ConstStaticCell::new(Digits::new());
static SPLIT: ConstStaticCell<[u16; DIGITS_SAMPLES]> = ConstStaticCell::new([0; DIGITS_SAMPLES]);

const EPOCHS: usize = 10;
const BATCH: usize = Digits::BATCH;
/// Seed of the weight initialisation and of the per-epoch reshuffles.
const SEED: u64 = 1;
/// Instructions per SGD step of AIfES 2.2 on the same network, batch and board
/// (REFERENCE-RESULTS.md), and its RAM for training.
const AIFES_INSTRUCTIONS: u64 = 639_432;
const AIFES_RAM: u64 = 44_800;

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
        "network [64, 32, 10], batch {=usize}, AGD gain 1, xent; RAM for the network and its training buffers: {=usize} B (with a gradient buffer it would be {=usize} B)",
        BATCH,
        Digits::RAM_BYTES,
        DigitsWithGrads::RAM_BYTES
    );

    let step = |v: &mut NetMut<'_, f32>, targets: &[usize]| {
        v.train_step_buffer_free(&agd, Loss::Xent, targets)
    };
    let (acc, step_instr) =
        data.train::<_, BATCH>(&mut v, EPOCHS, (train, test), &mut rng, step)?;

    let ram = agd_cortex_m4::static_ram();
    let stack = agd_cortex_m4::stack_peak();
    defmt::info!(
        "instructions per training step (batch 8): {=u64}; AIfES SGD {=u64}: ratio {=f32}",
        step_instr,
        AIFES_INSTRUCTIONS,
        step_instr as f32 / AIFES_INSTRUCTIONS as f32
    );
    defmt::info!(
        "RAM: network + training buffers {=usize} B; all statics {=usize} B + peak stack {=usize} B = {=usize} B; AIfES ~{=u64} B: ratio {=f32} (network) / {=f32} (whole program)",
        Digits::RAM_BYTES,
        ram,
        stack,
        ram + stack,
        AIFES_RAM,
        Digits::RAM_BYTES as f32 / AIFES_RAM as f32,
        (ram + stack) as f32 / AIFES_RAM as f32
    );
    let pass = acc >= 0.9;
    if pass {
        defmt::info!("PASS: final test accuracy {=f32} % >= 90 %", 100.0 * acc);
    } else {
        defmt::error!("FAIL: final test accuracy {=f32} % < 90 %", 100.0 * acc);
    }
    Ok(pass)
}
