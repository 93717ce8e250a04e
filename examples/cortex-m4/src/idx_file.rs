//! IDX files (the format MNIST ships in): header parsing, for bytes in flash or for a file
//! read from the host through semihosting, a record at a time.
//!
//! Header: two zero bytes, a type code (`0x08` = u8), the number of dimensions, then every
//! dimension as a big-endian u32; the data follows, row-major.

use core::ffi::CStr;

use semihosting::fs::File;
use semihosting::io::{Read, Seek, SeekFrom};

/// Why an IDX file was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, defmt::Format)]
pub enum IdxError {
    /// Not a u8 IDX file with the expected number of dimensions.
    BadHeader,
    /// Fewer bytes than the header promises.
    Truncated,
    /// The host could not open the file.
    Open,
    /// The host could not seek or read.
    Read,
    /// The path does not fit the path buffer.
    PathTooLong,
}

/// A parsed u8 IDX header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdxHeader {
    /// Number of records (the first dimension).
    pub count: usize,
    /// Bytes per record (product of the other dimensions).
    pub record: usize,
    /// Bytes of header before the data.
    pub offset: usize,
}

impl IdxHeader {
    /// Parses a u8 header of `dims` dimensions (1 for labels, 3 for images) from the first
    /// bytes of a file.
    pub fn parse(bytes: &[u8], dims: usize) -> Result<Self, IdxError> {
        let offset = 4 + 4 * dims;
        if bytes.len() < offset {
            return Err(IdxError::Truncated);
        }
        if bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 || bytes[3] as usize != dims {
            return Err(IdxError::BadHeader);
        }
        let dim = |k: usize| {
            let b = &bytes[4 + 4 * k..8 + 4 * k];
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
        };
        let record = (1..dims).map(dim).product();
        Ok(IdxHeader {
            count: dim(0),
            record,
            offset,
        })
    }

    /// The data of an IDX file held in memory, checked against the header.
    pub fn data<'a>(&self, bytes: &'a [u8]) -> Result<&'a [u8], IdxError> {
        bytes
            .get(self.offset..self.offset + self.count * self.record)
            .ok_or(IdxError::Truncated)
    }
}

/// An IDX file on the host, read through semihosting.
pub struct IdxFile {
    file: File,
    /// Its header.
    pub header: IdxHeader,
}

impl IdxFile {
    /// Opens `dir/name` on the host and reads its header (`dims` dimensions).
    pub fn open(dir: &str, name: &str, dims: usize) -> Result<Self, IdxError> {
        let mut path = [0u8; 512];
        let len = dir.len() + 1 + name.len();
        if len >= path.len() {
            return Err(IdxError::PathTooLong);
        }
        path[..dir.len()].copy_from_slice(dir.as_bytes());
        path[dir.len()] = b'/';
        path[dir.len() + 1..len].copy_from_slice(name.as_bytes());
        let path = CStr::from_bytes_until_nul(&path).map_err(|_| IdxError::PathTooLong)?;
        let mut file = File::open(path).map_err(|_| IdxError::Open)?;
        let mut head = [0u8; 16];
        file.read_exact(&mut head[..4 + 4 * dims])
            .map_err(|_| IdxError::Read)?;
        let header = IdxHeader::parse(&head, dims)?;
        Ok(IdxFile { file, header })
    }

    /// Reads records `first..first + out.len() / record` into `out`.
    pub fn read(&mut self, first: usize, out: &mut [u8]) -> Result<(), IdxError> {
        let n = out.len() / self.header.record;
        if first + n > self.header.count {
            return Err(IdxError::Truncated);
        }
        let pos = (self.header.offset + first * self.header.record) as u64;
        self.file
            .seek(SeekFrom::Start(pos))
            .map_err(|_| IdxError::Read)?;
        self.file.read_exact(out).map_err(|_| IdxError::Read)
    }
}
