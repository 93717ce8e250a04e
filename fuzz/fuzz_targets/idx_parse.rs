//! The IDX reader on arbitrary bytes (plain and gzip): it must never panic, and an accepted
//! array must be as large as its dimensions say.
#![no_main]

use agd_host::idx::IdxArray;
use libfuzzer_sys::fuzz_target;

fn check(a: &IdxArray) {
    let n = a
        .dims()
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .expect("accepted dimensions whose product overflows");
    assert_eq!(n, a.len(), "element count differs from the dimensions");
    let _ = a.to_f64();
}

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = IdxArray::parse(data) {
        check(&a);
    }
    if let Ok(a) = IdxArray::parse_maybe_gz(data) {
        check(&a);
    }
});
