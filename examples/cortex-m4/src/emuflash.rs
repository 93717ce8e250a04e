//! An emulated NOR flash for checkpoints: the `EMUFLASH` region of the memory map (the top
//! 64 KiB of the board's SSRAM1), seen through agd-core's [`SliceFlash`] (erase to `0xFF`,
//! programming only clears bits, whole 4-byte words, 4 KiB pages).
//!
//! No section of the image lies in the region, so the ELF has no segment there: QEMU's
//! system reset (`SCB::sys_reset`), which re-copies the ELF's segments, leaves it as it was,
//! the way a real flash keeps its contents. At power-on QEMU's RAM is all zeros, which holds no
//! valid record.

use core::sync::atomic::{AtomicBool, Ordering};

use agd_core::storage::SliceFlash;

/// Erase granularity (a 4 KiB page, as on an nRF52 or many STM32 parts).
pub const PAGE: usize = 4096;
/// Programming granularity (a 32-bit word).
pub const WRITE_SIZE: usize = 4;

static TAKEN: AtomicBool = AtomicBool::new(false);

/// Bytes of the region, from the linker's symbols.
pub fn capacity() -> usize {
    let (start, end) = bounds();
    end - start
}

fn bounds() -> (usize, usize) {
    unsafe extern "C" {
        static _emuflash_start: u8;
        static _emuflash_end: u8;
    }
    (
        &raw const _emuflash_start as usize,
        &raw const _emuflash_end as usize,
    )
}

/// The region as a flash, once per boot (`None` after the first call).
pub fn take() -> Option<SliceFlash<'static>> {
    if TAKEN.swap(true, Ordering::AcqRel) {
        return None;
    }
    let (start, end) = bounds();
    // SAFETY: the memory map reserves `[start, end)` (RAM on mps2-an386) for this and places
    // nothing there, so no other reference to it exists; `TAKEN` hands it out at most once.
    // Its bytes are whatever the memory holds (zeros at power-on, the last contents after a
    // reset); any byte value is a valid `u8`.
    let mem = unsafe { core::slice::from_raw_parts_mut(start as *mut u8, end - start) };
    SliceFlash::new(mem, PAGE, WRITE_SIZE).ok()
}
