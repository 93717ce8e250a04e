//! Memory on transparent huge pages, for the buffers the training loop sweeps every step.
//!
//! A step reads and writes every weight, gradient, activation and error of the network, and
//! every batch gathers random rows of the whole training set. With 4 KiB pages that is a
//! translation per 4 KiB: the `[784,256,256,10]` network's buffers alone span about 800
//! pages, more than the first-level TLB holds, and a miss costs a page walk (a two-level one
//! under virtualisation). On Linux these buffers ask for 2 MiB pages
//! (`madvise(MADV_HUGEPAGE)`, which is all `transparent_hugepage=madvise`, the usual setting,
//! needs). docs/benchmark-history.md has the figures (session 13): the `[784,256,256,10]` b128 step
//! about 6 % faster, `[784,1024³,10]` about 11 %, the MNIST CNN's 10–16 %, MNIST's batch gather
//! more than twice as fast.
//!
//! The advice only changes how pages are backed, never what they hold; where it is not
//! available (another OS, THP disabled) the buffers are ordinary memory.
//!
//! Not a crate: the allocation is one `std::alloc` layout, and the advice has to go between
//! allocating and the first write, which is the whole of this module.

use std::alloc::{self, Layout};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use agd_core::Element;

/// A huge page's size on x86-64 and AArch64 Linux (with 4 KiB base pages).
const HUGE_PAGE: usize = 2 << 20;

/// Buffers at least this large get their own huge pages (rounded up to whole ones, so at
/// most 2 MiB is wasted per buffer); smaller ones stay ordinary allocations.
const MIN_HUGE_BYTES: usize = 64 << 10;

/// A fixed-length buffer of `T` on transparent huge pages (from 64 KiB on): 2 MiB-aligned,
/// its length rounded up to whole huge pages, advised before it is first written. Derefs to
/// `[T]`; smaller buffers are ordinary 64-byte-aligned allocations.
pub struct HugeBuf<T> {
    ptr: NonNull<T>,
    len: usize,
    /// The allocation, or `None` for an empty buffer (a dangling pointer, nothing to free).
    layout: Option<Layout>,
}

// SAFETY: a `HugeBuf` owns its values as a `Vec` does.
unsafe impl<T: Send> Send for HugeBuf<T> {}
// SAFETY: shared access only gives `&[T]`.
unsafe impl<T: Sync> Sync for HugeBuf<T> {}

impl<T: Element> HugeBuf<T> {
    /// `len` zeros, or [`agd_core::Error::TooLarge`] when that much memory cannot be had
    /// (instead of the allocator's abort: `agd train --widths 64,4000000000,10` is a one-line
    /// error).
    pub fn zeros(len: usize) -> Result<Self, agd_core::Error> {
        Self::from_fn(len, |_| T::ZERO)
    }
}

impl<T: Clone> HugeBuf<T> {
    /// A copy of `values` on huge pages; [`agd_core::Error::TooLarge`] when the memory cannot
    /// be had.
    pub fn copy_of(values: &[T]) -> Result<Self, agd_core::Error> {
        Self::from_fn(values.len(), |i| values[i].clone())
    }
}

impl<T> HugeBuf<T> {
    /// The buffer `[value(0), …, value(len − 1)]`; [`agd_core::Error::TooLarge`] when the
    /// memory cannot be had.
    fn from_fn(len: usize, mut value: impl FnMut(usize) -> T) -> Result<Self, agd_core::Error> {
        let bytes = len
            .checked_mul(size_of::<T>())
            .ok_or(agd_core::Error::TooLarge)?;
        if bytes == 0 {
            return Ok(HugeBuf {
                ptr: NonNull::dangling(),
                len,
                layout: None,
            });
        }
        let huge = bytes >= MIN_HUGE_BYTES;
        let layout = if huge {
            let size = bytes
                .checked_next_multiple_of(HUGE_PAGE)
                .ok_or(agd_core::Error::TooLarge)?;
            Layout::from_size_align(size, HUGE_PAGE)
        } else {
            Layout::from_size_align(bytes, align_of::<T>().max(64))
        }
        .map_err(|_| agd_core::Error::TooLarge)?;
        // SAFETY: the layout's size is not zero.
        let raw = unsafe { alloc::alloc(layout) };
        let ptr = NonNull::new(raw.cast::<T>()).ok_or(agd_core::Error::TooLarge)?;
        if huge {
            advise_huge_pages(raw, layout.size());
        }
        for i in 0..len {
            // SAFETY: the allocation holds `len` values of `T` (aligned: the layout's
            // alignment is at least `T`'s); each is written once, before any is read. (A
            // panic in `value` leaks the allocation, never reads it.)
            unsafe { ptr.as_ptr().add(i).write(value(i)) };
        }
        Ok(HugeBuf {
            ptr,
            len,
            layout: Some(layout),
        })
    }
}

impl<T> Deref for HugeBuf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `len` initialised values (or an empty slice at a dangling, aligned pointer).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> DerefMut for HugeBuf<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Drop for HugeBuf<T> {
    fn drop(&mut self) {
        if let Some(layout) = self.layout {
            // SAFETY: `len` initialised values, dropped once, in an allocation made with this
            // very layout in `from_fn`.
            unsafe {
                std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(
                    self.ptr.as_ptr(),
                    self.len,
                ));
                alloc::dealloc(self.ptr.as_ptr().cast(), layout);
            }
        }
    }
}

impl<T: Clone> Clone for HugeBuf<T> {
    /// A copy on its own huge pages. Panics (where `Vec::clone` would abort) if the memory
    /// cannot be had.
    fn clone(&self) -> Self {
        HugeBuf::copy_of(self).expect("memory for a copy of a buffer")
    }
}

impl<T> fmt::Debug for HugeBuf<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HugeBuf")
            .field("len", &self.len)
            .field(
                "advised",
                &self.layout.is_some_and(|l| l.align() == HUGE_PAGE),
            )
            .finish()
    }
}

/// An empty vector with room for `len` values, whose memory Linux is asked to back with huge
/// pages over the 2 MiB-aligned part of the allocation, before anything is written to it (a
/// `Vec`, for data sets that are built by pushing; the unaligned ends, under 4 MiB, keep
/// ordinary pages).
///
/// Training gathers each batch from random rows of the whole training set (188 MB for MNIST
/// in `f32`); with 4 KiB pages nearly every row costs a page walk. On the development VM the
/// gather took 72–78 ms of a 0.59 s MNIST epoch, and 29–34 ms with the set on huge pages
/// (docs/benchmark-history.md, session 13; 38–42 ms was the whole process on huge pages
/// through glibc).
pub fn vec_on_huge_pages<T>(len: usize) -> Vec<T> {
    let v = Vec::with_capacity(len);
    let start = v.as_ptr() as usize;
    let end = start + v.capacity() * size_of::<T>();
    let (lo, hi) = (
        start.next_multiple_of(HUGE_PAGE),
        end / HUGE_PAGE * HUGE_PAGE,
    );
    if hi > lo {
        advise_huge_pages(lo as *mut u8, hi - lo);
    }
    v
}

/// Asks Linux to back `[start, start + len)` (2 MiB-aligned) with huge pages. A refusal (THP
/// disabled, an old kernel) leaves ordinary pages, which is not an error; elsewhere, and
/// under Miri, it does nothing.
fn advise_huge_pages(start: *mut u8, len: usize) {
    debug_assert!((start as usize).is_multiple_of(HUGE_PAGE));
    #[cfg(all(target_os = "linux", not(miri)))]
    // SAFETY: the range is page-aligned and lies inside an allocation the caller owns; the
    // advice does not change its contents or its validity.
    unsafe {
        libc::madvise(start.cast(), len, libc::MADV_HUGEPAGE);
    }
    #[cfg(not(all(target_os = "linux", not(miri))))]
    let _ = (start, len);
}

/// What the machine grants, for `agd bench` to report next to its figures: the kernel's
/// transparent-huge-page mode and how much of a fresh 4 MiB [`HugeBuf`] it backed with huge
/// pages.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HugePageProbe {
    /// The bracketed word of `/sys/kernel/mm/transparent_hugepage/enabled` (`always`,
    /// `madvise` or `never`); `None` where there is no such file (not Linux, no THP).
    pub thp_mode: Option<String>,
    /// KiB on huge pages in the mapping that holds the 4 MiB probe buffer (`AnonHugePages` in
    /// `/proc/self/smaps`; the kernel may have merged neighbouring buffers into the same
    /// mapping): 0 when none were granted; `None` where that cannot be read.
    pub probe_huge_kib: Option<u64>,
}

/// Allocates a 4 MiB [`HugeBuf`] and looks up how the kernel backed it.
pub fn probe() -> HugePageProbe {
    let thp_mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .ok()
        .and_then(|s| thp_mode(&s));
    let buf = HugeBuf::<f32>::zeros(1 << 20).ok();
    let probe_huge_kib = buf.as_ref().and_then(|b| {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        anon_huge_kib_at(&smaps, b.as_ptr() as usize)
    });
    HugePageProbe {
        thp_mode,
        probe_huge_kib,
    }
}

/// The bracketed (selected) word of a sysfs choice list, `always [madvise] never` → `madvise`.
fn thp_mode(text: &str) -> Option<String> {
    let start = text.find('[')? + 1;
    let len = text[start..].find(']')?;
    Some(text[start..start + len].to_string())
}

/// `AnonHugePages` (KiB) of the mapping in `smaps` text that contains address `addr`.
fn anon_huge_kib_at(smaps: &str, addr: usize) -> Option<u64> {
    let mut inside = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((lo, hi)) = first.split_once('-')
            && let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
        {
            inside = (lo..hi).contains(&addr);
        } else if inside && let Some(rest) = line.strip_prefix("AnonHugePages:") {
            return rest.trim().trim_end_matches("kB").trim().parse().ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Zeros of the length asked for, on 2 MiB boundaries from 64 KiB on, writable, and a
    /// clone is an independent copy.
    #[test]
    fn huge_buffers_are_zeroed_aligned_and_independent() {
        for len in [0, 1, 1000, 16 << 10, (16 << 10) + 1, 3 << 19] {
            let mut b = HugeBuf::<f32>::zeros(len).unwrap();
            assert_eq!(b.len(), len);
            assert!(b.iter().all(|&x| x == 0.0));
            if len > 0 {
                let at = b.as_ptr() as usize;
                assert_eq!(
                    at.is_multiple_of(HUGE_PAGE),
                    len * 4 >= MIN_HUGE_BYTES,
                    "{len}"
                );
                assert!(at.is_multiple_of(64));
            }
            for (i, x) in b.iter_mut().enumerate() {
                *x = i as f32;
            }
            let mut c = b.clone();
            assert_eq!(*HugeBuf::copy_of(&b).unwrap(), *b);
            c.iter_mut().for_each(|x| *x += 1.0);
            assert!(b.iter().enumerate().all(|(i, &x)| x == i as f32));
            assert!(c.iter().enumerate().all(|(i, &x)| x == i as f32 + 1.0));
        }
    }

    /// The probe's parsers: the selected THP mode, and the huge-page KiB of the mapping that
    /// holds an address (not of the one before or after it).
    #[test]
    fn probe_reads_the_mode_and_the_right_mapping() {
        assert_eq!(
            thp_mode("always [madvise] never\n").as_deref(),
            Some("madvise")
        );
        assert_eq!(
            thp_mode("[always] madvise never").as_deref(),
            Some("always")
        );
        assert_eq!(thp_mode("no choice"), None);
        let smaps = "\
7f0000000000-7f0000200000 rw-p 00000000 00:00 0
Size:               2048 kB
AnonHugePages:         0 kB
7f0000200000-7f0000800000 rw-p 00000000 00:00 0
Size:               6144 kB
AnonHugePages:      4096 kB
VmFlags: rd wr mr mw me ac hg
7f0000800000-7f0000801000 r--p 00000000 08:01 1234 /usr/lib/libc.so.6
AnonHugePages:         0 kB
";
        assert_eq!(anon_huge_kib_at(smaps, 0x7f0000100000), Some(0));
        assert_eq!(anon_huge_kib_at(smaps, 0x7f0000200000), Some(4096));
        assert_eq!(anon_huge_kib_at(smaps, 0x7f00007fffff), Some(4096));
        assert_eq!(anon_huge_kib_at(smaps, 0x7f0000800000), Some(0));
        assert_eq!(anon_huge_kib_at(smaps, 0x1000), None);
        // The live probe finds its buffer's mapping on Linux.
        let p = probe();
        if cfg!(target_os = "linux") {
            assert!(p.probe_huge_kib.is_some(), "{p:?}");
        }
    }

    /// Memory that cannot be had is an error, not an abort.
    #[test]
    fn impossible_sizes_are_errors() {
        assert!(matches!(
            HugeBuf::<f64>::zeros(usize::MAX / 4),
            Err(agd_core::Error::TooLarge)
        ));
        assert!(matches!(
            HugeBuf::<f32>::zeros(1 << 60),
            Err(agd_core::Error::TooLarge)
        ));
    }

    /// The dataset vector is an ordinary vector to its user: the room asked for, values read
    /// back as written (5 MiB: at least one whole huge page is advised).
    #[test]
    fn huge_page_vector_holds_what_is_written() {
        let len = 5 << 18;
        let mut v = vec_on_huge_pages::<f32>(len);
        assert!(v.is_empty() && v.capacity() >= len);
        v.extend((0..len).map(|i| i as f32));
        assert!(v.iter().enumerate().all(|(i, &x)| x == i as f32));
        assert!(vec_on_huge_pages::<f64>(0).is_empty());
    }
}
