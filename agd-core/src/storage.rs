//! Power-safe checkpoint storage on flash-like memory: a small [`Flash`] trait, and
//! [`AbStore`], two slots written alternately so that a power cut at any moment never loses
//! the last good checkpoint.
//!
//! Implementations of [`Flash`]: [`RamFlash`] (an owned array, with simulated power cuts, for
//! tests), [`SliceFlash`] (borrowed bytes taken as they are, for a memory region a device sets
//! aside as emulated flash) and [`NorFlashAdapter`] (any `embedded-storage` NOR driver).
//!
//! # Flash model (NOR)
//! Erasing a page sets all its bytes to `0xFF`; writing can only clear bits (`1 → 0`), so a
//! byte can be written once between erases. Writes start and end on multiples of
//! [`Flash::write_size`] (1 to 32 bytes: byte-writable parts, 4-byte words of an nRF52,
//! 8-byte double words of an STM32L4, 32-byte flash words of an STM32H7). A power cut
//! during a write or erase leaves the byte being worked on with some of its bits changed.
//!
//! # Slot record
//! ```text
//! slot offset  bytes  field
//! 0            4      commit mark 0x41 0x47 0x44 0x21 ("AGD!"), written last
//! 32           4      sequence number (u32, LE, wrapping)
//! 36           4      checkpoint length
//! 40           4      CRC-32 of bytes 32..40 and of the checkpoint
//! 64           len    the checkpoint (see crate::checkpoint)
//! ```
//! A commit goes to the slot that does not hold the newest valid record: first it clears the
//! commit mark to zeros (the slot is then invalid for sure; skipped on flash that cannot write
//! a unit twice, where a half-erased old record is still refused by its CRC, and would lose to
//! the newer record anyway), erases the slot's pages, writes
//! header and checkpoint, reads them back, and writes the commit mark last. A cut before the
//! mark is complete leaves the slot invalid (an erased, torn or zeroed mark is not the mark:
//! no byte of the mark is `0x00` or `0xFF`), and the other slot, untouched, still holds the
//! previous checkpoint. Restore takes the valid record with the highest sequence number;
//! "valid" means the exact mark, a length that fits and a matching CRC.
//!
//! ```
//! use agd_core::Network;
//! use agd_core::checkpoint::{ElemType, Progress, checkpoint_len};
//! use agd_core::storage::{AbStore, RamFlash, slot_bytes};
//!
//! agd_core::dense_network!(Net: f32 = [4, 8, 3], batch 2);
//! const CKPT: usize = checkpoint_len(Net::WIDTHS, ElemType::F32);
//! const SLOT: usize = slot_bytes(CKPT, 256);
//!
//! let mut net = Net::new();
//! net.view().init_orthogonal(&mut agd_core::SplitMix64::new(1));
//! // A real device passes its flash driver (an impl of `Flash`) instead.
//! let flash = RamFlash::<{ 2 * SLOT }>::new(256).unwrap();
//! let mut store = AbStore::new(flash, 0, SLOT).unwrap();
//! let mut buf = [0u8; CKPT];
//! let n = net.view().save_checkpoint(Progress { step: 10, rng: 3 }, &mut buf).unwrap();
//! store.commit(&buf[..n]).unwrap();
//!
//! // After a reset:
//! let rec = store.restore(&mut buf).unwrap();
//! let progress = net.view().load_checkpoint(&buf[..rec.len]).unwrap();
//! assert_eq!(progress.step, 10);
//! ```

use crate::checkpoint::CRC32;
use crate::error::Error;

/// Flash-like memory (see the module docs for the NOR model an implementation must honour).
/// Offsets are bytes from the start of the device or region.
pub trait Flash {
    /// Bytes of the device or region (a multiple of the page size).
    fn capacity(&self) -> usize;
    /// Erase granularity in bytes.
    fn page_size(&self) -> usize;
    /// Write granularity in bytes: a power of two, at most 32, dividing the page size.
    fn write_size(&self) -> usize {
        1
    }
    /// Whether a written unit may be programmed again before its erase (clearing more bits).
    /// Plain NOR allows it; flash with ECC per word (STM32L4, STM32H7) does not, and then
    /// [`AbStore`] skips the zeroing of the old commit mark and relies on the CRC alone there.
    fn multiwrite(&self) -> bool {
        true
    }
    /// Sets every byte of the page starting at `offset` (a multiple of the page size) to `0xFF`.
    fn erase_page(&mut self, offset: usize) -> Result<(), Error>;
    /// Programs `data` at `offset`: every bit cleared in `data` is cleared in flash; offset and
    /// length are multiples of the write size. May refuse to set a bit
    /// ([`Error::FlashNotErased`]); never sets one.
    fn write(&mut self, offset: usize, data: &[u8]) -> Result<(), Error>;
    /// Reads `buf.len()` bytes from `offset` (any alignment).
    fn read(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), Error>;
}

/// A flash emulated in RAM, with NOR semantics checked strictly (a write that would set a bit,
/// or a misaligned or out-of-range access, is an error) and simulated power cuts: for firmware
/// without a flash driver yet, and for the power-cut tests.
#[derive(Debug, Clone)]
pub struct RamFlash<const N: usize> {
    mem: [u8; N],
    page: usize,
    write_size: usize,
    /// Byte operations (one byte written or erased) done since creation.
    ops: usize,
    /// Byte operations left before the simulated power cut.
    budget: Option<usize>,
    powered: bool,
    multiwrite: bool,
    /// xorshift64 state choosing which bits of the byte being worked on the cut has changed.
    noise: u64,
}

impl<const N: usize> RamFlash<N> {
    /// An erased flash of `N` bytes with this page size, writable byte by byte.
    pub const fn new(page_size: usize) -> Result<Self, Error> {
        Self::with_write_size(page_size, 1)
    }

    /// An erased flash of `N` bytes with this page and write size.
    pub const fn with_write_size(page_size: usize, write_size: usize) -> Result<Self, Error> {
        if !geometry_ok(N, page_size, write_size) {
            return Err(Error::FlashAlignment { offset: page_size });
        }
        Ok(RamFlash {
            mem: [0xFF; N],
            page: page_size,
            write_size,
            ops: 0,
            budget: None,
            powered: true,
            multiwrite: true,
            noise: 0x9E37_79B9_7F4A_7C15,
        })
    }

    /// Cuts the power after `ops` more byte operations: the byte after them is left with a
    /// random subset of its pending bit changes, the operation fails with
    /// [`Error::FlashDevice`], and so does every later one until [`RamFlash::power_on`].
    pub fn cut_power_after(&mut self, ops: usize) {
        self.budget = Some(ops);
    }

    /// Models flash with ECC per write unit: a unit may only be written while all its bytes
    /// are erased ([`Error::FlashNotErased`] otherwise).
    pub fn set_single_write(&mut self) {
        self.multiwrite = false;
    }

    /// Seeds the choice of half-changed bits at a power cut.
    pub fn set_noise_seed(&mut self, seed: u64) {
        self.noise = seed | 1;
    }

    /// Power back on (no cut pending).
    pub fn power_on(&mut self) {
        self.budget = None;
        self.powered = true;
    }

    /// Byte operations (bytes written plus bytes erased) so far.
    pub fn ops(&self) -> usize {
        self.ops
    }

    /// The raw contents.
    pub fn contents(&self) -> &[u8; N] {
        &self.mem
    }

    fn random_bits(&mut self) -> u8 {
        let mut x = self.noise;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.noise = x;
        (x >> 32) as u8
    }

    /// One byte operation towards `target`, or a half-done one if the power goes now.
    fn apply(&mut self, at: usize, target: u8) -> Result<(), Error> {
        if !self.powered {
            return Err(Error::FlashDevice);
        }
        if let Some(left) = self.budget {
            if left == 0 {
                // Some of the bits this operation would change have changed, others not.
                let old = self.mem[at];
                let changing = old ^ target;
                self.mem[at] = old ^ (changing & self.random_bits());
                self.powered = false;
                return Err(Error::FlashDevice);
            }
            self.budget = Some(left - 1);
        }
        self.mem[at] = target;
        self.ops += 1;
        Ok(())
    }
}

impl<const N: usize> Flash for RamFlash<N> {
    fn capacity(&self) -> usize {
        N
    }

    fn page_size(&self) -> usize {
        self.page
    }

    fn write_size(&self) -> usize {
        self.write_size
    }

    fn multiwrite(&self) -> bool {
        self.multiwrite
    }

    fn erase_page(&mut self, offset: usize) -> Result<(), Error> {
        check_erase(N, self.page, offset)?;
        for at in offset..offset + self.page {
            self.apply(at, 0xFF)?;
        }
        Ok(())
    }

    fn write(&mut self, offset: usize, data: &[u8]) -> Result<(), Error> {
        check_write(&self.mem, self.write_size, self.multiwrite, offset, data)?;
        for (i, &d) in data.iter().enumerate() {
            let at = offset + i;
            self.apply(at, self.mem[at] & d)?;
        }
        Ok(())
    }

    fn read(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), Error> {
        if !self.powered {
            return Err(Error::FlashDevice);
        }
        check_range(N, offset, buf.len())?;
        buf.copy_from_slice(&self.mem[offset..offset + buf.len()]);
        Ok(())
    }
}

/// Whether a flash of `len` bytes can have this page and write size: pages tile it, the
/// write size is a power of two up to [`MAX_WRITE`] and divides the page.
const fn geometry_ok(len: usize, page_size: usize, write_size: usize) -> bool {
    page_size != 0
        && len.is_multiple_of(page_size)
        && write_size.is_power_of_two()
        && write_size <= MAX_WRITE
        && page_size.is_multiple_of(write_size)
}

fn check_range(capacity: usize, offset: usize, len: usize) -> Result<(), Error> {
    match offset.checked_add(len) {
        Some(end) if end <= capacity => Ok(()),
        _ => Err(Error::FlashBounds { offset, len }),
    }
}

/// An erase must start on a page and stay inside the flash.
fn check_erase(capacity: usize, page: usize, offset: usize) -> Result<(), Error> {
    if !offset.is_multiple_of(page) {
        return Err(Error::FlashAlignment { offset });
    }
    check_range(capacity, offset, page)
}

/// The NOR rules for programming `data` at `offset` of `mem`, checked before a byte changes:
/// whole write units, inside the flash, no bit set from 0 to 1, and (without `multiwrite`)
/// only erased units.
fn check_write(
    mem: &[u8],
    write_size: usize,
    multiwrite: bool,
    offset: usize,
    data: &[u8],
) -> Result<(), Error> {
    if !offset.is_multiple_of(write_size) || !data.len().is_multiple_of(write_size) {
        return Err(Error::FlashAlignment { offset });
    }
    check_range(mem.len(), offset, data.len())?;
    let old = &mem[offset..offset + data.len()];
    if let Some(i) = (0..data.len()).find(|&i| old[i] & data[i] != data[i]) {
        return Err(Error::FlashNotErased { offset: offset + i });
    }
    if !multiwrite && let Some(i) = old.iter().position(|&b| b != 0xFF) {
        return Err(Error::FlashNotErased { offset: offset + i });
    }
    Ok(())
}

/// NOR flash emulated over borrowed bytes, with the same strict rules as [`RamFlash`] (no
/// power cuts): for a memory region a device sets aside as its "flash" — on QEMU, RAM the
/// firmware image does not load, which keeps its contents across a system reset.
///
/// The bytes are taken as they are, not erased: whatever records a previous run committed
/// there are found again, and anything else (an all-zero RAM at power-on) is simply no valid
/// record.
///
/// ```
/// use agd_core::storage::{AbStore, Flash, SliceFlash};
/// let mut region = [0u8; 4 * 256];
/// let flash = SliceFlash::new(&mut region, 256, 4).unwrap();
/// let mut store = AbStore::new(flash, 0, 2 * 256).unwrap();
/// store.commit(b"checkpoint bytes").unwrap();
/// drop(store);
/// // Later (after a reset), the same bytes again:
/// let mut store = AbStore::new(SliceFlash::new(&mut region, 256, 4).unwrap(), 0, 512).unwrap();
/// let mut out = [0u8; 64];
/// let rec = store.restore(&mut out).unwrap();
/// assert_eq!(&out[..rec.len], b"checkpoint bytes");
/// ```
#[derive(Debug)]
pub struct SliceFlash<'a> {
    mem: &'a mut [u8],
    page: usize,
    write_size: usize,
}

impl<'a> SliceFlash<'a> {
    /// A flash over `mem` (a multiple of `page_size` bytes) with this page and write size
    /// (a power of two up to [`MAX_WRITE`] dividing the page); the contents are kept.
    pub fn new(mem: &'a mut [u8], page_size: usize, write_size: usize) -> Result<Self, Error> {
        if !geometry_ok(mem.len(), page_size, write_size) {
            return Err(Error::FlashAlignment { offset: page_size });
        }
        Ok(SliceFlash {
            mem,
            page: page_size,
            write_size,
        })
    }

    /// The raw contents.
    pub fn contents(&self) -> &[u8] {
        self.mem
    }

    /// The raw contents, writable past the NOR rules: to inject faults (a flipped bit, a
    /// corrupted record) in tests.
    pub fn contents_mut(&mut self) -> &mut [u8] {
        self.mem
    }

    /// Gives the bytes back.
    pub fn into_inner(self) -> &'a mut [u8] {
        self.mem
    }
}

impl Flash for SliceFlash<'_> {
    fn capacity(&self) -> usize {
        self.mem.len()
    }

    fn page_size(&self) -> usize {
        self.page
    }

    fn write_size(&self) -> usize {
        self.write_size
    }

    fn erase_page(&mut self, offset: usize) -> Result<(), Error> {
        check_erase(self.mem.len(), self.page, offset)?;
        self.mem[offset..offset + self.page].fill(0xFF);
        Ok(())
    }

    fn write(&mut self, offset: usize, data: &[u8]) -> Result<(), Error> {
        check_write(self.mem, self.write_size, true, offset, data)?;
        for (m, &d) in self.mem[offset..].iter_mut().zip(data) {
            *m &= d;
        }
        Ok(())
    }

    fn read(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), Error> {
        check_range(self.mem.len(), offset, buf.len())?;
        buf.copy_from_slice(&self.mem[offset..offset + buf.len()]);
        Ok(())
    }
}

/// Largest write size [`AbStore`] supports.
pub const MAX_WRITE: usize = 32;
/// The commit mark: no byte is `0x00` or `0xFF`, so neither an erased, a zeroed, nor a torn
/// mark is ever mistaken for it.
pub const COMMIT_MARK: [u8; 4] = *b"AGD!";
/// Bytes a slot record adds before the checkpoint.
pub const RECORD_OVERHEAD: usize = 64;
const HEADER_AT: usize = 32;

/// Bytes of one slot holding a checkpoint of `checkpoint_len` bytes, rounded up to pages.
/// A store needs two.
pub const fn slot_bytes(checkpoint_len: usize, page_size: usize) -> usize {
    (RECORD_OVERHEAD + checkpoint_len).div_ceil(page_size) * page_size
}

/// A valid record: its sequence number and checkpoint length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Sequence number (the newest record has the highest, in wrapping order).
    pub seq: u32,
    /// Bytes of the checkpoint.
    pub len: usize,
}

/// `a` comes after `b` in wrapping sequence order.
fn newer(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// Two slots of a flash, committed alternately (see the module docs).
#[derive(Debug)]
pub struct AbStore<F> {
    flash: F,
    base: usize,
    slot: usize,
}

impl<F: Flash> AbStore<F> {
    /// A store in `flash` whose two slots of `slot_bytes` (a multiple of the page size; see
    /// [`slot_bytes`]) start at `base` (page-aligned). Nothing is read or written yet.
    pub fn new(flash: F, base: usize, slot_bytes: usize) -> Result<Self, Error> {
        let (page, ws) = (flash.page_size(), flash.write_size());
        if page == 0
            || !ws.is_power_of_two()
            || ws > MAX_WRITE
            || !page.is_multiple_of(ws)
            || !base.is_multiple_of(page)
            || !slot_bytes.is_multiple_of(page)
            || slot_bytes <= RECORD_OVERHEAD
        {
            return Err(Error::FlashAlignment { offset: base });
        }
        match slot_bytes.checked_mul(2).and_then(|s| s.checked_add(base)) {
            Some(end) if end <= flash.capacity() => Ok(AbStore {
                flash,
                base,
                slot: slot_bytes,
            }),
            _ => Err(Error::FlashBounds {
                offset: base,
                len: slot_bytes.saturating_mul(2),
            }),
        }
    }

    /// The flash.
    pub fn flash(&mut self) -> &mut F {
        &mut self.flash
    }

    /// Gives the flash back.
    pub fn into_inner(self) -> F {
        self.flash
    }

    /// Largest checkpoint a slot holds (the record's length field is a `u32`).
    pub fn capacity(&self) -> usize {
        (self.slot - RECORD_OVERHEAD).min(u32::MAX as usize)
    }

    fn slot_at(&self, s: usize) -> usize {
        self.base + s * self.slot
    }

    /// The record in slot `s` if it is valid (exact mark, length that fits, matching CRC).
    fn check_slot(&mut self, s: usize) -> Result<Option<Record>, Error> {
        let at = self.slot_at(s);
        let mut mark = [0u8; 4];
        self.flash.read(at, &mut mark)?;
        if mark != COMMIT_MARK {
            return Ok(None);
        }
        self.check_record(at)
    }

    /// Header and CRC of the record at `at`, mark aside. Reads in small pieces, so it needs
    /// no buffer the size of a checkpoint.
    fn check_record(&mut self, at: usize) -> Result<Option<Record>, Error> {
        let mut head = [0u8; 12];
        self.flash.read(at + HEADER_AT, &mut head)?;
        let seq = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let stored = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
        if len > self.capacity() {
            return Ok(None);
        }
        let mut digest = CRC32.digest();
        digest.update(&head[..8]);
        let mut chunk = [0u8; 64];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(chunk.len());
            self.flash
                .read(at + RECORD_OVERHEAD + done, &mut chunk[..n])?;
            digest.update(&chunk[..n]);
            done += n;
        }
        Ok((digest.finalize() == stored).then_some(Record { seq, len }))
    }

    /// Both slots' valid records.
    fn scan(&mut self) -> Result<[Option<Record>; 2], Error> {
        Ok([self.check_slot(0)?, self.check_slot(1)?])
    }

    /// Slot indices of the valid records, newest first.
    fn by_age(records: &[Option<Record>; 2]) -> [Option<usize>; 2] {
        match (records[0], records[1]) {
            (Some(a), Some(b)) if newer(b.seq, a.seq) => [Some(1), Some(0)],
            (Some(_), Some(_)) => [Some(0), Some(1)],
            (Some(_), None) => [Some(0), None],
            (None, Some(_)) => [Some(1), None],
            (None, None) => [None, None],
        }
    }

    /// The newest valid record, if any.
    pub fn newest(&mut self) -> Result<Option<Record>, Error> {
        let records = self.scan()?;
        Ok(Self::by_age(&records)[0].and_then(|s| records[s]))
    }

    /// Stores `checkpoint` (any bytes up to [`AbStore::capacity`]) in the slot not holding
    /// the newest record, so that the newest record survives a cut at any point. Returns the
    /// new record. After an error the previous newest record is still the newest.
    pub fn commit(&mut self, checkpoint: &[u8]) -> Result<Record, Error> {
        let len = checkpoint.len();
        if len > self.capacity() {
            return Err(Error::BufferSize {
                buffer: "flash slot",
                expected: len + RECORD_OVERHEAD,
                got: self.slot,
            });
        }
        let records = self.scan()?;
        let newest = Self::by_age(&records)[0];
        let (target, seq) = match newest {
            Some(s) => (1 - s, records[s].map_or(1, |r| r.seq.wrapping_add(1))),
            None => (0, 1),
        };
        let at = self.slot_at(target);
        let ws = self.flash.write_size();
        let mark_len = ws.max(COMMIT_MARK.len());

        // 1. Invalidate: zeros over the mark (only clears bits, so allowed without an erase
        //    where the flash lets a unit be written twice).
        if self.flash.multiwrite() {
            self.flash.write(at, &[0u8; MAX_WRITE][..mark_len])?;
        }
        // 2. Erase the slot.
        let page = self.flash.page_size();
        for p in (at..at + self.slot).step_by(page) {
            self.flash.erase_page(p)?;
        }
        // 3. Header and checkpoint; 0xFF padding leaves erased bytes as they are.
        let mut head = [0xFFu8; 32];
        head[0..4].copy_from_slice(&seq.to_le_bytes());
        head[4..8].copy_from_slice(&(len as u32).to_le_bytes());
        let mut digest = CRC32.digest();
        digest.update(&head[..8]);
        digest.update(checkpoint);
        head[8..12].copy_from_slice(&digest.finalize().to_le_bytes());
        self.flash.write(at + HEADER_AT, &head)?;
        let whole = len - len % ws;
        if whole > 0 {
            self.flash
                .write(at + RECORD_OVERHEAD, &checkpoint[..whole])?;
        }
        if whole < len {
            let mut tail = [0xFFu8; MAX_WRITE];
            tail[..len - whole].copy_from_slice(&checkpoint[whole..]);
            self.flash
                .write(at + RECORD_OVERHEAD + whole, &tail[..ws])?;
        }
        // 4. Read back before committing: a slot that does not verify is never marked.
        if self.check_slot_unmarked(target)? != Some(Record { seq, len }) {
            return Err(Error::FlashDevice);
        }
        // 5. The mark makes it valid.
        let mut mark = [0xFFu8; MAX_WRITE];
        mark[..4].copy_from_slice(&COMMIT_MARK);
        self.flash.write(at, &mark[..mark_len])?;
        Ok(Record { seq, len })
    }

    /// [`Self::check_slot`] for a slot whose mark is not written yet.
    fn check_slot_unmarked(&mut self, s: usize) -> Result<Option<Record>, Error> {
        let at = self.slot_at(s);
        let mut mark = [0u8; 4];
        self.flash.read(at, &mut mark)?;
        if mark != [0xFF; 4] {
            return Ok(None);
        }
        self.check_record(at)
    }

    /// Copies the newest valid checkpoint into the start of `out` and returns its record;
    /// [`Error::NoCheckpoint`] if neither slot holds one. If the newest one's copy does not
    /// verify (a read disturbance), the older one is used.
    pub fn restore(&mut self, out: &mut [u8]) -> Result<Record, Error> {
        let records = self.scan()?;
        for s in Self::by_age(&records).into_iter().flatten() {
            let Some(rec) = records[s] else { continue };
            if rec.len > out.len() {
                return Err(Error::BufferSize {
                    buffer: "checkpoint",
                    expected: rec.len,
                    got: out.len(),
                });
            }
            let at = self.slot_at(s);
            let mut head = [0u8; 12];
            self.flash.read(at + HEADER_AT, &mut head)?;
            self.flash.read(at + RECORD_OVERHEAD, &mut out[..rec.len])?;
            let mut digest = CRC32.digest();
            digest.update(&head[..8]);
            digest.update(&out[..rec.len]);
            if digest.finalize().to_le_bytes() == head[8..12] {
                return Ok(rec);
            }
        }
        Err(Error::NoCheckpoint)
    }
}

/// Any [`embedded_storage::nor_flash::NorFlash`] (the flash driver trait HALs implement) as a
/// [`Flash`]: page size = `ERASE_SIZE`, write size = `WRITE_SIZE` (at most 32), reads of any
/// alignment through a small buffer when `READ_SIZE > 1`. Driver errors map to
/// [`Error::FlashAlignment`], [`Error::FlashBounds`] or [`Error::FlashDevice`].
#[derive(Debug)]
pub struct NorFlashAdapter<F> {
    flash: F,
    multiwrite: bool,
}

impl<F: embedded_storage::nor_flash::NorFlash> NorFlashAdapter<F> {
    /// A flash whose write units may be written only once between erases.
    pub fn new(flash: F) -> Self {
        NorFlashAdapter {
            flash,
            multiwrite: false,
        }
    }

    /// A flash that allows writing a unit again to clear more bits.
    pub fn multiwrite(flash: F) -> Self
    where
        F: embedded_storage::nor_flash::MultiwriteNorFlash,
    {
        NorFlashAdapter {
            flash,
            multiwrite: true,
        }
    }

    /// Gives the driver back.
    pub fn into_inner(self) -> F {
        self.flash
    }
}

fn nor_error<E: embedded_storage::nor_flash::NorFlashError>(
    e: E,
    offset: usize,
    len: usize,
) -> Error {
    use embedded_storage::nor_flash::NorFlashErrorKind as K;
    match e.kind() {
        K::NotAligned => Error::FlashAlignment { offset },
        K::OutOfBounds => Error::FlashBounds { offset, len },
        _ => Error::FlashDevice,
    }
}

fn nor_offset(offset: usize, len: usize) -> Result<u32, Error> {
    u32::try_from(offset).map_err(|_| Error::FlashBounds { offset, len })
}

impl<F: embedded_storage::nor_flash::NorFlash> Flash for NorFlashAdapter<F> {
    fn capacity(&self) -> usize {
        self.flash.capacity()
    }

    fn page_size(&self) -> usize {
        F::ERASE_SIZE
    }

    fn write_size(&self) -> usize {
        F::WRITE_SIZE
    }

    fn multiwrite(&self) -> bool {
        self.multiwrite
    }

    fn erase_page(&mut self, offset: usize) -> Result<(), Error> {
        let from = nor_offset(offset, F::ERASE_SIZE)?;
        let to = nor_offset(offset + F::ERASE_SIZE, 0)?;
        self.flash
            .erase(from, to)
            .map_err(|e| nor_error(e, offset, F::ERASE_SIZE))
    }

    fn write(&mut self, offset: usize, data: &[u8]) -> Result<(), Error> {
        let at = nor_offset(offset, data.len())?;
        self.flash
            .write(at, data)
            .map_err(|e| nor_error(e, offset, data.len()))
    }

    fn read(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), Error> {
        let (rs, len) = (F::READ_SIZE, buf.len());
        if rs <= 1 {
            let at = nor_offset(offset, len)?;
            return self
                .flash
                .read(at, buf)
                .map_err(|e| nor_error(e, offset, len));
        }
        if rs > MAX_WRITE || !rs.is_power_of_two() {
            return Err(Error::FlashAlignment { offset });
        }
        // Whole READ_SIZE units through a bounce buffer.
        let mut unit = [0u8; MAX_WRITE];
        let mut done = 0;
        while done < buf.len() {
            let pos = offset + done;
            let start = pos - pos % rs;
            self.flash
                .read(nor_offset(start, rs)?, &mut unit[..rs])
                .map_err(|e| nor_error(e, offset, len))?;
            let skip = pos - start;
            let n = (rs - skip).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&unit[skip..skip + n]);
            done += n;
        }
        Ok(())
    }
}
