//! The blocked loop's two memory measures, and whether this CPU's caches make them pay: read
//! once from CPUID's cache descriptions (leaf 4 on Intel, `0x8000_001D` on AMD).
//!
//! * **Prefetching** the next lines of a product whose `C` or `op(B)` holds 512 KiB or more
//!   (the blocked loop's `Ahead`). Measured: the `[784,1024³,10]` training step −5 % on a
//!   Zen 4 core (1 MiB L2), −8 % on a Zen 3 (512 KiB); on an Emerald Rapids core (2 MiB L2)
//!   it cost 1–2 % of that step and of the `[784,256,256,10]` one, whose hardware
//!   prefetchers already bring those lines. So a core with an L2 of 2 MiB or more does not
//!   prefetch.
//! * **Copying a transposed `A`** whose stored rows are a multiple of 2 KiB apart (the
//!   weight gradient of a layer 512 or 1024 wide), whose lines would share one or two L1
//!   sets. Measured: `tn` 1024 x 128 x 1024 0.51–0.57x → 0.93–1.06x `matrixmultiply` on
//!   Zen 3 (8-way L1), but 1.01–1.04x → 0.91–0.95x on Emerald Rapids (12-way). So only an
//!   L1 of at most 8 ways copies.
//!
//! A CPU whose caches CPUID does not describe (and any build under Miri, or for another
//! architecture) takes both measures, as every CPU did before they were measured apart.

#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
use core::sync::atomic::{AtomicU8, Ordering};

/// What the blocked matrix loop does on this CPU beyond its tiles, and the cache sizes it
/// decided from ([`cache_tuning`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheTuning {
    /// Ways of the L1 data cache, where CPUID describes it.
    pub l1d_ways: Option<u32>,
    /// Bytes of the (per-core) L2 cache, where CPUID describes it.
    pub l2_bytes: Option<u64>,
    /// Whether products whose `C` or `op(B)` holds 512 KiB or more ask for their next
    /// lines while they compute (software prefetch): not on an L2 of 2 MiB or more.
    pub prefetch: bool,
    /// Whether a weight gradient whose stored rows of `A` are a multiple of 2 KiB apart
    /// copies `A` to the stack in blocks first: only on an L1 of at most 8 ways.
    pub copy_a: bool,
}

impl CacheTuning {
    /// The measures for caches of `l1d_ways` ways (L1 data) and `l2_bytes` bytes (L2):
    /// each is taken unless the cache that makes it unnecessary is known to be there.
    pub(crate) fn for_caches(l1d_ways: Option<u32>, l2_bytes: Option<u64>) -> CacheTuning {
        CacheTuning {
            l1d_ways,
            l2_bytes,
            prefetch: l2_bytes.is_none_or(|b| b < 2 << 20),
            copy_a: l1d_ways.is_none_or(|w| w <= 8),
        }
    }
}

/// The blocked matrix loop's memory measures on this CPU, with the cache geometry they
/// follow from (see the fields). Products decide them once per process; this reads the
/// geometry again (CPUID, a few hundred cycles), so it is for reports such as `agd bench`.
///
/// ```
/// let t = agd_simd::cache_tuning();
/// // Every measure is taken unless the cache that makes it unnecessary is known.
/// assert!(t.prefetch || t.l2_bytes.is_some());
/// assert!(t.copy_a || t.l1d_ways.is_some());
/// ```
pub fn cache_tuning() -> CacheTuning {
    let (ways, l2) = geometry();
    CacheTuning::for_caches(ways, l2)
}

/// The two flags, as the products read them.
#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Measures {
    /// [`CacheTuning::prefetch`].
    pub prefetch: bool,
    /// [`CacheTuning::copy_a`].
    pub copy_a: bool,
}

#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
impl Measures {
    /// Both measures: what a CPU with undescribed caches takes, and what tests force to
    /// cover both code paths on every CPU.
    #[cfg(test)]
    pub(crate) const ALL: Measures = Measures {
        prefetch: true,
        copy_a: true,
    };
}

/// [`Measures`] once known: bit 0 prefetch, bit 1 copy, bit 7 known.
#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
static MEASURES: AtomicU8 = AtomicU8::new(0);

/// This CPU's [`Measures`]: CPUID the first time, a cached byte after.
#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
#[inline]
pub(crate) fn measures() -> Measures {
    #[cfg(test)]
    if let Some(m) = forced::measures() {
        return m;
    }
    let mut bits = MEASURES.load(Ordering::Relaxed);
    if bits == 0 {
        bits = probe();
    }
    Measures {
        prefetch: bits & 1 != 0,
        copy_a: bits & 2 != 0,
    }
}

/// Reads the geometry and caches its [`Measures`] (two threads racing store the same byte).
#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
#[cold]
#[inline(never)]
fn probe() -> u8 {
    let t = cache_tuning();
    let bits = 0x80 | u8::from(t.prefetch) | (u8::from(t.copy_a) << 1);
    MEASURES.store(bits, Ordering::Relaxed);
    bits
}

/// One cache as a CPUID cache-description subleaf gives it (the same layout in Intel's leaf
/// 4 and AMD's `0x8000_001D`): its level, whether it holds data (a data or unified cache),
/// its ways and its bytes; `None` for the null entry that ends the list.
#[cfg(any(test, all(target_arch = "x86_64", not(miri))))]
pub(crate) fn decode(eax: u32, ebx: u32, ecx: u32) -> Option<(u32, bool, u32, u64)> {
    let kind = eax & 0x1f;
    if kind == 0 {
        return None;
    }
    let level = (eax >> 5) & 7;
    let ways = (ebx >> 22) + 1;
    let partitions = ((ebx >> 12) & 0x3ff) + 1;
    let line = (ebx & 0xfff) + 1;
    let sets = ecx as u64 + 1;
    let bytes = u64::from(ways) * u64::from(partitions) * u64::from(line) * sets;
    Some((level, kind == 1 || kind == 3, ways, bytes))
}

/// The L1 data cache's ways and the L2's bytes from the first list of cache descriptions
/// this CPU has, each `None` where it is not described.
#[cfg(all(target_arch = "x86_64", not(miri)))]
fn geometry() -> (Option<u32>, Option<u64>) {
    use core::arch::x86_64::{__cpuid, __cpuid_count};
    // SAFETY (each call): CPUID exists on every x86-64 CPU; a leaf is only asked for when
    // the CPU says it has it, so the registers describe that leaf.
    #[allow(unused_unsafe)]
    let (max_basic, max_ext) = unsafe { (__cpuid(0).eax, __cpuid(0x8000_0000).eax) };
    let mut found = (None, None);
    for leaf in [4u32, 0x8000_001D] {
        let has = if leaf < 0x8000_0000 {
            max_basic >= leaf
        } else {
            max_ext >= leaf
        };
        if !has {
            continue;
        }
        for sub in 0..16 {
            #[allow(unused_unsafe)]
            let r = unsafe { __cpuid_count(leaf, sub) };
            let Some((level, data, ways, bytes)) = decode(r.eax, r.ebx, r.ecx) else {
                break;
            };
            match (level, data) {
                (1, true) => found.0 = Some(ways),
                (2, true) => found.1 = Some(bytes),
                _ => {}
            }
        }
        if found != (None, None) {
            break;
        }
    }
    found
}

/// No cache descriptions to read: both measures stay on.
#[cfg(not(all(target_arch = "x86_64", not(miri))))]
fn geometry() -> (Option<u32>, Option<u64>) {
    (None, None)
}

/// Tests force the measures on their own thread, to run both code paths whatever the CPU.
#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
#[cfg(test)]
pub(crate) mod forced {
    use super::Measures;
    use core::cell::Cell;

    std::thread_local! {
        static FORCED: Cell<Option<Measures>> = const { Cell::new(None) };
    }

    /// The measures forced on this thread, if any.
    pub(crate) fn measures() -> Option<Measures> {
        FORCED.with(Cell::get)
    }

    /// Runs `f` with `m` as this thread's measures.
    pub(crate) fn run<R>(m: Measures, f: impl FnOnce() -> R) -> R {
        FORCED.with(|c| c.set(Some(m)));
        let r = f();
        FORCED.with(|c| c.set(None));
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Register values as two CPUs give them: an Emerald Rapids core's L1 data cache (48 KiB,
    /// 12 ways, 64 sets) and L2 (2 MiB, 16 ways, 2048 sets) in leaf 4; a Zen 3 core's
    /// (32 KiB, 8 ways; 512 KiB, 8 ways, 1024 sets) in leaf `0x8000_001D`; an instruction
    /// cache, and the null entry. Breaking any field's shift or mask changes one of them.
    #[test]
    fn cache_descriptions_decode() {
        // type 1 (data), level 1, self-initialising (bit 8), as CPUs set it.
        assert_eq!(
            decode(0x121, (11 << 22) | 63, 63),
            Some((1, true, 12, 48 << 10))
        );
        assert_eq!(
            decode(0x143, (15 << 22) | 63, 2047),
            Some((2, true, 16, 2 << 20))
        );
        assert_eq!(
            decode(0x121, (7 << 22) | 63, 63),
            Some((1, true, 8, 32 << 10))
        );
        assert_eq!(
            decode(0x143, (7 << 22) | 63, 1023),
            Some((2, true, 8, 512 << 10))
        );
        // Two partitions of 32-byte lines: 2 x 32 x 4 ways x 8 sets.
        assert_eq!(
            decode(0x143, (3 << 22) | (1 << 12) | 31, 7),
            Some((2, true, 4, 2048))
        );
        assert_eq!(decode(0x122, (7 << 22) | 63, 63).map(|d| d.1), Some(false));
        assert_eq!(decode(0x100, u32::MAX, u32::MAX), None);
    }

    /// The rule on the three machines it was measured on, and where caches are unknown.
    #[test]
    fn measures_follow_the_caches() {
        let emr = CacheTuning::for_caches(Some(12), Some(2 << 20));
        assert!(!emr.prefetch && !emr.copy_a);
        let zen3 = CacheTuning::for_caches(Some(8), Some(512 << 10));
        assert!(zen3.prefetch && zen3.copy_a);
        let zen4 = CacheTuning::for_caches(Some(8), Some(1 << 20));
        assert!(zen4.prefetch && zen4.copy_a);
        let unknown = CacheTuning::for_caches(None, None);
        assert!(unknown.prefetch && unknown.copy_a);
        assert_eq!(unknown.l2_bytes, None);
    }

    /// The cached flags are the report's, this CPU's geometry is plausible where it is
    /// read, and a forced value holds on its thread only while it runs.
    #[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
    #[test]
    fn the_products_use_the_reported_measures() {
        let t = cache_tuning();
        let m = measures();
        assert_eq!((m.prefetch, m.copy_a), (t.prefetch, t.copy_a));
        if let Some(w) = t.l1d_ways {
            assert!((1..=64).contains(&w), "{w} ways");
        }
        if let Some(b) = t.l2_bytes {
            assert!(b >= 64 << 10, "{b} bytes of L2");
        }
        let off = Measures {
            prefetch: false,
            copy_a: false,
        };
        assert_eq!(forced::run(off, measures), off);
        assert_eq!(forced::run(Measures::ALL, measures), Measures::ALL);
        assert_eq!(measures(), m);
    }
}
