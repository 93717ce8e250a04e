//! Instruction counting with SysTick.
//!
//! QEMU does not emulate the DWT cycle counter (it reads 0). Under `-icount shift=0` every
//! instruction takes exactly 1 ns of virtual time and mps2-an386's SysTick runs from the
//! 25 MHz core clock, so one tick is 40 instructions, exactly and repeatably (calibrated: a
//! 400,000-instruction loop reads 10,000 ticks). SysTick is 24 bits wide; its interrupt counts
//! the wraps, so [`now`] is a 64-bit tick count.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;

/// Instructions per SysTick tick under `-icount shift=0` (25 MHz tick, 1 ns per instruction).
pub const INSTRUCTIONS_PER_TICK: u64 = 40;

const RELOAD: u32 = 0x00FF_FFFF;

static WRAPS: AtomicU32 = AtomicU32::new(0);

/// Starts SysTick free-running on the core clock with its wrap interrupt on.
pub fn start(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(RELOAD);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

/// Ticks since [`start`].
pub fn now() -> u64 {
    loop {
        let hi = WRAPS.load(Ordering::Acquire);
        let cur = SYST::get_current();
        // A wrap between the two reads would pair an old `hi` with a new `cur`: read again.
        if WRAPS.load(Ordering::Acquire) == hi {
            return hi as u64 * (RELOAD as u64 + 1) + (RELOAD - cur) as u64;
        }
    }
}

/// Instructions executed between two [`now`] readings.
pub fn instructions(from: u64, to: u64) -> u64 {
    (to - from) * INSTRUCTIONS_PER_TICK
}

#[cortex_m_rt::exception]
fn SysTick() {
    WRAPS.fetch_add(1, Ordering::AcqRel);
}
