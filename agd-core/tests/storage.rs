//! A/B checkpoint storage: power cuts at every byte operation of a commit (invalidate, erase,
//! write, mark) never lose the last good checkpoint, and restore never yields anything else.

use agd_core::checkpoint::{ElemType, Progress, checkpoint_len, encode};
use agd_core::storage::{
    AbStore, Flash, NorFlashAdapter, RECORD_OVERHEAD, RamFlash, Record, SliceFlash, slot_bytes,
};
use agd_core::{Error, Network, SplitMix64};
use embedded_storage::nor_flash::{
    ErrorType, MultiwriteNorFlash, NorFlash, NorFlashErrorKind, ReadNorFlash,
};

const WIDTHS: [usize; 3] = [3, 4, 2];
const PAGE: usize = 128;
const CKPT: usize = checkpoint_len(&WIDTHS, ElemType::F32);
/// 64 + 128 bytes -> two pages per slot, so erases span pages.
const SLOT: usize = slot_bytes(CKPT, PAGE);
/// The store starts one page in, so that offsets are not all zero-based.
const BASE: usize = PAGE;
const N: usize = 6 * PAGE;

type Store = AbStore<RamFlash<N>>;

/// A distinct valid checkpoint per `id`.
fn checkpoint(id: u64) -> Vec<u8> {
    let p: usize = agd_core::param_count(&WIDTHS);
    let w: Vec<f32> = (0..p)
        .map(|i| ((i as f32 + 1.0) * (id as f32 + 0.25)).sin())
        .collect();
    let mut out = vec![0u8; CKPT];
    encode(&WIDTHS, &w, Progress { step: id, rng: !id }, &mut out).unwrap();
    out
}

fn store(write_size: usize) -> Store {
    store_mode(write_size, false)
}

/// `single_write`: flash with ECC per write unit, where a unit is written once per erase.
fn store_mode(write_size: usize, single_write: bool) -> Store {
    let mut flash = RamFlash::<N>::with_write_size(PAGE, write_size).unwrap();
    if single_write {
        flash.set_single_write();
    }
    AbStore::new(flash, BASE, SLOT).unwrap()
}

fn restored(s: &mut Store) -> Result<Vec<u8>, Error> {
    let mut buf = vec![0u8; CKPT + 16];
    let rec = s.restore(&mut buf)?;
    buf.truncate(rec.len);
    Ok(buf)
}

/// Byte operations of committing `new` after `prior`.
fn commit_ops(write_size: usize, single: bool, prior: &[Vec<u8>], new: &[u8]) -> usize {
    let mut s = store_mode(write_size, single);
    for c in prior {
        s.commit(c).unwrap();
    }
    let before = s.flash().ops();
    s.commit(new).unwrap();
    s.flash().ops() - before
}

/// Cuts the power at every byte operation of a commit, for several bit-noise seeds, and
/// checks what restore gives. Returns how often the old and the new checkpoint came back.
fn sweep(write_size: usize, single: bool, prior: &[Vec<u8>], new: &[u8]) -> (usize, usize) {
    let total = commit_ops(write_size, single, prior, new);
    // Invalidate (mark) + the slot's erase + header + checkpoint + mark, at least.
    assert!(total >= SLOT + 32 + CKPT);
    let (mut olds, mut news) = (0, 0);
    for seed in 0..3u64 {
        for cut in 0..=total {
            let mut s = store_mode(write_size, single);
            for c in prior {
                s.commit(c).unwrap();
            }
            s.flash().set_noise_seed(seed * 1_000_003 + cut as u64);
            s.flash().cut_power_after(cut);
            let r = s.commit(new);
            assert_eq!(r.is_ok(), cut == total, "cut {cut} of {total}");
            if let Err(e) = r {
                assert_eq!(e, Error::FlashDevice);
            }
            s.flash().power_on();
            match (restored(&mut s), prior.last()) {
                (Ok(got), _) if got == new => news += 1,
                (Ok(got), Some(old)) if &got == old => {
                    assert!(cut < total);
                    olds += 1
                }
                (Err(Error::NoCheckpoint), None) => {
                    assert!(cut < total);
                    olds += 1
                }
                (other, _) => panic!("cut {cut} (seed {seed}): restore gave {other:?}"),
            }
            // The store keeps working after the cut.
            let next = checkpoint(99);
            s.commit(&next).unwrap();
            assert_eq!(restored(&mut s).unwrap(), next);
        }
    }
    (olds, news)
}

#[test]
fn power_cut_at_every_byte_keeps_old_or_new() {
    let (a, b, c) = (checkpoint(1), checkpoint(2), checkpoint(3));
    for (ws, single) in [
        (1, false),
        (4, false),
        (8, false),
        (32, false),
        (8, true),
        (32, true),
    ] {
        // Both slots full: the commit overwrites the older one.
        let (olds, news) = sweep(ws, single, &[a.clone(), b.clone()], &c);
        // The new one is only back once the 4 mark bytes are all written: when the power
        // holds to the end, or goes while the 0xFF padding of a wider write unit is written.
        assert_eq!(news, 3 * (ws.max(4) - 3), "write size {ws}");
        assert!(olds > 3 * SLOT, "write size {ws}");
        // One slot full, the other erased.
        sweep(ws, single, std::slice::from_ref(&a), &b);
        // Blank flash: the first commit ever.
        sweep(ws, single, &[], &a);
    }
}

#[test]
fn two_cuts_in_a_row_still_keep_the_last_good_one() {
    let (a, b, c, d) = (checkpoint(1), checkpoint(2), checkpoint(3), checkpoint(4));
    let total = commit_ops(1, false, &[a.clone(), b.clone()], &c);
    for first in (0..total).step_by(7) {
        for second in (0..total).step_by(13) {
            let mut s = store(1);
            s.commit(&a).unwrap();
            s.commit(&b).unwrap();
            s.flash().cut_power_after(first);
            assert!(s.commit(&c).is_err());
            s.flash().power_on();
            s.flash().cut_power_after(second);
            let r = s.commit(&d);
            s.flash().power_on();
            let got = restored(&mut s).unwrap();
            if r.is_ok() {
                assert_eq!(got, d);
            } else {
                assert!(got == b || got == d, "cuts {first}, {second}");
            }
        }
    }
}

#[test]
fn sequence_numbers_alternate_slots_and_restore_newest() {
    let mut s = store(8);
    assert_eq!(restored(&mut s), Err(Error::NoCheckpoint));
    assert_eq!(s.newest(), Ok(None));
    for id in 1..=5u64 {
        let c = checkpoint(id);
        let rec = s.commit(&c).unwrap();
        assert_eq!(
            rec,
            Record {
                seq: id as u32,
                len: CKPT
            }
        );
        assert_eq!(s.newest(), Ok(Some(rec)));
        assert_eq!(restored(&mut s).unwrap(), c);
    }
}

#[test]
fn a_corrupted_newest_slot_falls_back_to_the_older() {
    let (a, b) = (checkpoint(1), checkpoint(2));
    let mut s = store(1);
    s.commit(&a).unwrap();
    s.commit(&b).unwrap(); // seq 2, in slot 1
    // Clear one bit of slot 1's checkpoint (a write may clear bits: a disturbed cell).
    let at = BASE + SLOT + RECORD_OVERHEAD + 50;
    let old = s.flash().contents()[at];
    let bit = (0..8).find(|b| old & (1 << b) != 0).unwrap();
    s.flash().write(at, &[old & !(1 << bit)]).unwrap();
    assert_eq!(restored(&mut s).unwrap(), a);
    // The next commit goes to the corrupt slot, and is then the newest.
    let c = checkpoint(3);
    assert_eq!(s.commit(&c).unwrap().seq, 2);
    assert_eq!(restored(&mut s).unwrap(), c);
}

#[test]
fn restore_into_a_network() {
    agd_core::dense_network!(Tiny: f32 = [3, 4, 2], batch 1);
    let mut net = Tiny::new();
    net.view().init_orthogonal(&mut SplitMix64::new(5));
    let mut buf = [0u8; CKPT];
    let p = Progress { step: 9, rng: 10 };
    net.view().save_checkpoint(p, &mut buf).unwrap();
    let mut s = store(4);
    s.commit(&buf).unwrap();

    let mut other = Tiny::new();
    let mut back = [0u8; CKPT];
    let rec = s.restore(&mut back).unwrap();
    assert_eq!(other.view().load_checkpoint(&back[..rec.len]), Ok(p));
    let bits =
        |n: &mut Tiny| -> Vec<u32> { n.view().weights().iter().map(|x| x.to_bits()).collect() };
    assert_eq!(bits(&mut net), bits(&mut other));
}

#[test]
fn geometry_and_size_errors() {
    let flash = || RamFlash::<N>::new(PAGE).unwrap();
    assert_eq!(
        AbStore::new(flash(), 1, SLOT).err(),
        Some(Error::FlashAlignment { offset: 1 })
    );
    assert_eq!(
        AbStore::new(flash(), 0, SLOT + 1).err(),
        Some(Error::FlashAlignment { offset: 0 })
    );
    assert_eq!(
        AbStore::new(flash(), 4 * PAGE, SLOT).err(),
        Some(Error::FlashBounds {
            offset: 4 * PAGE,
            len: 2 * SLOT
        })
    );
    assert!(RamFlash::<N>::new(100).is_err());
    assert!(RamFlash::<N>::with_write_size(PAGE, 3).is_err());
    assert!(RamFlash::<N>::with_write_size(PAGE, 64).is_err());

    let mut s = store(1);
    let big = vec![0u8; SLOT - RECORD_OVERHEAD + 1];
    assert_eq!(
        s.commit(&big),
        Err(Error::BufferSize {
            buffer: "flash slot",
            expected: big.len() + RECORD_OVERHEAD,
            got: SLOT
        })
    );
    s.commit(&checkpoint(1)).unwrap();
    let mut small = [0u8; 10];
    assert_eq!(
        s.restore(&mut small),
        Err(Error::BufferSize {
            buffer: "checkpoint",
            expected: CKPT,
            got: 10
        })
    );
}

#[test]
fn ram_flash_keeps_nor_rules() {
    let mut f = RamFlash::<N>::with_write_size(PAGE, 4).unwrap();
    f.write(8, &[0xF0, 0x0F, 0xFF, 0x00]).unwrap();
    // Clearing more bits is allowed, setting one is not.
    f.write(8, &[0x30, 0x0F, 0xFF, 0x00]).unwrap();
    assert_eq!(
        f.write(8, &[0x70, 0x0F, 0xFF, 0x00]),
        Err(Error::FlashNotErased { offset: 8 })
    );
    assert_eq!(&f.contents()[8..12], &[0x30, 0x0F, 0xFF, 0x00]);
    assert_eq!(
        f.write(2, &[0; 4]),
        Err(Error::FlashAlignment { offset: 2 })
    );
    assert_eq!(
        f.write(0, &[0; 3]),
        Err(Error::FlashAlignment { offset: 0 })
    );
    assert_eq!(
        f.write(N - 4, &[0; 8]),
        Err(Error::FlashBounds {
            offset: N - 4,
            len: 8
        })
    );
    assert_eq!(f.erase_page(3), Err(Error::FlashAlignment { offset: 3 }));
    assert_eq!(
        f.erase_page(N),
        Err(Error::FlashBounds {
            offset: N,
            len: PAGE
        })
    );
    f.erase_page(0).unwrap();
    assert!(f.contents()[..PAGE].iter().all(|&b| b == 0xFF));
    let mut buf = [0u8; 4];
    assert_eq!(
        f.read(usize::MAX, &mut buf),
        Err(Error::FlashBounds {
            offset: usize::MAX,
            len: 4
        })
    );
    // After a cut every operation fails until power returns.
    f.cut_power_after(2);
    assert_eq!(f.write(0, &[0; 4]), Err(Error::FlashDevice));
    assert_eq!(&f.contents()[..2], &[0, 0]);
    assert_eq!(f.read(0, &mut buf), Err(Error::FlashDevice));
    assert_eq!(f.erase_page(0), Err(Error::FlashDevice));
    f.power_on();
    f.read(0, &mut buf).unwrap();
}

/// Writes a record by hand, as an older build or another device might have left it.
fn write_record(s: &mut Store, slot: usize, seq: u32, payload: &[u8]) {
    use crc::{CRC_32_ISO_HDLC, Crc};
    let at = BASE + slot * SLOT;
    let mut head = [0xFFu8; 32];
    head[0..4].copy_from_slice(&seq.to_le_bytes());
    head[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    let crc = Crc::<u32>::new(&CRC_32_ISO_HDLC);
    let mut d = crc.digest();
    d.update(&head[..8]);
    d.update(payload);
    head[8..12].copy_from_slice(&d.finalize().to_le_bytes());
    let f = s.flash();
    for p in (at..at + SLOT).step_by(PAGE) {
        f.erase_page(p).unwrap();
    }
    f.write(at + 32, &head).unwrap();
    f.write(at + RECORD_OVERHEAD, payload).unwrap();
    f.write(at, b"AGD!").unwrap();
}

#[test]
fn sequence_numbers_wrap_around() {
    let (a, b, c) = (checkpoint(1), checkpoint(2), checkpoint(3));
    let mut s = store(1);
    write_record(&mut s, 0, u32::MAX, &a);
    write_record(&mut s, 1, 0, &b);
    // 0 comes after u32::MAX.
    assert_eq!(restored(&mut s).unwrap(), b);
    let rec = s.commit(&c).unwrap();
    assert_eq!(rec.seq, 1);
    assert_eq!(restored(&mut s).unwrap(), c);
    // The hand-written format is the documented one: a record with a wrong CRC is ignored.
    let mut s = store(1);
    write_record(&mut s, 0, 5, &a);
    let f = s.flash();
    f.write(BASE + 32 + 8, &[0x00]).unwrap();
    assert_eq!(restored(&mut s), Err(Error::NoCheckpoint));
}

#[test]
fn single_write_flash_refuses_a_second_write_to_a_unit() {
    let mut f = RamFlash::<N>::with_write_size(PAGE, 8).unwrap();
    f.set_single_write();
    assert!(!f.multiwrite());
    f.write(0, &[0xF0; 8]).unwrap();
    assert_eq!(
        f.write(0, &[0; 8]),
        Err(Error::FlashNotErased { offset: 0 })
    );
    f.erase_page(0).unwrap();
    f.write(0, &[0; 8]).unwrap();
}

/// A HAL-style driver: embedded-storage's traits over a RamFlash, with a read size of 4.
struct Driver(RamFlash<N>);

fn kind(e: Error) -> NorFlashErrorKind {
    match e {
        Error::FlashAlignment { .. } => NorFlashErrorKind::NotAligned,
        Error::FlashBounds { .. } => NorFlashErrorKind::OutOfBounds,
        _ => NorFlashErrorKind::Other,
    }
}

impl ErrorType for Driver {
    type Error = NorFlashErrorKind;
}

impl ReadNorFlash for Driver {
    const READ_SIZE: usize = 4;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        if !offset.is_multiple_of(4) || !bytes.len().is_multiple_of(4) {
            return Err(NorFlashErrorKind::NotAligned);
        }
        self.0.read(offset as usize, bytes).map_err(kind)
    }
    fn capacity(&self) -> usize {
        N
    }
}

impl NorFlash for Driver {
    const WRITE_SIZE: usize = 8;
    const ERASE_SIZE: usize = PAGE;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        for p in (from..to).step_by(PAGE) {
            self.0.erase_page(p as usize).map_err(kind)?;
        }
        Ok(())
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        self.0.write(offset as usize, bytes).map_err(kind)
    }
}

impl MultiwriteNorFlash for Driver {}

#[test]
fn an_embedded_storage_driver_works_through_the_adapter() {
    let (a, b) = (checkpoint(1), checkpoint(2));
    for multi in [false, true] {
        let mut raw = RamFlash::<N>::with_write_size(PAGE, 8).unwrap();
        if !multi {
            raw.set_single_write();
        }
        let adapter = if multi {
            NorFlashAdapter::multiwrite(Driver(raw))
        } else {
            NorFlashAdapter::new(Driver(raw))
        };
        assert_eq!(adapter.multiwrite(), multi);
        let mut s = AbStore::new(adapter, BASE, SLOT).unwrap();
        s.commit(&a).unwrap();
        s.commit(&b).unwrap();
        let mut buf = vec![0u8; CKPT];
        let rec = s.restore(&mut buf).unwrap();
        assert_eq!((rec.seq, &buf[..]), (2, &b[..]));
        // Unaligned reads go through the bounce buffer.
        let mut odd = [0u8; 7];
        s.flash()
            .read(BASE + SLOT + RECORD_OVERHEAD + 3, &mut odd)
            .unwrap();
        assert_eq!(&odd[..], &b[3..10]);
        // Driver errors map to typed errors.
        assert_eq!(
            s.flash().write(N, &[0; 8]),
            Err(Error::FlashBounds { offset: N, len: 8 })
        );
        assert_eq!(
            s.flash().write(4, &[0; 8]),
            Err(Error::FlashAlignment { offset: 4 })
        );
        assert_eq!(
            s.flash().erase_page(N),
            Err(Error::FlashBounds {
                offset: N,
                len: PAGE
            })
        );
    }
}

#[test]
fn slice_flash_keeps_nor_rules_like_ram_flash() {
    let mut mem = [0xFFu8; N];
    let mut f = SliceFlash::new(&mut mem, PAGE, 4).unwrap();
    assert_eq!((f.capacity(), f.page_size(), f.write_size()), (N, PAGE, 4));
    f.write(8, &[0xF0, 0x0F, 0xFF, 0x00]).unwrap();
    f.write(8, &[0x30, 0x0F, 0xFF, 0x00]).unwrap();
    assert_eq!(
        f.write(8, &[0x70, 0x0F, 0xFF, 0x00]),
        Err(Error::FlashNotErased { offset: 8 })
    );
    assert_eq!(&f.contents()[8..12], &[0x30, 0x0F, 0xFF, 0x00]);
    assert_eq!(
        f.write(2, &[0; 4]),
        Err(Error::FlashAlignment { offset: 2 })
    );
    assert_eq!(
        f.write(0, &[0; 3]),
        Err(Error::FlashAlignment { offset: 0 })
    );
    assert_eq!(
        f.write(N - 4, &[0; 8]),
        Err(Error::FlashBounds {
            offset: N - 4,
            len: 8
        })
    );
    assert_eq!(f.erase_page(3), Err(Error::FlashAlignment { offset: 3 }));
    assert_eq!(
        f.erase_page(N),
        Err(Error::FlashBounds {
            offset: N,
            len: PAGE
        })
    );
    f.erase_page(0).unwrap();
    assert!(f.contents()[..PAGE].iter().all(|&b| b == 0xFF));
    assert!(SliceFlash::new(&mut [0u8; 100], PAGE, 1).is_err());
    assert!(SliceFlash::new(&mut [0u8; N], PAGE, 3).is_err());
    assert!(SliceFlash::new(&mut [0u8; N], PAGE, 64).is_err());
    assert!(SliceFlash::new(&mut [], 0, 1).is_err());
}

#[test]
fn slice_flash_stores_exactly_what_ram_flash_stores() {
    // The same commits, byte for byte the same flash contents.
    let mut ram = store(8);
    let mut mem = [0xFFu8; N];
    let mut sl = AbStore::new(SliceFlash::new(&mut mem, PAGE, 8).unwrap(), BASE, SLOT).unwrap();
    for id in 1..=3 {
        let c = checkpoint(id);
        assert_eq!(ram.commit(&c).unwrap(), sl.commit(&c).unwrap());
        assert_eq!(&ram.flash().contents()[..], sl.flash().contents());
    }
}

#[test]
fn slice_flash_keeps_its_contents_across_a_reopen_and_falls_back_on_corruption() {
    let (a, b) = (checkpoint(1), checkpoint(2));
    // Power-on RAM: all zeros, no valid record (not an error).
    let mut mem = [0u8; N];
    {
        let mut s = AbStore::new(SliceFlash::new(&mut mem, PAGE, 4).unwrap(), BASE, SLOT).unwrap();
        assert_eq!(s.newest(), Ok(None));
        s.commit(&a).unwrap();
        s.commit(&b).unwrap();
    }
    // "After a reset": a new store over the same bytes finds the newest record.
    let mut s = AbStore::new(SliceFlash::new(&mut mem, PAGE, 4).unwrap(), BASE, SLOT).unwrap();
    let mut buf = vec![0u8; CKPT];
    let rec = s.restore(&mut buf).unwrap();
    assert_eq!((rec.seq, &buf[..rec.len]), (2, &b[..]));
    // Flip a bit of the newest record's checkpoint: the older one comes back.
    s.flash().contents_mut()[BASE + SLOT + RECORD_OVERHEAD + 7] ^= 0x10;
    let rec = s.restore(&mut buf).unwrap();
    assert_eq!((rec.seq, &buf[..rec.len]), (1, &a[..]));
}
