//! Instructions per training step on the device, by phase, for the buffer-free AGD step and
//! the standard (gradient-buffer) step, on the digits network `[64, 32, 10]` at batch 8 —
//! both measured in the same run, on the same weights and batch.
//!
//! SysTick under `-icount shift=0` (one tick = 40 instructions). Exits 0 after logging.
#![no_std]
#![no_main]

use agd_core::{Agd, Loss, NetMut, Network, SplitMix64};
use agd_cortex_m4::{cycles, exit};
use cortex_m_rt::entry;
use defmt_semihosting as _;
use panic_probe as _;
use static_cell::ConstStaticCell;

agd_cortex_m4::exit_on_hard_fault!();

agd_core::dense_network!(Net: f32 = [64, 32, 10], batch 8);

static NET: ConstStaticCell<Net> = ConstStaticCell::new(Net::new());

const TARGETS: [usize; 8] = [0, 1, 2, 3, 4, 5, 6, 7];
const REPEAT: u64 = 16;

#[entry]
fn main() -> ! {
    let cp = cortex_m::Peripherals::take().unwrap();
    cycles::start(cp.SYST);
    let net = NET.take();
    let mut v = net.view();
    let mut rng = SplitMix64::new(5);
    v.init_orthogonal(&mut rng);
    let agd = Agd::new();
    let (mut fwd, mut loss, mut back, mut free, mut grads, mut std_step) = (0, 0, 0, 0, 0, 0);
    let mut gram = 0;
    for r in 0..REPEAT {
        fill_input(&mut v, r);
        let t0 = cycles::now();
        v.forward(8).unwrap();
        let t1 = cycles::now();
        v.loss_grad(Loss::Xent, &TARGETS).unwrap();
        let t2 = cycles::now();
        v.backprop_errors(8).unwrap();
        let t3 = cycles::now();
        // The norms alone, to see their share of the step.
        let tg = cycles::now();
        {
            let (layout, cap, _, acts, deltas) = v.buffer_free_parts();
            for k in 0..layout.depth() {
                let (o, i) = layout.shape(k);
                let h = &acts[layout.act_offset(k, cap)..][..8 * i];
                let d = &deltas[layout.delta_offset(k, cap)..][..8 * o];
                core::hint::black_box(agd_core::buffer_free::grad_norm(8, d, h).unwrap());
            }
        }
        gram += cycles::instructions(tg, cycles::now());
        // The step recomputes the norms itself; only the step is counted below.
        let ts = cycles::now();
        agd.step_buffer_free(&mut v, 8).unwrap();
        let t4 = cycles::now();
        fwd += cycles::instructions(t0, t1);
        loss += cycles::instructions(t1, t2);
        back += cycles::instructions(t2, t3);
        free += cycles::instructions(ts, t4);

        // The standard step on the same batch: full backward (with weight gradients), then
        // `Agd::step` over the gradient buffer.
        fill_input(&mut v, r);
        v.forward(8).unwrap();
        v.loss_grad(Loss::Xent, &TARGETS).unwrap();
        let t5 = cycles::now();
        v.backward(8).unwrap();
        let t6 = cycles::now();
        let (layout, w, g) = v.step_parts();
        agd.step(layout, w, g).unwrap();
        let t7 = cycles::now();
        grads += cycles::instructions(t5, t6);
        std_step += cycles::instructions(t6, t7);
    }
    let n = REPEAT;
    let free_total = (fwd + loss + back + free) / n;
    let std_total = (fwd + loss + grads + std_step) / n;
    defmt::info!(
        "[64, 32, 10] batch 8, mean of {=u64} steps: forward {=u64}, loss {=u64}, backprop errors {=u64}, buffer-free step {=u64} => {=u64} instructions per training step",
        n,
        fwd / n,
        loss / n,
        back / n,
        free / n,
        free_total
    );
    defmt::info!(
        "standard: backward with gradients {=u64}, Agd::step {=u64} => {=u64} instructions per training step; buffer-free / standard = {=f32}",
        grads / n,
        std_step / n,
        std_total,
        free_total as f32 / std_total as f32
    );
    defmt::info!(
        "of which Gram-identity norms (all layers): {=u64}",
        gram / n
    );
    exit(0)
}

fn fill_input(v: &mut NetMut<'_, f32>, r: u64) {
    let mut rng = SplitMix64::new(100 + r);
    agd_core::init::fill_gaussian(v.input_mut(8).unwrap(), &mut rng);
}
