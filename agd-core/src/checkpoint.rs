//! Checkpoints: a network's weights and training progress as bytes in a caller's buffer.
//!
//! Little-endian, no heap, no padding:
//!
//! ```text
//! offset      bytes  field
//! 0           4      magic "AGDC"
//! 4           2      format version (1)
//! 6           1      element type: 1 = f32, 2 = f64
//! 7           1      n = number of widths = L + 1 (2 ..= MAX_DEPTH + 1)
//! 8           8      total length in bytes, CRC included
//! 16          8      step count
//! 24          8      RNG state (SplitMix64)
//! 32          4·n    widths d_0 … d_L, u32 each
//! 32 + 4n     B·P    the P weights, layer after layer, row-major (B = 4 or 8)
//! len − 4     4      CRC-32 (ISO-HDLC, the zlib/PNG one) of every byte before it
//! ```
//!
//! **Layer-spec networks** ([`crate::spec`], convolutions and dense layers) use the same
//! header with bit 7 of byte 6 set ([`SPEC_FLAG`]: `0x81` f32, `0x82` f64) and byte 7 holding
//! the number of layers `L` (1 ..= MAX_DEPTH); in place of the widths come `L` records of nine
//! little-endian u32 ([`LAYER_BYTES`] = 36 bytes each):
//!
//! ```text
//! dense:  1, d_in, d_out, 0, 0, 0, 0, 0, 0
//! conv:   2, c_in, c_out, kh, kw, h, w, stride, pad
//! ```
//!
//! then the weights in [`SpecLayout`] order and the CRC. The version stays 1: a dense
//! checkpoint is byte for byte what it was, and a reader that predates the flag refuses a
//! layer-spec one (unknown element type) rather than misreading it. [`decode_spec`] also reads
//! a dense checkpoint into a layer-spec network made of the same dense layers.
//!
//! Decoding trusts nothing: it checks magic, version, length, CRC, then the header's
//! consistency, then that every weight is finite, then that the checkpoint fits the target
//! network, and only then writes a single weight. Every failure is a typed [`Error`]; on
//! any error the target is left exactly as it was. A buffer longer than the checkpoint is
//! fine (a static buffer sized for the largest network): the length field says where it ends.
//!
//! Everything accepted re-encodes to exactly the same bytes (the format has no free bits),
//! which is what the fuzz tests check.

use core::ops::Range;

use agd_simd::Element;
use crc::{CRC_32_ISO_HDLC, Crc};
use heapless::Vec;

use crate::conv::Conv2d;
use crate::error::Error;
use crate::layout::{Layout, MAX_DEPTH, param_count};
use crate::net::NetMut;
use crate::spec::{self, LayerSpec, SpecLayout};
use crate::spec_net::ConvNetMut;

/// The first four bytes of every checkpoint.
pub const MAGIC: [u8; 4] = *b"AGDC";
/// The format version this build writes and reads.
pub const VERSION: u16 = 1;
/// Bytes before the widths.
pub const HEADER_BYTES: usize = 32;
/// Bytes of the trailing CRC.
pub const CRC_BYTES: usize = 4;
/// Bit of the element-type byte marking a layer-spec (conv) checkpoint.
pub const SPEC_FLAG: u8 = 0x80;
/// Bytes of one layer record of a layer-spec checkpoint: nine u32.
pub const LAYER_BYTES: usize = 36;
/// Layer record kind of a dense layer.
const KIND_DENSE: u32 = 1;
/// Layer record kind of a convolution.
const KIND_CONV: u32 = 2;

/// The CRC every checkpoint (and storage record) uses. The 1 KiB table is a `const`, so on a
/// microcontroller it sits in flash, not RAM.
pub(crate) const CRC32: Crc<u32> = Crc::<u32>::new(&CRC_32_ISO_HDLC);

/// The element type of a checkpoint's weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemType {
    /// IEEE 754 binary32.
    F32,
    /// IEEE 754 binary64.
    F64,
}

impl ElemType {
    /// Bytes per weight.
    pub const fn bytes(self) -> usize {
        match self {
            ElemType::F32 => 4,
            ElemType::F64 => 8,
        }
    }

    /// `"f32"` or `"f64"`, as [`Element::NAME`].
    pub const fn name(self) -> &'static str {
        match self {
            ElemType::F32 => "f32",
            ElemType::F64 => "f64",
        }
    }

    /// The code in the header.
    pub const fn code(self) -> u8 {
        match self {
            ElemType::F32 => 1,
            ElemType::F64 => 2,
        }
    }

    /// The type with this header code.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(ElemType::F32),
            2 => Some(ElemType::F64),
            _ => None,
        }
    }

    /// The checkpoint element type of `T` (`None` for an element type the format lacks).
    pub fn of<T: Element>() -> Option<Self> {
        match (T::NAME, T::BYTES) {
            ("f32", 4) => Some(ElemType::F32),
            ("f64", 8) => Some(ElemType::F64),
            _ => None,
        }
    }
}

/// Bytes of the checkpoint of a network with these widths and element type, to size a
/// static buffer:
///
/// ```
/// use agd_core::checkpoint::{ElemType, checkpoint_len};
/// static mut BUF: [u8; checkpoint_len(&[64, 32, 10], ElemType::F32)] =
///     [0; checkpoint_len(&[64, 32, 10], ElemType::F32)];
/// assert_eq!(checkpoint_len(&[64, 32, 10], ElemType::F32), 32 + 3 * 4 + 4 * 2368 + 4);
/// ```
pub const fn checkpoint_len(widths: &[usize], elem: ElemType) -> usize {
    HEADER_BYTES + 4 * widths.len() + elem.bytes() * param_count(widths) + CRC_BYTES
}

/// The same, `None` on overflow (widths read from untrusted bytes).
fn checked_len(widths: &[usize], elem: ElemType) -> Option<usize> {
    let mut params: usize = 0;
    for pair in widths.windows(2) {
        params = params.checked_add(pair[0].checked_mul(pair[1])?)?;
    }
    checked_total(params, elem, 4 * widths.len())
}

/// Bytes of a checkpoint of `params` weights whose table (widths or layer records) takes
/// `table_bytes`, `None` on overflow.
fn checked_total(params: usize, elem: ElemType, table_bytes: usize) -> Option<usize> {
    params
        .checked_mul(elem.bytes())?
        .checked_add(HEADER_BYTES + CRC_BYTES + table_bytes)
}

/// Where training stands, saved next to the weights so that it resumes where it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Steps taken so far.
    pub step: u64,
    /// State of the data-order RNG ([`crate::SplitMix64::state`]); `SplitMix64::new(rng)`
    /// continues its sequence exactly where it was saved.
    pub rng: u64,
}

/// What a checked checkpoint says about itself (see [`inspect`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Element type of the weights.
    pub elem: ElemType,
    /// The widths `[d_0, …, d_L]`.
    pub widths: Vec<usize, { MAX_DEPTH + 1 }>,
    /// Step count and RNG state.
    pub progress: Progress,
    /// Total bytes, CRC included.
    pub len: usize,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// Whether the little-endian float of this type at the start of `b` is finite.
fn finite_at(elem: ElemType, b: &[u8]) -> bool {
    match elem {
        ElemType::F32 => f32::from_bits(u32_at(b, 0)).is_finite(),
        ElemType::F64 => f64::from_bits(u64_at(b, 0)).is_finite(),
    }
}

/// The checkpoint element type of `T`; [`Error::CheckpointElement`] for one the format lacks.
fn elem_of<T: Element>() -> Result<ElemType, Error> {
    ElemType::of::<T>().ok_or(Error::CheckpointElement {
        expected: "f32 or f64",
        got: T::NAME,
    })
}

/// Checks that a weight buffer holds the network's `expected` weights.
fn check_weight_count(got: usize, expected: usize) -> Result<(), Error> {
    if got == expected {
        Ok(())
    } else {
        Err(Error::BufferSize {
            buffer: "weights",
            expected,
            got,
        })
    }
}

/// Checks the weights to save: `param_count` of them, and every layer's (`ranges`, in
/// order) finite.
fn check_weights<T: Element>(
    weights: &[T],
    param_count: usize,
    ranges: impl Iterator<Item = Range<usize>>,
) -> Result<(), Error> {
    check_weight_count(weights.len(), param_count)?;
    for (k, r) in ranges.enumerate() {
        if !weights[r].iter().all(|w| w.is_finite()) {
            return Err(Error::NonFiniteWeight { layer: k });
        }
    }
    Ok(())
}

/// Writes a checkpoint of `len` bytes into the start of `out`: the header (`code` in byte
/// 6, `count` in byte 7), the `table` of u32 (widths or layer records), the weights and the
/// CRC. Returns `len`; refuses, writing nothing, an `out` shorter than that. `T` is one of
/// the format's element types ([`elem_of`] checked it).
fn write_checkpoint<T: Element>(
    out: &mut [u8],
    len: usize,
    code: u8,
    count: u8,
    progress: Progress,
    table: impl Iterator<Item = u32>,
    weights: &[T],
) -> Result<usize, Error> {
    if out.len() < len {
        return Err(Error::BufferSize {
            buffer: "checkpoint",
            expected: len,
            got: out.len(),
        });
    }
    let out = &mut out[..len];
    out[0..4].copy_from_slice(&MAGIC);
    out[4..6].copy_from_slice(&VERSION.to_le_bytes());
    out[6] = code;
    out[7] = count;
    out[8..16].copy_from_slice(&(len as u64).to_le_bytes());
    out[16..24].copy_from_slice(&progress.step.to_le_bytes());
    out[24..32].copy_from_slice(&progress.rng.to_le_bytes());
    let mut at = HEADER_BYTES;
    for x in table {
        out[at..at + 4].copy_from_slice(&x.to_le_bytes());
        at += 4;
    }
    // `ElemType::of` matched T::BYTES to the element type's size.
    let b = T::BYTES;
    for &w in weights {
        // to_bits_u64 widens an f32's 32 bits; the low `b` bytes are the value.
        out[at..at + b].copy_from_slice(&w.to_bits_u64().to_le_bytes()[..b]);
        at += b;
    }
    let crc = CRC32.checksum(&out[..at]);
    out[at..at + 4].copy_from_slice(&crc.to_le_bytes());
    Ok(len)
}

/// Serialises `weights` (laid out for `widths`) and `progress` into the start of `out`;
/// returns the number of bytes written ([`checkpoint_len`]).
///
/// Refuses (writing nothing) invalid widths, a weight buffer of the wrong size, an `out`
/// too short, and NaN or infinite weights — a checkpoint is only ever a good state.
pub fn encode<T: Element>(
    widths: &[usize],
    weights: &[T],
    progress: Progress,
    out: &mut [u8],
) -> Result<usize, Error> {
    let layout = Layout::new(widths)?;
    let elem = elem_of::<T>()?;
    if widths.iter().any(|&w| u32::try_from(w).is_err()) {
        return Err(Error::InvalidWidths);
    }
    check_weights(
        weights,
        layout.param_count(),
        (0..layout.depth()).map(|k| layout.weight_range(k)),
    )?;
    write_checkpoint(
        out,
        checkpoint_len(widths, elem),
        elem.code(),
        // Layout::new caps the widths at MAX_DEPTH + 1 = 17, so this fits a byte.
        widths.len() as u8,
        progress,
        // Each fits a u32 (checked above).
        widths.iter().map(|&w| w as u32),
        weights,
    )
}

/// Checks what every checkpoint shares: magic, version, length field and CRC. Returns the
/// length the checkpoint claims (bytes beyond it are not part of it).
fn check_frame(bytes: &[u8]) -> Result<usize, Error> {
    const MIN: usize = HEADER_BYTES + CRC_BYTES;
    // Even a file shorter than the magic is "not a checkpoint" rather than "truncated" unless
    // it starts like one.
    let n = bytes.len().min(MAGIC.len());
    if bytes[..n] != MAGIC[..n] {
        return Err(Error::CheckpointMagic);
    }
    if bytes.len() >= 6 && u16_at(bytes, 4) != VERSION {
        return Err(Error::CheckpointVersion {
            got: u16_at(bytes, 4),
            supported: VERSION,
        });
    }
    if bytes.len() < MIN {
        return Err(Error::CheckpointTruncated {
            needed: MIN,
            got: bytes.len(),
        });
    }
    let claimed_u64 = u64_at(bytes, 8);
    let claimed = usize::try_from(claimed_u64).unwrap_or(usize::MAX);
    if claimed < MIN {
        return Err(Error::CheckpointLength {
            claimed,
            expected: MIN,
        });
    }
    if claimed > bytes.len() {
        return Err(Error::CheckpointTruncated {
            needed: claimed,
            got: bytes.len(),
        });
    }
    let stored = u32_at(bytes, claimed - CRC_BYTES);
    let computed = CRC32.checksum(&bytes[..claimed - CRC_BYTES]);
    if stored != computed {
        return Err(Error::CheckpointCrc { stored, computed });
    }
    Ok(claimed)
}

/// The element type and whether the layer-spec flag is set, from byte 6.
fn elem_and_kind(code: u8) -> Result<(ElemType, bool), Error> {
    match ElemType::from_code(code & !SPEC_FLAG) {
        Some(elem) => Ok((elem, code & SPEC_FLAG != 0)),
        None => Err(Error::CheckpointElement {
            expected: "f32 or f64",
            got: "unknown",
        }),
    }
}

/// Checks the number of layers a header gives (0 for a dense one with fewer than two
/// widths): 1 ..= MAX_DEPTH.
fn check_depth(depth: usize) -> Result<(), Error> {
    if depth == 0 {
        return Err(Error::InvalidWidths);
    }
    if depth > MAX_DEPTH {
        return Err(Error::TooDeep {
            depth,
            max: MAX_DEPTH,
        });
    }
    Ok(())
}

/// Checks that the table after the header (`table_bytes` of widths or layer records) and the
/// CRC fit the `claimed` length; returns where the table ends (the first weight).
fn table_end(table_bytes: usize, claimed: usize) -> Result<usize, Error> {
    let end = HEADER_BYTES + table_bytes;
    if end + CRC_BYTES > claimed {
        return Err(Error::CheckpointLength {
            claimed,
            expected: end + CRC_BYTES,
        });
    }
    Ok(end)
}

/// Checks that the `claimed` length is the one the header's table implies (`None`: it
/// overflows).
fn check_total(expected: Option<usize>, claimed: usize) -> Result<(), Error> {
    let expected = expected.unwrap_or(usize::MAX);
    if expected != claimed {
        return Err(Error::CheckpointLength { claimed, expected });
    }
    Ok(())
}

/// The step count and RNG state of a checked header.
fn progress_of(bytes: &[u8]) -> Progress {
    Progress {
        step: u64_at(bytes, 16),
        rng: u64_at(bytes, 24),
    }
}

/// Checks a checkpoint completely without a target network: magic, version, length, CRC,
/// header consistency and that every weight is finite. Returns what it says about itself
/// (a host reads the widths from here to build the network to load it into). A layer-spec
/// checkpoint is [`Error::CheckpointKind`] here; see [`inspect_spec`].
pub fn inspect(bytes: &[u8]) -> Result<Header, Error> {
    let claimed = check_frame(bytes)?;
    // From here the bytes are as some encoder wrote them; still check they are consistent,
    // as a crafted file can carry a correct CRC.
    let (elem, spec) = elem_and_kind(bytes[6])?;
    if spec {
        return Err(Error::CheckpointKind {
            expected: "dense",
            got: "layer-spec",
        });
    }
    let n = bytes[7] as usize;
    check_depth(n.saturating_sub(1))?;
    let start = table_end(4 * n, claimed)?;
    let mut widths: Vec<usize, { MAX_DEPTH + 1 }> = Vec::new();
    for k in 0..n {
        let w = u32_at(bytes, HEADER_BYTES + 4 * k) as usize;
        if w == 0 {
            return Err(Error::InvalidWidths);
        }
        // n <= MAX_DEPTH + 1 was checked above.
        let _ = widths.push(w);
    }
    check_total(checked_len(&widths, elem), claimed)?;
    let layout = Layout::new(&widths)?;
    check_finite_weights(
        elem,
        (0..layout.depth()).map(|k| layout.weight_range(k).len()),
        &bytes[start..claimed - CRC_BYTES],
    )?;
    Ok(Header {
        elem,
        progress: progress_of(bytes),
        widths,
        len: claimed,
    })
}

/// Checks `bytes` completely (see [`inspect`]) and against the target (element type
/// `T`, `widths`), then copies the weights into `weights`. Returns the saved progress.
/// On any error `weights` is untouched.
pub fn decode<T: Element>(
    bytes: &[u8],
    widths: &[usize],
    weights: &mut [T],
) -> Result<Progress, Error> {
    let layout = Layout::new(widths)?;
    check_weight_count(weights.len(), layout.param_count())?;
    let header = inspect(bytes)?;
    check_target::<T>(header.elem, widths.len() - 1, header.widths.len() - 1)?;
    if let Some((index, (&expected, &got))) = widths
        .iter()
        .zip(header.widths.iter())
        .enumerate()
        .find(|(_, (a, b))| a != b)
    {
        return Err(Error::CheckpointWidths {
            index,
            expected,
            got,
        });
    }
    copy_weights(
        header.elem,
        &bytes[HEADER_BYTES + 4 * widths.len()..],
        weights,
    );
    Ok(header.progress)
}

/// Bytes of the checkpoint of a layer-spec network with these (checked) layers and element
/// type, to size a static buffer:
///
/// ```
/// use agd_core::checkpoint::{ElemType, LAYER_BYTES, spec_checkpoint_len};
/// use agd_core::spec::{LayerSpec, chain, conv, dense};
/// const NET: [LayerSpec; 2] = chain([1, 8, 8], [conv(4, 3, 1, 1), dense(10)]);
/// static mut BUF: [u8; spec_checkpoint_len(&NET, ElemType::F32)] =
///     [0; spec_checkpoint_len(&NET, ElemType::F32)];
/// assert_eq!(
///     spec_checkpoint_len(&NET, ElemType::F32),
///     32 + 2 * LAYER_BYTES + 4 * (4 * 9 + 10 * 256) + 4
/// );
/// ```
pub const fn spec_checkpoint_len(layers: &[LayerSpec], elem: ElemType) -> usize {
    HEADER_BYTES + LAYER_BYTES * layers.len() + elem.bytes() * spec::param_count(layers) + CRC_BYTES
}

/// The nine u32 of a layer record (`None` if a size does not fit a u32).
fn record(layer: &LayerSpec) -> Option<[u32; 9]> {
    let u = |x: usize| u32::try_from(x).ok();
    Some(match layer {
        LayerSpec::Dense { inputs, outputs } => {
            [KIND_DENSE, u(*inputs)?, u(*outputs)?, 0, 0, 0, 0, 0, 0]
        }
        LayerSpec::Conv(c) => [
            KIND_CONV,
            u(c.c_in)?,
            u(c.c_out)?,
            u(c.kh)?,
            u(c.kw)?,
            u(c.h)?,
            u(c.w)?,
            u(c.stride)?,
            u(c.pad)?,
        ],
    })
}

/// The layer a record describes; [`Error::InvalidLayer`] for an unknown kind, a dense record
/// with non-zero padding fields, or sizes that do not fit ([`sizes_fit`]).
fn layer_of(r: &[u32; 9], k: usize) -> Result<LayerSpec, Error> {
    let f = |i: usize| r[i] as usize;
    let layer = match r[0] {
        KIND_DENSE if r[3..].iter().all(|&x| x == 0) => LayerSpec::Dense {
            inputs: f(1),
            outputs: f(2),
        },
        KIND_CONV => LayerSpec::Conv(Conv2d {
            c_in: f(1),
            c_out: f(2),
            kh: f(3),
            kw: f(4),
            h: f(5),
            w: f(6),
            stride: f(7),
            pad: f(8),
        }),
        _ => return Err(Error::InvalidLayer { layer: k }),
    };
    // Every size derived from it must fit before anything else looks at it (the encoder
    // applies the same rule, so whatever it writes reads back).
    if layer.fits() {
        Ok(layer)
    } else {
        Err(Error::InvalidLayer { layer: k })
    }
}

/// [`spec_checkpoint_len`], `None` on overflow (layers read from untrusted bytes).
fn checked_spec_len(layers: &[LayerSpec], elem: ElemType) -> Option<usize> {
    let mut params: usize = 0;
    for l in layers {
        // `sizes_fit` held for each layer, so its own count does not overflow.
        params = params.checked_add(l.param_count())?;
    }
    checked_total(params, elem, LAYER_BYTES * layers.len())
}

/// What a checked checkpoint of a layer-spec network (or a dense one, seen as dense layers)
/// says about itself (see [`inspect_spec`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecHeader {
    /// Element type of the weights.
    pub elem: ElemType,
    /// The layers, input shapes filled in.
    pub layers: Vec<LayerSpec, MAX_DEPTH>,
    /// Step count and RNG state.
    pub progress: Progress,
    /// Total bytes, CRC included.
    pub len: usize,
    /// `true` for a dense checkpoint (widths in the header), `false` for a layer-spec one.
    pub dense: bool,
}

impl SpecHeader {
    /// Offset of the first weight.
    fn weights_at(&self) -> usize {
        if self.dense {
            HEADER_BYTES + 4 * (self.layers.len() + 1)
        } else {
            HEADER_BYTES + LAYER_BYTES * self.layers.len()
        }
    }
}

/// Checks that every weight of every layer (`counts`: weights per layer, in order) is
/// finite, the weights starting at `data`.
fn check_finite_weights(
    elem: ElemType,
    counts: impl Iterator<Item = usize>,
    data: &[u8],
) -> Result<(), Error> {
    let b = elem.bytes();
    let mut at = 0;
    for (k, count) in counts.enumerate() {
        let end = at + b * count;
        if !data[at..end].chunks_exact(b).all(|x| finite_at(elem, x)) {
            return Err(Error::NonFiniteWeight { layer: k });
        }
        at = end;
    }
    Ok(())
}

/// Serialises the weights of a layer-spec network (`layers`, checked as
/// [`SpecLayout::new`] does) and `progress` into the start of `out`; returns the bytes
/// written ([`spec_checkpoint_len`]). Refuses, writing nothing, what [`encode`] refuses.
pub fn encode_spec<T: Element>(
    layers: &[LayerSpec],
    weights: &[T],
    progress: Progress,
    out: &mut [u8],
) -> Result<usize, Error> {
    let layout = SpecLayout::new(layers)?;
    let elem = elem_of::<T>()?;
    let mut records: Vec<[u32; 9], MAX_DEPTH> = Vec::new();
    for (k, l) in layers.iter().enumerate() {
        match record(l) {
            // SpecLayout::new capped the layers at MAX_DEPTH.
            Some(r) if l.fits() => {
                let _ = records.push(r);
            }
            _ => return Err(Error::InvalidLayer { layer: k }),
        }
    }
    check_weights(
        weights,
        layout.param_count(),
        (0..layout.depth()).map(|k| layout.weight_range(k)),
    )?;
    write_checkpoint(
        out,
        spec_checkpoint_len(layers, elem),
        elem.code() | SPEC_FLAG,
        // At most MAX_DEPTH = 16 layers.
        layers.len() as u8,
        progress,
        records.iter().flatten().copied(),
        weights,
    )
}

/// Checks a layer-spec checkpoint completely without a target network, as [`inspect`] does
/// a dense one; a dense checkpoint is accepted too and described as its dense layers.
pub fn inspect_spec(bytes: &[u8]) -> Result<SpecHeader, Error> {
    let claimed = check_frame(bytes)?;
    let (elem, spec) = elem_and_kind(bytes[6])?;
    if !spec {
        let h = inspect(bytes)?;
        let mut layers: Vec<LayerSpec, MAX_DEPTH> = Vec::new();
        for pair in h.widths.windows(2) {
            // At most MAX_DEPTH pairs (checked by inspect).
            let _ = layers.push(LayerSpec::Dense {
                inputs: pair[0],
                outputs: pair[1],
            });
        }
        return Ok(SpecHeader {
            elem,
            layers,
            progress: h.progress,
            len: h.len,
            dense: true,
        });
    }
    let n = bytes[7] as usize;
    check_depth(n)?;
    let records_end = table_end(LAYER_BYTES * n, claimed)?;
    let mut layers: Vec<LayerSpec, MAX_DEPTH> = Vec::new();
    for k in 0..n {
        let mut r = [0u32; 9];
        for (i, x) in r.iter_mut().enumerate() {
            *x = u32_at(bytes, HEADER_BYTES + LAYER_BYTES * k + 4 * i);
        }
        // n <= MAX_DEPTH was checked above.
        let _ = layers.push(layer_of(&r, k)?);
    }
    SpecLayout::new(&layers)?;
    check_total(checked_spec_len(&layers, elem), claimed)?;
    check_finite_weights(
        elem,
        layers.iter().map(LayerSpec::param_count),
        &bytes[records_end..claimed - CRC_BYTES],
    )?;
    Ok(SpecHeader {
        elem,
        layers,
        progress: progress_of(bytes),
        len: claimed,
        dense: false,
    })
}

/// Checks `bytes` completely (see [`inspect_spec`]) and against the target (element type
/// `T`, `layers`: same number, each equal, input shapes included), then copies the weights
/// into `weights`. Returns the saved progress. On any error `weights` is untouched.
pub fn decode_spec<T: Element>(
    bytes: &[u8],
    layers: &[LayerSpec],
    weights: &mut [T],
) -> Result<Progress, Error> {
    let layout = SpecLayout::new(layers)?;
    check_weight_count(weights.len(), layout.param_count())?;
    let header = inspect_spec(bytes)?;
    check_target::<T>(header.elem, layers.len(), header.layers.len())?;
    if let Some(index) = (0..layers.len()).find(|&k| header.layers[k] != layers[k]) {
        return Err(Error::CheckpointLayer { index });
    }
    copy_weights(header.elem, &bytes[header.weights_at()..], weights);
    Ok(header.progress)
}

/// Checks a checked checkpoint (element type `elem`, `depth` layers) against a target of
/// element type `T` and `expected` layers.
fn check_target<T: Element>(elem: ElemType, expected: usize, depth: usize) -> Result<(), Error> {
    if ElemType::of::<T>() != Some(elem) {
        return Err(Error::CheckpointElement {
            expected: T::NAME,
            got: elem.name(),
        });
    }
    if depth != expected {
        return Err(Error::CheckpointDepth {
            expected,
            got: depth,
        });
    }
    Ok(())
}

/// Copies `weights.len()` little-endian values of type `elem` from the start of `data`.
fn copy_weights<T: Element>(elem: ElemType, data: &[u8], weights: &mut [T]) {
    let b = elem.bytes();
    for (w, x) in weights.iter_mut().zip(data.chunks_exact(b)) {
        // Exact: every f32 is an f64, and `from_f64` of that f64 gives the f32 back.
        *w = T::from_f64(match elem {
            ElemType::F32 => f32::from_bits(u32_at(x, 0)) as f64,
            ElemType::F64 => f64::from_bits(u64_at(x, 0)),
        });
    }
}

impl<T: Element> ConvNetMut<'_, T> {
    /// Saves the weights and `progress` into `out` (see [`encode_spec`]); returns the bytes
    /// used.
    pub fn save_checkpoint(&self, progress: Progress, out: &mut [u8]) -> Result<usize, Error> {
        encode_spec(self.layout().layers(), self.weights(), progress, out)
    }

    /// Loads the weights from a checkpoint of a network with the same layers and element type
    /// (see [`decode_spec`]); returns the saved progress. On any error no weight changes.
    pub fn load_checkpoint(&mut self, bytes: &[u8]) -> Result<Progress, Error> {
        let layers = self.layout().layers();
        decode_spec(bytes, layers, self.weights_mut())
    }
}

impl<T: Element> NetMut<'_, T> {
    /// Saves the weights and `progress` into `out` (see [`encode`]); returns the bytes used.
    pub fn save_checkpoint(&self, progress: Progress, out: &mut [u8]) -> Result<usize, Error> {
        encode(self.layout().widths(), self.weights(), progress, out)
    }

    /// Loads the weights from a checkpoint of a network with the same widths and element
    /// type (see [`decode`]); returns the saved progress. On any error no weight changes.
    pub fn load_checkpoint(&mut self, bytes: &[u8]) -> Result<Progress, Error> {
        let widths = self.layout().widths();
        decode(bytes, widths, self.weights_mut())
    }
}
