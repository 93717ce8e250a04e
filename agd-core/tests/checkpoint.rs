//! Checkpoint format: round trips, and every way bytes can be wrong, each with its typed
//! error and the target weights left bit-identical.

use agd_core::checkpoint::{
    CRC_BYTES, ElemType, HEADER_BYTES, Progress, VERSION, checkpoint_len, decode, encode, inspect,
};
use agd_core::{Element, Error, Network, SplitMix64};
use crc::{CRC_32_ISO_HDLC, Crc};
use proptest::prelude::*;

const WIDTHS: [usize; 4] = [5, 7, 3, 2];
const P: usize = 5 * 7 + 7 * 3 + 3 * 2;
const PROGRESS: Progress = Progress {
    step: 0x0123_4567_89AB_CDEF,
    rng: 0xFEDC_BA98_7654_3210,
};

/// Weights with awkward values: signed zeros, subnormals, extremes, ordinary numbers.
fn weights<T: Element>() -> Vec<T> {
    let special = [
        0.0,
        -0.0,
        T::MIN_POSITIVE.to_f64() / 8.0,
        -T::MIN_POSITIVE.to_f64(),
        T::MAX.to_f64(),
        -T::MAX.to_f64(),
        1.0 / 3.0,
    ];
    (0..P)
        .map(|i| {
            T::from_f64(
                special
                    .get(i)
                    .copied()
                    .unwrap_or((i as f64 * 0.37).sin() * 10f64.powi(i as i32 % 9 - 4)),
            )
        })
        .collect()
}

fn bits<T: Element>(w: &[T]) -> Vec<u64> {
    w.iter().map(|x| x.to_bits_u64()).collect()
}

fn valid<T: Element>() -> Vec<u8> {
    let mut out = vec![0u8; checkpoint_len(&WIDTHS, ElemType::of::<T>().unwrap())];
    let n = encode(&WIDTHS, &weights::<T>(), PROGRESS, &mut out).unwrap();
    assert_eq!(n, out.len());
    out
}

/// Rewrites the CRC after a deliberate edit, as a crafted file would.
fn recrc(bytes: &mut [u8]) {
    let len = u64::from_le_bytes(bytes[8..16].try_into().unwrap()) as usize;
    let crc = Crc::<u32>::new(&CRC_32_ISO_HDLC).checksum(&bytes[..len - CRC_BYTES]);
    bytes[len - CRC_BYTES..len].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes into a target filled with a sentinel; on error, the target must be untouched.
fn decode_checked<T: Element>(bytes: &[u8], widths: &[usize]) -> Result<Vec<T>, Error> {
    let p: usize = widths.windows(2).map(|w| w[0] * w[1]).sum();
    let sentinel: Vec<T> = (0..p).map(|i| T::from_f64(i as f64 + 0.5)).collect();
    let mut target = sentinel.clone();
    match decode(bytes, widths, &mut target) {
        Ok(progress) => {
            assert_eq!(progress, PROGRESS);
            Ok(target)
        }
        Err(e) => {
            assert_eq!(bits(&target), bits(&sentinel), "{e:?} changed the target");
            Err(e)
        }
    }
}

fn round_trip<T: Element>() {
    let bytes = valid::<T>();
    assert_eq!(
        bytes.len(),
        HEADER_BYTES + 4 * WIDTHS.len() + T::BYTES * P + CRC_BYTES
    );
    let got = decode_checked::<T>(&bytes, &WIDTHS).unwrap();
    assert_eq!(bits(&got), bits(&weights::<T>()));
    let h = inspect(&bytes).unwrap();
    assert_eq!(h.elem, ElemType::of::<T>().unwrap());
    assert_eq!(h.widths.as_slice(), &WIDTHS);
    assert_eq!(h.progress, PROGRESS);
    assert_eq!(h.len, bytes.len());
    // A longer buffer (a static one sized for the largest network) is fine.
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0xAB; 37]);
    assert_eq!(
        bits(&decode_checked::<T>(&longer, &WIDTHS).unwrap()),
        bits(&got)
    );
}

#[test]
fn round_trip_is_bit_exact() {
    round_trip::<f32>();
    round_trip::<f64>();
}

#[test]
fn net_save_and_load() {
    agd_core::dense_network!(Small: f32 = [6, 4, 3], batch 2);
    let mut a = Small::new();
    let mut b = Small::new();
    a.view().init_orthogonal(&mut SplitMix64::new(3));
    let mut buf = [0u8; checkpoint_len(Small::WIDTHS, ElemType::F32)];
    let p = Progress { step: 42, rng: 7 };
    assert_eq!(a.view().save_checkpoint(p, &mut buf), Ok(buf.len()));
    assert_eq!(b.view().load_checkpoint(&buf), Ok(p));
    assert_eq!(bits(a.view().weights()), bits(b.view().weights()));
}

#[test]
fn layout_is_little_endian_as_documented() {
    let b = valid::<f32>();
    assert_eq!(&b[0..4], b"AGDC");
    assert_eq!(u16::from_le_bytes([b[4], b[5]]), VERSION);
    assert_eq!(b[6], 1);
    assert_eq!(b[7] as usize, WIDTHS.len());
    assert_eq!(
        u64::from_le_bytes(b[8..16].try_into().unwrap()),
        b.len() as u64
    );
    assert_eq!(&b[16..24], &PROGRESS.step.to_le_bytes());
    assert_eq!(&b[32..36], &5u32.to_le_bytes());
    let first = HEADER_BYTES + 4 * WIDTHS.len();
    // weights()[6] is 1/3.
    assert_eq!(&b[first + 24..first + 28], &(1.0f32 / 3.0).to_le_bytes());
    let crc = Crc::<u32>::new(&CRC_32_ISO_HDLC).checksum(&b[..b.len() - 4]);
    assert_eq!(&b[b.len() - 4..], &crc.to_le_bytes());
}

#[test]
fn bad_magic() {
    let mut b = valid::<f32>();
    b[0] = b'X';
    assert_eq!(
        decode_checked::<f32>(&b, &WIDTHS),
        Err(Error::CheckpointMagic)
    );
    assert_eq!(
        decode_checked::<f32>(b"PNG\x89 and more bytes", &WIDTHS),
        Err(Error::CheckpointMagic)
    );
    // Shorter than the magic, but not its start.
    assert_eq!(
        decode_checked::<f32>(b"{}", &WIDTHS),
        Err(Error::CheckpointMagic)
    );
    // Empty, or the start of the magic: truncated.
    for short in [&b""[..], b"AG"] {
        assert_eq!(
            decode_checked::<f32>(short, &WIDTHS),
            Err(Error::CheckpointTruncated {
                needed: HEADER_BYTES + CRC_BYTES,
                got: short.len()
            })
        );
    }
}

#[test]
fn unknown_version() {
    let mut b = valid::<f32>();
    b[4..6].copy_from_slice(&2u16.to_le_bytes());
    recrc(&mut b);
    assert_eq!(
        decode_checked::<f32>(&b, &WIDTHS),
        Err(Error::CheckpointVersion {
            got: 2,
            supported: 1
        })
    );
}

#[test]
fn element_type_mismatch() {
    assert_eq!(
        decode_checked::<f64>(&valid::<f32>(), &WIDTHS),
        Err(Error::CheckpointElement {
            expected: "f64",
            got: "f32"
        })
    );
    assert_eq!(
        decode_checked::<f32>(&valid::<f64>(), &WIDTHS),
        Err(Error::CheckpointElement {
            expected: "f32",
            got: "f64"
        })
    );
    let mut b = valid::<f32>();
    b[6] = 3;
    recrc(&mut b);
    assert_eq!(
        decode_checked::<f32>(&b, &WIDTHS),
        Err(Error::CheckpointElement {
            expected: "f32 or f64",
            got: "unknown"
        })
    );
}

#[test]
fn wrong_widths_for_the_target() {
    let b = valid::<f32>();
    assert_eq!(
        decode_checked::<f32>(&b, &[5, 7, 2]),
        Err(Error::CheckpointDepth {
            expected: 2,
            got: 3
        })
    );
    assert_eq!(
        decode_checked::<f32>(&b, &[5, 7, 4, 2]),
        Err(Error::CheckpointWidths {
            index: 2,
            expected: 4,
            got: 3
        })
    );
    assert_eq!(
        decode_checked::<f32>(&b, &[6, 7, 3, 2]),
        Err(Error::CheckpointWidths {
            index: 0,
            expected: 6,
            got: 5
        })
    );
    // The target itself must make sense.
    assert_eq!(decode_checked::<f32>(&b, &[5]), Err(Error::InvalidWidths));
    let mut short = vec![0f32; P - 1];
    assert_eq!(
        decode(&b, &WIDTHS, &mut short),
        Err(Error::BufferSize {
            buffer: "weights",
            expected: P,
            got: P - 1
        })
    );
}

#[test]
fn every_truncation_is_refused() {
    let b = valid::<f64>();
    for cut in 0..b.len() {
        let e = decode_checked::<f64>(&b[..cut], &WIDTHS).unwrap_err();
        let expected = if cut < HEADER_BYTES + CRC_BYTES {
            HEADER_BYTES + CRC_BYTES
        } else {
            b.len()
        };
        assert_eq!(
            e,
            Error::CheckpointTruncated {
                needed: expected,
                got: cut
            },
            "cut at {cut}"
        );
    }
}

#[test]
fn length_field_mismatch() {
    let b = valid::<f32>();
    let len = b.len();
    // Claiming more than there is: truncated, even with a huge claim.
    for claim in [len as u64 + 1, u64::MAX] {
        let mut c = b.clone();
        c[8..16].copy_from_slice(&claim.to_le_bytes());
        assert_eq!(
            decode_checked::<f32>(&c, &WIDTHS),
            Err(Error::CheckpointTruncated {
                needed: usize::try_from(claim).unwrap_or(usize::MAX),
                got: len
            })
        );
    }
    // Claiming less than a header.
    let mut c = b.clone();
    c[8..16].copy_from_slice(&3u64.to_le_bytes());
    assert_eq!(
        decode_checked::<f32>(&c, &WIDTHS),
        Err(Error::CheckpointLength {
            claimed: 3,
            expected: HEADER_BYTES + CRC_BYTES
        })
    );
    // A crafted shorter checkpoint whose CRC is right but whose widths need more bytes.
    let mut c = b.clone();
    c[8..16].copy_from_slice(&((len - 8) as u64).to_le_bytes());
    recrc(&mut c);
    assert_eq!(
        decode_checked::<f32>(&c, &WIDTHS),
        Err(Error::CheckpointLength {
            claimed: len - 8,
            expected: len
        })
    );
    // Widths whose product overflows usize, with a correct CRC.
    let mut c = b.clone();
    for k in 0..WIDTHS.len() {
        let at = HEADER_BYTES + 4 * k;
        c[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    }
    recrc(&mut c);
    assert_eq!(
        decode_checked::<f32>(&c, &WIDTHS),
        Err(Error::CheckpointLength {
            claimed: len,
            expected: usize::MAX
        })
    );
}

#[test]
fn crc_mismatch_on_every_bit_flip() {
    let b = valid::<f32>();
    for byte in 0..b.len() {
        for bit in 0..8 {
            let mut c = b.clone();
            c[byte] ^= 1 << bit;
            let e = decode_checked::<f32>(&c, &WIDTHS).unwrap_err();
            match byte {
                0..4 => assert_eq!(e, Error::CheckpointMagic),
                4..6 => assert!(matches!(e, Error::CheckpointVersion { .. })),
                // The length field: claims more (truncated), less than a header, or less
                // (then the CRC is read from the wrong place).
                8..16 => assert!(
                    matches!(
                        e,
                        Error::CheckpointTruncated { .. }
                            | Error::CheckpointLength { .. }
                            | Error::CheckpointCrc { .. }
                    ),
                    "{e:?}"
                ),
                _ => assert!(matches!(e, Error::CheckpointCrc { .. }), "{byte}: {e:?}"),
            }
        }
    }
}

#[test]
fn crafted_header_inconsistencies() {
    let b = valid::<f32>();
    let cases: [(usize, u8, Error); 3] = [
        (7, 1, Error::InvalidWidths),
        (
            7,
            18,
            Error::TooDeep {
                depth: 17,
                max: agd_core::MAX_DEPTH,
            },
        ),
        (HEADER_BYTES + 4, 0, Error::InvalidWidths), // low byte of width 1 -> 0 below
    ];
    for (at, v, err) in cases {
        let mut c = b.clone();
        c[at] = v;
        if at == HEADER_BYTES + 4 {
            c[at..at + 4].copy_from_slice(&0u32.to_le_bytes());
        }
        recrc(&mut c);
        assert_eq!(decode_checked::<f32>(&c, &WIDTHS), Err(err));
    }
    // A NaN and an infinity in the weights, with a correct CRC.
    let first = HEADER_BYTES + 4 * WIDTHS.len();
    // Weight 10 is in layer 0 (weights 0..35), weight 60 in layer 2 (56..62).
    for (i, k, x) in [(10usize, 0usize, f32::NAN), (60, 2, f32::NEG_INFINITY)] {
        let mut c = b.clone();
        let at = first + 4 * i;
        c[at..at + 4].copy_from_slice(&x.to_le_bytes());
        recrc(&mut c);
        assert_eq!(
            decode_checked::<f32>(&c, &WIDTHS),
            Err(Error::NonFiniteWeight { layer: k })
        );
    }
}

#[test]
fn encode_refusals() {
    let w = weights::<f64>();
    let len = checkpoint_len(&WIDTHS, ElemType::F64);
    let mut out = vec![0x5Au8; len - 1];
    assert_eq!(
        encode(&WIDTHS, &w, PROGRESS, &mut out),
        Err(Error::BufferSize {
            buffer: "checkpoint",
            expected: len,
            got: len - 1
        })
    );
    assert!(out.iter().all(|&x| x == 0x5A), "nothing written on error");
    let mut out = vec![0u8; len];
    assert_eq!(
        encode(&WIDTHS, &w[1..], PROGRESS, &mut out),
        Err(Error::BufferSize {
            buffer: "weights",
            expected: P,
            got: P - 1
        })
    );
    let mut nan = w.clone();
    nan[40] = f64::NAN;
    assert_eq!(
        encode(&WIDTHS, &nan, PROGRESS, &mut out),
        Err(Error::NonFiniteWeight { layer: 1 })
    );
    assert_eq!(
        encode(&[5, 0, 2], &w, PROGRESS, &mut out),
        Err(Error::InvalidWidths)
    );
}

/// A decode that succeeds must be of bytes that re-encode to exactly themselves.
fn accepted_only_if_canonical<T: Element>(bytes: &[u8]) {
    let Ok(h) = inspect(bytes) else {
        // And decode agrees (checked by decode_checked's sentinel on the error path).
        let _ = decode_checked::<T>(bytes, &WIDTHS).unwrap_err();
        return;
    };
    let mut w = vec![T::ZERO; agd_core::param_count(&h.widths)];
    let r = decode(bytes, &h.widths, &mut w);
    if ElemType::of::<T>() != Some(h.elem) {
        assert!(r.is_err());
        return;
    }
    assert_eq!(r, Ok(h.progress));
    let mut again = vec![0u8; h.len];
    encode(&h.widths, &w, h.progress, &mut again).unwrap();
    assert_eq!(&again[..], &bytes[..h.len]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        accepted_only_if_canonical::<f32>(&bytes);
        accepted_only_if_canonical::<f64>(&bytes);
    }

    #[test]
    fn random_bytes_behind_a_valid_magic(
        tail in proptest::collection::vec(any::<u8>(), 0..400),
        fix_crc in any::<bool>(),
    ) {
        let mut bytes = b"AGDC\x01\x00".to_vec();
        bytes.extend_from_slice(&tail);
        if fix_crc && bytes.len() >= 16 {
            let len = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
            if (HEADER_BYTES as u64 + 4..=bytes.len() as u64).contains(&len) {
                recrc(&mut bytes);
            }
        }
        accepted_only_if_canonical::<f32>(&bytes);
    }

    #[test]
    fn mutated_checkpoints_are_refused_or_canonical(
        f64_elems in any::<bool>(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..4), 1..6),
        fix_crc in any::<bool>(),
    ) {
        let mut bytes = if f64_elems { valid::<f64>() } else { valid::<f32>() };
        let original = bytes.clone();
        for (pos, val, kind) in edits {
            let i = pos % bytes.len();
            match kind {
                0 => bytes[i] = val,
                1 => bytes[i] ^= 1 << (val % 8),
                2 => bytes.truncate(i.max(1)),
                _ => bytes.push(val),
            }
        }
        if fix_crc && bytes.len() >= original.len() {
            let len = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
            if (HEADER_BYTES as u64 + 4..=bytes.len() as u64).contains(&len) {
                recrc(&mut bytes);
            }
        }
        accepted_only_if_canonical::<f32>(&bytes);
        accepted_only_if_canonical::<f64>(&bytes);
        // Without the CRC fixed, only edits past the end (or none at all) can be accepted.
        if !fix_crc && inspect(&bytes).is_ok() {
            prop_assert_eq!(&bytes[..original.len()], &original[..]);
        }
    }
}

#[test]
fn checkpoints_written_by_an_independent_encoder_load() {
    // fuzz/seeds was written with Python's struct and zlib.crc32, not with this crate.
    let f32_seed = include_bytes!("../../fuzz/seeds/checkpoint_decode/f32_5_7_3_2");
    let mut w = vec![0f32; P];
    let p = decode(f32_seed, &WIDTHS, &mut w).unwrap();
    assert_eq!(p, Progress { step: 42, rng: 7 });
    for (i, &x) in w.iter().enumerate() {
        assert_eq!(x, ((i as f64) * 0.37).sin() as f32);
    }
    let f64_seed = include_bytes!("../../fuzz/seeds/checkpoint_decode/f64_5_7_3_2");
    let mut w = vec![0f64; P];
    assert_eq!(
        decode(f64_seed, &WIDTHS, &mut w),
        Ok(Progress { step: 1, rng: 2 })
    );
    assert_eq!(w[10], (10.0f64 * 0.37).sin());
    let small = include_bytes!("../../fuzz/seeds/checkpoint_decode/f32_2_1");
    assert_eq!(inspect(small).unwrap().widths.as_slice(), &[2, 1]);
}

#[test]
fn the_saved_rng_state_continues_the_sequence() {
    use rand_core::Rng;
    let mut rng = SplitMix64::new(2026);
    for _ in 0..5 {
        rng.next_u64();
    }
    let mut out = valid::<f32>();
    let p = Progress {
        step: 5,
        rng: rng.state(),
    };
    encode(&WIDTHS, &weights::<f32>(), p, &mut out).unwrap();
    let mut w = vec![0f32; P];
    let back = decode(&out, &WIDTHS, &mut w).unwrap();
    let mut resumed = SplitMix64::new(back.rng);
    for _ in 0..10 {
        assert_eq!(resumed.next_u64(), rng.next_u64());
    }
}
