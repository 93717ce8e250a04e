//! The IDX file format (the format MNIST is distributed in), raw or gzip-compressed.
//!
//! ```text
//! offset 0   2 bytes   0x00 0x00
//! offset 2   1 byte    dtype: 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64
//! offset 3   1 byte    number of dimensions nd
//! offset 4   4·nd      each dimension, big-endian u32
//! then                 the values, row-major, big-endian
//! ```
//!
//! The reader is strict: the payload must be exactly as long as the header says, and floating
//! point values must be finite. It returns a typed [`IdxError`] for every malformed input and
//! never panics, whatever the bytes.
//!
//! It is no gzip bomb's victim either: a header declaring more than [`MAX_DATA_BYTES`] of
//! values is refused before anything is allocated, and a compressed file is inflated only up
//! to what its header declares (plus one byte, to tell that there is more): a small file that
//! inflates to gigabytes is refused after reading a few bytes past its declared size.

use std::io::Read;
use std::path::Path;

use crate::HostError;

/// Largest payload, in bytes, an IDX header may declare: 1 GiB (MNIST's training images are
/// 47 MB). Larger files are refused before anything is allocated for them.
pub const MAX_DATA_BYTES: usize = 1 << 30;

/// Element type of an IDX file, from its dtype byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdxType {
    /// `0x08`: unsigned byte.
    U8,
    /// `0x09`: signed byte.
    I8,
    /// `0x0B`: big-endian i16.
    I16,
    /// `0x0C`: big-endian i32.
    I32,
    /// `0x0D`: big-endian IEEE f32.
    F32,
    /// `0x0E`: big-endian IEEE f64.
    F64,
}

impl IdxType {
    /// The type for a dtype byte, if it is one of the six IDX codes.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0x08 => IdxType::U8,
            0x09 => IdxType::I8,
            0x0B => IdxType::I16,
            0x0C => IdxType::I32,
            0x0D => IdxType::F32,
            0x0E => IdxType::F64,
            _ => return None,
        })
    }

    /// Bytes per value.
    pub fn size(self) -> usize {
        match self {
            IdxType::U8 | IdxType::I8 => 1,
            IdxType::I16 => 2,
            IdxType::I32 | IdxType::F32 => 4,
            IdxType::F64 => 8,
        }
    }

    /// Lower-case name (`u8`, `f32`, …).
    pub fn name(self) -> &'static str {
        match self {
            IdxType::U8 => "u8",
            IdxType::I8 => "i8",
            IdxType::I16 => "i16",
            IdxType::I32 => "i32",
            IdxType::F32 => "f32",
            IdxType::F64 => "f64",
        }
    }
}

/// Why bytes are not a valid IDX file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IdxError {
    /// Fewer than the 4 bytes of the magic number.
    #[error("not an IDX file: {len} bytes, shorter than the 4-byte magic number")]
    TooShort {
        /// Bytes present.
        len: usize,
    },
    /// The first two bytes are not zero.
    #[error("not an IDX file: magic number 0x{magic:08X} does not start with 0x0000")]
    BadMagic {
        /// The first four bytes, big-endian.
        magic: u32,
    },
    /// The dtype byte is none of the six IDX codes.
    #[error("not an IDX file: unknown dtype code 0x{code:02X} in magic number")]
    UnknownType {
        /// The dtype byte.
        code: u8,
    },
    /// The header ends before all its dimensions.
    #[error("truncated IDX header: {nd} dimensions need {needed} header bytes, file has {len}")]
    TruncatedHeader {
        /// Number of dimensions claimed.
        nd: usize,
        /// Header bytes needed.
        needed: usize,
        /// Bytes present.
        len: usize,
    },
    /// The dimensions' product (times the value size) does not fit in memory addresses.
    #[error("IDX dimensions {dims:?} overflow: too many values")]
    TooLarge {
        /// The dimensions.
        dims: Vec<u32>,
    },
    /// The header declares more data than [`MAX_DATA_BYTES`].
    #[error(
        "IDX header {dims:?} declares {bytes} data bytes, more than the {cap} this reader accepts"
    )]
    OverCap {
        /// The dimensions.
        dims: Vec<u32>,
        /// Bytes declared.
        bytes: usize,
        /// [`MAX_DATA_BYTES`].
        cap: usize,
    },
    /// A compressed file inflates to more data than its header declares (reading stopped
    /// there).
    #[error(
        "the gzip stream inflates to more than the {expected} data bytes its IDX header declares"
    )]
    Inflates {
        /// Payload bytes the header declares.
        expected: usize,
    },
    /// The header claims more data than the file holds.
    #[error(
        "truncated IDX data: header {dims:?} ({dtype}) needs {expected} data bytes, file has {got}"
    )]
    Truncated {
        /// The dimensions.
        dims: Vec<usize>,
        /// The element type's name.
        dtype: &'static str,
        /// Payload bytes the header implies.
        expected: usize,
        /// Payload bytes present.
        got: usize,
    },
    /// The file holds more data than the header claims.
    #[error("IDX file has {extra} bytes after the {expected} data bytes its header describes")]
    TrailingData {
        /// Payload bytes the header implies.
        expected: usize,
        /// Bytes beyond them.
        extra: usize,
    },
    /// A floating-point value is NaN or infinite.
    #[error("IDX value {index} is not finite ({value})")]
    NonFinite {
        /// Row-major index of the value.
        index: usize,
        /// The value.
        value: f64,
    },
    /// The gzip stream could not be decompressed.
    #[error("corrupt gzip stream: {0}")]
    Gzip(String),
}

/// A checked IDX header.
struct Header {
    dtype: IdxType,
    dims: Vec<u32>,
    /// Header bytes.
    len: usize,
    /// Payload bytes it declares (at most [`MAX_DATA_BYTES`]).
    expected: usize,
}

impl Header {
    /// Checks magic, type, dimensions and the declared size; `bytes` may go on past the
    /// header.
    fn parse(bytes: &[u8]) -> Result<Self, IdxError> {
        if bytes.len() < 4 {
            return Err(IdxError::TooShort { len: bytes.len() });
        }
        let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        if bytes[0] != 0 || bytes[1] != 0 {
            return Err(IdxError::BadMagic { magic });
        }
        let dtype = IdxType::from_code(bytes[2]).ok_or(IdxError::UnknownType { code: bytes[2] })?;
        let nd = usize::from(bytes[3]);
        let len = 4 + 4 * nd;
        if bytes.len() < len {
            return Err(IdxError::TruncatedHeader {
                nd,
                needed: len,
                len: bytes.len(),
            });
        }
        let dims: Vec<u32> = chunks::<4>(&bytes[4..len])
            .map(u32::from_be_bytes)
            .collect();
        // Checked arithmetic: a hostile header must not wrap the size to something small.
        let expected = dims
            .iter()
            .try_fold(dtype.size(), |acc, &d| {
                acc.checked_mul(usize::try_from(d).ok()?)
            })
            .ok_or_else(|| IdxError::TooLarge { dims: dims.clone() })?;
        if expected > MAX_DATA_BYTES {
            return Err(IdxError::OverCap {
                dims,
                bytes: expected,
                cap: MAX_DATA_BYTES,
            });
        }
        Ok(Header {
            dtype,
            dims,
            len,
            expected,
        })
    }
}

/// Reads from `r` until `buf` holds `len` bytes or the stream ends.
fn fill_to<R: Read>(r: &mut R, buf: &mut Vec<u8>, len: usize) -> Result<(), IdxError> {
    let want = len.saturating_sub(buf.len()) as u64;
    r.take(want)
        .read_to_end(buf)
        .map(|_| ())
        .map_err(|e| IdxError::Gzip(e.to_string()))
}

/// The values of an IDX file, in their own type.
#[derive(Debug, Clone, PartialEq)]
pub enum IdxData {
    /// `u8` values.
    U8(Vec<u8>),
    /// `i8` values.
    I8(Vec<i8>),
    /// `i16` values.
    I16(Vec<i16>),
    /// `i32` values.
    I32(Vec<i32>),
    /// `f32` values (all finite).
    F32(Vec<f32>),
    /// `f64` values (all finite).
    F64(Vec<f64>),
}

/// An IDX array: dimensions and row-major values.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    dims: Vec<usize>,
    data: IdxData,
}

fn chunks<const N: usize>(payload: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    payload.chunks_exact(N).map(|c| {
        let mut a = [0u8; N];
        a.copy_from_slice(c);
        a
    })
}

fn check_finite<I: Iterator<Item = f64>>(values: I) -> Result<(), IdxError> {
    for (index, value) in values.enumerate() {
        if !value.is_finite() {
            return Err(IdxError::NonFinite { index, value });
        }
    }
    Ok(())
}

impl IdxArray {
    /// Parses an uncompressed IDX file held in memory.
    pub fn parse(bytes: &[u8]) -> Result<Self, IdxError> {
        let Header {
            dtype,
            dims: raw_dims,
            len: header,
            expected,
        } = Header::parse(bytes)?;
        let dims: Vec<usize> = raw_dims.iter().map(|&d| d as usize).collect();
        let payload = &bytes[header..];
        if payload.len() < expected {
            return Err(IdxError::Truncated {
                dims,
                dtype: dtype.name(),
                expected,
                got: payload.len(),
            });
        }
        if payload.len() > expected {
            return Err(IdxError::TrailingData {
                expected,
                extra: payload.len() - expected,
            });
        }
        let data = match dtype {
            IdxType::U8 => IdxData::U8(payload.to_vec()),
            IdxType::I8 => IdxData::I8(payload.iter().map(|&b| b as i8).collect()),
            IdxType::I16 => IdxData::I16(chunks::<2>(payload).map(i16::from_be_bytes).collect()),
            IdxType::I32 => IdxData::I32(chunks::<4>(payload).map(i32::from_be_bytes).collect()),
            IdxType::F32 => {
                let v: Vec<f32> = chunks::<4>(payload).map(f32::from_be_bytes).collect();
                check_finite(v.iter().map(|&x| f64::from(x)))?;
                IdxData::F32(v)
            }
            IdxType::F64 => {
                let v: Vec<f64> = chunks::<8>(payload).map(f64::from_be_bytes).collect();
                check_finite(v.iter().copied())?;
                IdxData::F64(v)
            }
        };
        Ok(IdxArray { dims, data })
    }

    /// Parses an IDX file that may be gzip-compressed (recognised by the gzip magic bytes
    /// `1F 8B`, whatever the file name).
    pub fn parse_maybe_gz(bytes: &[u8]) -> Result<Self, IdxError> {
        if bytes.starts_with(&[0x1F, 0x8B]) {
            let mut gz = flate2::read::GzDecoder::new(bytes);
            // The header first, then at most the payload it declares plus one byte.
            let mut raw = Vec::new();
            fill_to(&mut gz, &mut raw, 4)?;
            if raw.len() == 4 && raw[..2] == [0, 0] {
                let header = 4 + 4 * usize::from(raw[3]);
                fill_to(&mut gz, &mut raw, header)?;
            }
            let h = Header::parse(&raw)?;
            // Grow with the data actually inflated, not with what the header claims.
            fill_to(&mut gz, &mut raw, h.len + h.expected + 1)?;
            if raw.len() > h.len + h.expected {
                return Err(IdxError::Inflates {
                    expected: h.expected,
                });
            }
            Self::parse(&raw)
        } else {
            Self::parse(bytes)
        }
    }

    /// Reads and parses a file, raw or gzip-compressed.
    pub fn read(path: &Path) -> Result<Self, HostError> {
        let bytes = std::fs::read(path).map_err(|source| HostError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse_maybe_gz(&bytes).map_err(|source| HostError::Idx {
            path: path.display().to_string(),
            source,
        })
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// The values.
    pub fn data(&self) -> &IdxData {
        &self.data
    }

    /// The element type.
    pub fn dtype(&self) -> IdxType {
        match self.data {
            IdxData::U8(_) => IdxType::U8,
            IdxData::I8(_) => IdxType::I8,
            IdxData::I16(_) => IdxType::I16,
            IdxData::I32(_) => IdxType::I32,
            IdxData::F32(_) => IdxType::F32,
            IdxData::F64(_) => IdxType::F64,
        }
    }

    /// Number of values (the product of the dimensions).
    pub fn len(&self) -> usize {
        match &self.data {
            IdxData::U8(v) => v.len(),
            IdxData::I8(v) => v.len(),
            IdxData::I16(v) => v.len(),
            IdxData::I32(v) => v.len(),
            IdxData::F32(v) => v.len(),
            IdxData::F64(v) => v.len(),
        }
    }

    /// Whether the array holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `u8` values, if that is the element type.
    pub fn as_u8(&self) -> Option<&[u8]> {
        match &self.data {
            IdxData::U8(v) => Some(v),
            _ => None,
        }
    }

    /// Every value converted to `f64` (exact for all six types).
    pub fn to_f64(&self) -> Vec<f64> {
        match &self.data {
            IdxData::U8(v) => v.iter().map(|&x| f64::from(x)).collect(),
            IdxData::I8(v) => v.iter().map(|&x| f64::from(x)).collect(),
            IdxData::I16(v) => v.iter().map(|&x| f64::from(x)).collect(),
            IdxData::I32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            IdxData::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            IdxData::F64(v) => v.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(code: u8, dims: &[u32], payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, code, dims.len() as u8];
        for d in dims {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn reads_u8_images() {
        let a = IdxArray::parse(&file(
            0x08,
            &[2, 2, 3],
            &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255],
        ))
        .unwrap();
        assert_eq!(a.dims(), &[2, 2, 3]);
        assert_eq!(a.dtype(), IdxType::U8);
        assert_eq!(a.as_u8().unwrap()[11], 255);
        assert_eq!(a.len(), 12);
    }

    #[test]
    fn reads_every_dtype_big_endian() {
        let a = IdxArray::parse(&file(0x09, &[2], &[0xFF, 0x7F])).unwrap();
        assert_eq!(a.data(), &IdxData::I8(vec![-1, 127]));
        let a = IdxArray::parse(&file(0x0B, &[2], &[0x01, 0x02, 0xFF, 0xFE])).unwrap();
        assert_eq!(a.data(), &IdxData::I16(vec![0x0102, -2]));
        let a = IdxArray::parse(&file(0x0C, &[1], &(-70000i32).to_be_bytes())).unwrap();
        assert_eq!(a.data(), &IdxData::I32(vec![-70000]));
        let mut p = 1.5f32.to_be_bytes().to_vec();
        p.extend_from_slice(&(-0.25f32).to_be_bytes());
        let a = IdxArray::parse(&file(0x0D, &[1, 2], &p)).unwrap();
        assert_eq!(a.data(), &IdxData::F32(vec![1.5, -0.25]));
        assert_eq!(a.to_f64(), vec![1.5, -0.25]);
        let a = IdxArray::parse(&file(0x0E, &[1], &1e300f64.to_be_bytes())).unwrap();
        assert_eq!(a.data(), &IdxData::F64(vec![1e300]));
    }

    fn gzip(raw: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(raw).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn a_gzip_bomb_is_read_no_further_than_its_header_declares() {
        // 10 images of 8x8 declared (640 bytes), 32 MiB of zeros behind them.
        let mut raw = file(0x08, &[10, 8, 8], &[]);
        raw.resize(raw.len() + (32 << 20), 0);
        let mut gz = gzip(&raw);
        assert!(gz.len() < 200_000, "{} bytes compressed", gz.len());
        assert_eq!(
            IdxArray::parse_maybe_gz(&gz).unwrap_err(),
            IdxError::Inflates { expected: 640 }
        );
        // Spoil the trailer (CRC-32 and size): a reader that inflated everything would fail on
        // it; this one stops long before it gets there.
        let n = gz.len();
        for b in &mut gz[n - 8..] {
            *b ^= 0xFF;
        }
        assert_eq!(
            IdxArray::parse_maybe_gz(&gz).unwrap_err(),
            IdxError::Inflates { expected: 640 }
        );
        // Exactly as long as declared: read; shorter: truncated.
        let ok = file(0x08, &[10, 8, 8], &[3; 640]);
        assert_eq!(IdxArray::parse_maybe_gz(&gzip(&ok)).unwrap().len(), 640);
        let short = &ok[..ok.len() - 1];
        assert!(matches!(
            IdxArray::parse_maybe_gz(&gzip(short)).unwrap_err(),
            IdxError::Truncated {
                expected: 640,
                got: 639,
                ..
            }
        ));
    }

    #[test]
    fn a_header_declaring_more_than_the_cap_is_refused_before_allocating() {
        // 2^31 bytes of u8 declared, a few bytes present: raw and compressed alike.
        let raw = file(0x08, &[1 << 16, 1 << 15], &[1, 2, 3]);
        let over = IdxError::OverCap {
            dims: vec![1 << 16, 1 << 15],
            bytes: 1 << 31,
            cap: MAX_DATA_BYTES,
        };
        assert_eq!(IdxArray::parse(&raw).unwrap_err(), over);
        assert_eq!(IdxArray::parse_maybe_gz(&gzip(&raw)).unwrap_err(), over);
        // A gzip stream cut inside the header is a truncated header.
        let gz = gzip(&file(0x08, &[2, 2], &[1, 2, 3, 4])[..6]);
        assert!(matches!(
            IdxArray::parse_maybe_gz(&gz).unwrap_err(),
            IdxError::TruncatedHeader { nd: 2, .. }
        ));
    }

    #[test]
    fn reads_gzip() {
        use std::io::Write;
        let raw = file(0x08, &[3], &[7, 8, 9]);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&raw).unwrap();
        let gz = enc.finish().unwrap();
        let a = IdxArray::parse_maybe_gz(&gz).unwrap();
        assert_eq!(a.as_u8().unwrap(), &[7, 8, 9]);
        // A gzip stream cut short is an error, not a panic.
        let err = IdxArray::parse_maybe_gz(&gz[..gz.len() / 2]).unwrap_err();
        assert!(matches!(err, IdxError::Gzip(_)), "{err:?}");
    }

    #[test]
    fn rejects_wrong_magic() {
        let mut b = file(0x08, &[1], &[1]);
        b[0] = 0x50; // "PK": a zip file, say
        assert_eq!(
            IdxArray::parse(&b).unwrap_err(),
            IdxError::BadMagic { magic: 0x5000_0801 }
        );
        assert_eq!(
            IdxArray::parse(&file(0x0A, &[1], &[1])).unwrap_err(),
            IdxError::UnknownType { code: 0x0A }
        );
        assert_eq!(
            IdxArray::parse(&[0, 0, 8]).unwrap_err(),
            IdxError::TooShort { len: 3 }
        );
    }

    #[test]
    fn rejects_truncated_header_and_data() {
        let b = file(0x08, &[2, 2], &[1, 2, 3, 4]);
        assert!(matches!(
            IdxArray::parse(&b[..9]).unwrap_err(),
            IdxError::TruncatedHeader {
                nd: 2,
                needed: 12,
                len: 9
            }
        ));
        assert!(matches!(
            IdxArray::parse(&b[..15]).unwrap_err(),
            IdxError::Truncated {
                expected: 4,
                got: 3,
                ..
            }
        ));
        // The header claims far more than is present.
        let b = file(0x0D, &[60000, 784], &[0; 16]);
        assert!(matches!(
            IdxArray::parse(&b).unwrap_err(),
            IdxError::Truncated {
                expected: 188_160_000,
                got: 16,
                ..
            }
        ));
        let b = file(0x08, &[2], &[1, 2, 3]);
        assert_eq!(
            IdxArray::parse(&b).unwrap_err(),
            IdxError::TrailingData {
                expected: 2,
                extra: 1
            }
        );
    }

    #[test]
    fn rejects_dimension_overflow() {
        let dims = [u32::MAX; 4];
        let err = IdxArray::parse(&file(0x0E, &dims, &[])).unwrap_err();
        assert_eq!(
            err,
            IdxError::TooLarge {
                dims: dims.to_vec()
            }
        );
    }

    #[test]
    fn rejects_non_finite_floats() {
        let mut p = 1.0f32.to_be_bytes().to_vec();
        p.extend_from_slice(&f32::NAN.to_be_bytes());
        let err = IdxArray::parse(&file(0x0D, &[2], &p)).unwrap_err();
        assert!(
            matches!(err, IdxError::NonFinite { index: 1, .. }),
            "{err:?}"
        );
        let err = IdxArray::parse(&file(0x0E, &[1], &f64::INFINITY.to_be_bytes())).unwrap_err();
        assert!(
            matches!(err, IdxError::NonFinite { index: 0, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn never_panics_on_prefixes_of_a_valid_file() {
        let b = file(0x0B, &[3, 2], &[0; 12]);
        for n in 0..b.len() {
            assert!(IdxArray::parse(&b[..n]).is_err());
            assert!(IdxArray::parse_maybe_gz(&b[..n]).is_err());
        }
        assert!(IdxArray::parse(&b).is_ok());
    }
}
