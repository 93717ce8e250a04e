//! Layer-spec (conv) checkpoints: round trips, architecture mismatches, and every way the bytes
//! can be wrong, each with its typed error and the target weights left bit-identical — the
//! same checks as `checkpoint.rs` makes for dense checkpoints.

use agd_core::checkpoint::{
    CRC_BYTES, ElemType, HEADER_BYTES, LAYER_BYTES, Progress, SPEC_FLAG, VERSION, checkpoint_len,
    decode, decode_spec, encode, encode_spec, inspect, inspect_spec, spec_checkpoint_len,
};
use agd_core::conv::Conv2d;
use agd_core::spec::{self, LayerSpec, chain, conv, dense};
use agd_core::{ConvNetwork, Element, Error, SplitMix64};
use crc::{CRC_32_ISO_HDLC, Crc};
use proptest::prelude::*;

const NET: [LayerSpec; 3] = chain([1, 6, 6], [conv(3, 3, 1, 1), conv(4, 3, 2, 1), dense(5)]);
const P: usize = spec::param_count(&NET);
const PROGRESS: Progress = Progress {
    step: 0x0123_4567_89AB_CDEF,
    rng: 0xFEDC_BA98_7654_3210,
};

fn weights<T: Element>() -> Vec<T> {
    (0..P)
        .map(|i| T::from_f64((i as f64 * 0.37).sin() * 10f64.powi(i as i32 % 9 - 4)))
        .collect()
}

fn bits<T: Element>(w: &[T]) -> Vec<u64> {
    w.iter().map(|x| x.to_bits_u64()).collect()
}

fn valid<T: Element>() -> Vec<u8> {
    let mut out = vec![0u8; spec_checkpoint_len(&NET, ElemType::of::<T>().unwrap())];
    let n = encode_spec(&NET, &weights::<T>(), PROGRESS, &mut out).unwrap();
    assert_eq!(n, out.len());
    out
}

fn recrc(bytes: &mut [u8]) {
    let len = u64::from_le_bytes(bytes[8..16].try_into().unwrap()) as usize;
    let crc = Crc::<u32>::new(&CRC_32_ISO_HDLC).checksum(&bytes[..len - CRC_BYTES]);
    bytes[len - CRC_BYTES..len].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes into a target filled with a sentinel; on error, the target must be untouched.
fn decode_checked<T: Element>(bytes: &[u8], layers: &[LayerSpec]) -> Result<Vec<T>, Error> {
    let sentinel: Vec<T> = (0..spec::param_count(layers))
        .map(|i| T::from_f64(i as f64 + 0.5))
        .collect();
    let mut target = sentinel.clone();
    match decode_spec(bytes, layers, &mut target) {
        Ok(_) => Ok(target),
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
        HEADER_BYTES + LAYER_BYTES * NET.len() + T::BYTES * P + CRC_BYTES
    );
    let got = decode_checked::<T>(&bytes, &NET).unwrap();
    assert_eq!(bits(&got), bits(&weights::<T>()));
    let h = inspect_spec(&bytes).unwrap();
    assert_eq!(h.elem, ElemType::of::<T>().unwrap());
    assert_eq!(h.layers.as_slice(), &NET);
    assert_eq!(h.progress, PROGRESS);
    assert_eq!(h.len, bytes.len());
    assert!(!h.dense);
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0xAB; 41]);
    assert_eq!(
        bits(&decode_checked::<T>(&longer, &NET).unwrap()),
        bits(&got)
    );
}

#[test]
fn round_trip_is_bit_exact() {
    round_trip::<f32>();
    round_trip::<f64>();
}

#[test]
fn layout_is_as_documented() {
    let b = valid::<f32>();
    assert_eq!(&b[0..4], b"AGDC");
    assert_eq!(u16::from_le_bytes([b[4], b[5]]), VERSION);
    assert_eq!(b[6], 1 | SPEC_FLAG);
    assert_eq!(b[7], 3);
    let rec = |k: usize| -> Vec<u32> {
        (0..9)
            .map(|i| {
                let at = HEADER_BYTES + LAYER_BYTES * k + 4 * i;
                u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
            })
            .collect()
    };
    assert_eq!(rec(0), [2, 1, 3, 3, 3, 6, 6, 1, 1]);
    assert_eq!(rec(1), [2, 3, 4, 3, 3, 6, 6, 2, 1]);
    assert_eq!(rec(2), [1, 4 * 3 * 3, 5, 0, 0, 0, 0, 0, 0]);
    let first = HEADER_BYTES + LAYER_BYTES * 3;
    assert_eq!(&b[first..first + 4], &weights::<f32>()[0].to_le_bytes());
}

#[test]
fn static_conv_net_save_and_load() {
    agd_core::conv_network!(Small: f32 = [1, 6, 6] => [conv(3, 3, 1, 1), conv(4, 3, 2, 1), dense(5)], batch 2);
    let mut a = Small::new();
    let mut b = Small::new();
    a.view().init_orthogonal(&mut SplitMix64::new(3));
    let mut buf = [0u8; spec_checkpoint_len(&Small::LAYERS, ElemType::F32)];
    let p = Progress { step: 42, rng: 7 };
    assert_eq!(a.view().save_checkpoint(p, &mut buf), Ok(buf.len()));
    assert_eq!(b.view().load_checkpoint(&buf), Ok(p));
    assert_eq!(bits(a.view().weights()), bits(b.view().weights()));
}

#[test]
fn another_architecture_is_a_typed_error() {
    let b = valid::<f32>();
    // Same depth, one layer different in each way a layer can differ.
    let variants: [(usize, [LayerSpec; 3]); 4] = [
        // More filters in layer 0 (so layer 1's input differs too: the first difference wins).
        (
            0,
            chain([1, 6, 6], [conv(4, 3, 1, 1), conv(4, 3, 2, 1), dense(5)]),
        ),
        // Stride 1 in layer 1: same weight count there, other output shape.
        (
            1,
            chain([1, 6, 6], [conv(3, 3, 1, 1), conv(4, 3, 1, 1), dense(5)]),
        ),
        // Another input shape with the same number of features.
        (
            0,
            chain([4, 3, 3], [conv(3, 3, 1, 1), conv(4, 3, 2, 1), dense(5)]),
        ),
        // Classes.
        (
            2,
            chain([1, 6, 6], [conv(3, 3, 1, 1), conv(4, 3, 2, 1), dense(6)]),
        ),
    ];
    for (index, layers) in variants {
        assert_eq!(
            decode_checked::<f32>(&b, &layers),
            Err(Error::CheckpointLayer { index }),
            "{layers:?}"
        );
    }
    // A dense layer in place of a conv with the very same number of weights.
    let d: [LayerSpec; 3] = [
        LayerSpec::Dense {
            inputs: 36,
            outputs: 1,
        },
        LayerSpec::Dense {
            inputs: 1,
            outputs: 27,
        },
        LayerSpec::Dense {
            inputs: 27,
            outputs: 5,
        },
    ];
    assert_eq!(
        decode_checked::<f32>(&b, &d),
        Err(Error::CheckpointLayer { index: 0 })
    );
    let shallow = chain([1, 6, 6], [conv(3, 3, 1, 1), dense(5)]);
    assert_eq!(
        decode_checked::<f32>(&b, &shallow),
        Err(Error::CheckpointDepth {
            expected: 2,
            got: 3
        })
    );
    assert_eq!(
        decode_checked::<f64>(&b, &NET),
        Err(Error::CheckpointElement {
            expected: "f64",
            got: "f32"
        })
    );
    // The dense decoder refuses a conv checkpoint by kind, whatever widths it is given.
    let mut w = vec![0f32; 36 * 5];
    assert_eq!(
        decode(&b, &[36, 5], &mut w),
        Err(Error::CheckpointKind {
            expected: "dense",
            got: "layer-spec"
        })
    );
    assert_eq!(
        inspect(&b).unwrap_err(),
        Error::CheckpointKind {
            expected: "dense",
            got: "layer-spec"
        }
    );
}

#[test]
fn dense_checkpoints_load_into_dense_layer_specs() {
    let widths = [5usize, 7, 3];
    let w: Vec<f64> = (0..5 * 7 + 7 * 3).map(|i| i as f64 * 0.25 - 3.0).collect();
    let mut bytes = vec![0u8; checkpoint_len(&widths, ElemType::F64)];
    encode(&widths, &w, PROGRESS, &mut bytes).unwrap();
    let layers = [
        LayerSpec::Dense {
            inputs: 5,
            outputs: 7,
        },
        LayerSpec::Dense {
            inputs: 7,
            outputs: 3,
        },
    ];
    let h = inspect_spec(&bytes).unwrap();
    assert!(h.dense);
    assert_eq!(h.layers.as_slice(), &layers);
    assert_eq!(
        bits(&decode_checked::<f64>(&bytes, &layers).unwrap()),
        bits(&w)
    );
    let other = [
        LayerSpec::Dense {
            inputs: 5,
            outputs: 7,
        },
        LayerSpec::Dense {
            inputs: 7,
            outputs: 4,
        },
    ];
    assert_eq!(
        decode_checked::<f64>(&bytes, &other),
        Err(Error::CheckpointLayer { index: 1 })
    );
}

#[test]
fn every_truncation_is_refused() {
    let b = valid::<f64>();
    for cut in 0..b.len() {
        let e = decode_checked::<f64>(&b[..cut], &NET).unwrap_err();
        let needed = if cut < HEADER_BYTES + CRC_BYTES {
            HEADER_BYTES + CRC_BYTES
        } else {
            b.len()
        };
        assert_eq!(e, Error::CheckpointTruncated { needed, got: cut });
    }
}

#[test]
fn every_bit_flip_is_refused() {
    let b = valid::<f32>();
    for byte in 0..b.len() {
        for bit in 0..8 {
            let mut c = b.clone();
            c[byte] ^= 1 << bit;
            let e = decode_checked::<f32>(&c, &NET).unwrap_err();
            match byte {
                0..4 => assert_eq!(e, Error::CheckpointMagic),
                4..6 => assert!(matches!(e, Error::CheckpointVersion { .. })),
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

/// Overwrites u32 field `i` of layer record `k`, then fixes the CRC as a crafted file would.
fn with_field(b: &[u8], k: usize, i: usize, v: u32) -> Vec<u8> {
    let mut c = b.to_vec();
    let at = HEADER_BYTES + LAYER_BYTES * k + 4 * i;
    c[at..at + 4].copy_from_slice(&v.to_le_bytes());
    recrc(&mut c);
    c
}

#[test]
fn crafted_layer_records_are_refused() {
    let b = valid::<f32>();
    let cases: Vec<(Vec<u8>, Error)> = vec![
        // Unknown layer kind.
        (with_field(&b, 1, 0, 3), Error::InvalidLayer { layer: 1 }),
        // A dense record with a non-zero padding field: not canonical.
        (with_field(&b, 2, 5, 1), Error::InvalidLayer { layer: 2 }),
        // Sizes whose products overflow (every field u32::MAX).
        (
            (1..9).fold(b.clone(), |c, i| with_field(&c, 0, i, u32::MAX)),
            Error::InvalidLayer { layer: 0 },
        ),
        // Stride 0 (would divide by zero computing the output shape).
        (with_field(&b, 1, 7, 0), Error::InvalidLayer { layer: 1 }),
        // Kernel larger than the padded input.
        (with_field(&b, 0, 3, 9), Error::InvalidLayer { layer: 0 }),
        // Layer 1 no longer reads what layer 0 writes.
        (with_field(&b, 1, 1, 2), Error::InvalidLayer { layer: 1 }),
        // A valid architecture, but not the one the length was computed for.
        (
            with_field(&b, 2, 2, 6),
            Error::CheckpointLength {
                claimed: b.len(),
                expected: b.len() + 4 * 36,
            },
        ),
    ];
    for (c, err) in cases {
        assert_eq!(decode_checked::<f32>(&c, &NET), Err(err));
    }
    for (n, err) in [
        (0u8, Error::InvalidWidths),
        (
            17,
            Error::TooDeep {
                depth: 17,
                max: agd_core::MAX_DEPTH,
            },
        ),
    ] {
        let mut c = b.clone();
        c[7] = n;
        recrc(&mut c);
        assert_eq!(decode_checked::<f32>(&c, &NET), Err(err));
    }
    // A NaN weight in layer 1, with a correct CRC.
    let mut c = b.clone();
    let at = HEADER_BYTES + LAYER_BYTES * 3 + 4 * (NET[0].param_count() + 2);
    c[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    recrc(&mut c);
    assert_eq!(
        decode_checked::<f32>(&c, &NET),
        Err(Error::NonFiniteWeight { layer: 1 })
    );
}

#[test]
fn encode_refusals() {
    let w = weights::<f32>();
    let len = spec_checkpoint_len(&NET, ElemType::F32);
    let mut out = vec![0x5Au8; len - 1];
    assert_eq!(
        encode_spec(&NET, &w, PROGRESS, &mut out),
        Err(Error::BufferSize {
            buffer: "checkpoint",
            expected: len,
            got: len - 1
        })
    );
    assert!(out.iter().all(|&x| x == 0x5A), "nothing written on error");
    let mut out = vec![0u8; len];
    let mut nan = w.clone();
    nan[P - 1] = f32::INFINITY;
    assert_eq!(
        encode_spec(&NET, &nan, PROGRESS, &mut out),
        Err(Error::NonFiniteWeight { layer: 2 })
    );
    let mut broken = NET;
    broken[1] = LayerSpec::Conv(Conv2d {
        c_in: 2,
        ..match NET[1] {
            LayerSpec::Conv(c) => c,
            LayerSpec::Dense { .. } => unreachable!(),
        }
    });
    assert_eq!(
        encode_spec(&broken, &w, PROGRESS, &mut out),
        Err(Error::InvalidLayer { layer: 1 })
    );
}

/// Whatever decodes must re-encode to exactly the same bytes.
fn accepted_only_if_canonical<T: Element>(bytes: &[u8]) {
    let Ok(h) = inspect_spec(bytes) else {
        let _ = decode_checked::<T>(bytes, &NET).unwrap_err();
        return;
    };
    let mut w = vec![T::ZERO; spec::param_count(&h.layers)];
    let r = decode_spec(bytes, &h.layers, &mut w);
    if ElemType::of::<T>() != Some(h.elem) {
        assert!(r.is_err());
        return;
    }
    assert_eq!(r, Ok(h.progress));
    if h.dense {
        return; // a dense checkpoint re-encodes with `encode` (checkpoint.rs tests that)
    }
    let mut again = vec![0u8; h.len];
    encode_spec(&h.layers, &w, h.progress, &mut again).unwrap();
    assert_eq!(&again[..], &bytes[..h.len]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn random_bytes_behind_a_spec_header(
        tail in proptest::collection::vec(any::<u8>(), 0..600),
        n in 0u8..5,
        fix_len in any::<bool>(),
    ) {
        let mut bytes = b"AGDC\x01\x00\x81".to_vec();
        bytes.push(n);
        bytes.extend_from_slice(&tail);
        if fix_len && bytes.len() >= HEADER_BYTES + CRC_BYTES {
            let len = bytes.len() as u64;
            bytes[8..16].copy_from_slice(&len.to_le_bytes());
            recrc(&mut bytes);
        }
        accepted_only_if_canonical::<f32>(&bytes);
    }

    #[test]
    fn mutated_spec_checkpoints_are_refused_or_canonical(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = valid::<f32>();
        for (pos, val) in edits {
            let i = pos % bytes.len();
            // The length field stays (the CRC is fixed up behind the edits).
            if !(8..16).contains(&i) {
                bytes[i] = val;
            }
        }
        recrc(&mut bytes);
        accepted_only_if_canonical::<f32>(&bytes);
        accepted_only_if_canonical::<f64>(&bytes);
    }
}
