//! Board support shared by the firmware binaries and the on-device tests: exit codes, the
//! HardFault handler, instruction counting with SysTick, stack measurement, the emulated
//! flash for checkpoints, and the data conventions (digits split, normalisation, IDX headers).
//!
//! Nothing here allocates: every buffer of the firmware is a `static`.
#![no_std]
#![warn(missing_docs)]

pub mod cycles;
pub mod data;
pub mod emuflash;
pub mod idx_file;
pub mod train;

/// A firmware's `main`: starts the instruction counter ([`cycles::start`]), runs `run` and
/// ends the QEMU run with exit code 0 when it returns `Ok(true)`, 1 on `Ok(false)` (a check
/// failed) and 2 on `Err(())` (an error, logged where it happened).
pub fn run_and_exit(run: impl FnOnce() -> Result<bool, ()>) -> ! {
    let cp = cortex_m::Peripherals::take().unwrap();
    cycles::start(cp.SYST);
    match run() {
        Ok(true) => exit(0),
        Ok(false) => exit(1),
        Err(()) => exit(2),
    }
}

/// Ends the QEMU run with this exit code (semihosting `SYS_EXIT`).
pub fn exit(code: i32) -> ! {
    semihosting::process::exit(code)
}

/// Defines the `HardFault` handler: log the faulting PC and exit with code 3, so a fault (or a
/// `panic-probe` panic, which ends in `udf`) ends the QEMU run instead of looping forever.
#[macro_export]
macro_rules! exit_on_hard_fault {
    () => {
        #[cortex_m_rt::exception]
        unsafe fn HardFault(frame: &cortex_m_rt::ExceptionFrame) -> ! {
            defmt::error!("HardFault at pc={=u32:#x}", frame.pc());
            $crate::exit(3)
        }
    };
}

/// Peak stack use in bytes since reset: the painted stack (cortex-m-rt feature `paint-stack`
/// fills it with `0xcccccccc`) scanned from its far end up to the first overwritten word.
pub fn stack_peak() -> usize {
    unsafe extern "C" {
        static _stack_end: u32;
        static _stack_start: u32;
    }
    let end = &raw const _stack_end as usize;
    let start = &raw const _stack_start as usize;
    let mut p = end;
    while p < start {
        // SAFETY: `[_stack_end, _stack_start)` is RAM reserved for the stack, word-aligned.
        let word = unsafe { core::ptr::read_volatile(p as *const u32) };
        if word != cortex_m_rt::STACK_PAINT_VALUE {
            break;
        }
        p += 4;
    }
    start - p
}

/// Bytes of RAM taken by every static (`.data`, `.bss`, `.uninit`), from the linker's symbols.
pub fn static_ram() -> usize {
    unsafe extern "C" {
        static __sdata: u32;
        static __euninit: u32;
    }
    (&raw const __euninit as usize) - (&raw const __sdata as usize)
}

/// Bytes of RAM between the statics and the top of RAM, all of it stack.
pub fn stack_room() -> usize {
    unsafe extern "C" {
        static _stack_end: u32;
        static _stack_start: u32;
    }
    (&raw const _stack_start as usize) - (&raw const _stack_end as usize)
}
