//! The checkpoint decoder on arbitrary bytes: it must never panic, and whatever it accepts
//! must re-encode to exactly the same bytes (the format has no free bits), while a refusal
//! must leave the target weights untouched.
#![no_main]

use agd_core::checkpoint::{
    ElemType, decode, decode_spec, encode, encode_spec, inspect, inspect_spec,
};
use agd_core::{Element, param_count};
use libfuzzer_sys::fuzz_target;

fn check<T: Element>(data: &[u8], widths: &[usize]) {
    let sentinel: Vec<T> = (0..param_count(widths))
        .map(|i| T::from_f64(i as f64 + 0.5))
        .collect();
    let mut w = sentinel.clone();
    match decode(data, widths, &mut w) {
        Ok(progress) => {
            let header = inspect(data).expect("decode accepted what inspect refuses");
            assert_eq!(header.elem, ElemType::of::<T>().unwrap());
            assert_eq!(header.progress, progress);
            let mut again = vec![0u8; header.len];
            encode(widths, &w, progress, &mut again).expect("accepted weights re-encode");
            assert_eq!(
                &again[..],
                &data[..header.len],
                "accepted bytes are not canonical"
            );
        }
        Err(_) => {
            let same = w
                .iter()
                .zip(&sentinel)
                .all(|(a, b)| a.to_bits_u64() == b.to_bits_u64());
            assert!(same, "a refused decode changed the target");
        }
    }
}

/// The layer-spec (conv) decoder: accepted bytes re-encode exactly, refusals leave the target.
fn check_spec<T: Element>(data: &[u8]) {
    let Ok(h) = inspect_spec(data) else { return };
    let sentinel: Vec<T> = (0..agd_core::spec::param_count(&h.layers))
        .map(|i| T::from_f64(i as f64 + 0.5))
        .collect();
    let mut w = sentinel.clone();
    match decode_spec(data, &h.layers, &mut w) {
        Ok(progress) => {
            assert_eq!(progress, h.progress);
            if !h.dense {
                let mut again = vec![0u8; h.len];
                encode_spec(&h.layers, &w, progress, &mut again)
                    .expect("accepted weights re-encode");
                assert_eq!(
                    &again[..],
                    &data[..h.len],
                    "accepted bytes are not canonical"
                );
            }
        }
        Err(_) => assert!(
            w.iter()
                .zip(&sentinel)
                .all(|(a, b)| a.to_bits_u64() == b.to_bits_u64())
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    check_spec::<f32>(data);
    check_spec::<f64>(data);
    // A fixed target network, and the widths the bytes claim (if they pass inspection, so that
    // the weight-copying path is reached too).
    check::<f32>(data, &[5, 7, 3, 2]);
    check::<f64>(data, &[5, 7, 3, 2]);
    if let Ok(h) = inspect(data) {
        // Bounded by the data's length, so this cannot allocate more than the input implies.
        check::<f32>(data, &h.widths);
        check::<f64>(data, &h.widths);
    }
});
