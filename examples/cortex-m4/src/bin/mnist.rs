#![no_std]
#![no_main]
use defmt_semihosting as _;
use panic_probe as _;
agd_cortex_m4::exit_on_hard_fault!();
#[cortex_m_rt::entry]
fn main() -> ! { agd_cortex_m4::exit(0) }
