//! The one error type of agd-simd.

use core::fmt;

/// What a kernel can refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// A slice is shorter than the dimensions say it must be.
    ShortSlice {
        /// Which operand (`"a"`, `"b"`, `"c"`, `"v"`, `"u"`).
        operand: &'static str,
        /// Elements the dimensions need.
        needed: usize,
        /// Elements the slice has.
        got: usize,
    },
    /// The dimensions multiply past `usize::MAX`.
    DimensionOverflow,
    /// A power iteration was asked for zero iterations.
    NoIterations,
    /// A product was asked to run on a [`crate::Kernel`] this CPU (or build) cannot run.
    KernelUnavailable {
        /// The kernel's name ([`crate::Kernel::name`]).
        kernel: &'static str,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ShortSlice {
                operand,
                needed,
                got,
            } => write!(
                f,
                "operand `{operand}` has {got} elements but its dimensions need {needed}"
            ),
            Error::DimensionOverflow => write!(f, "matrix dimensions overflow usize"),
            Error::NoIterations => write!(f, "power iteration needs at least one iteration"),
            Error::KernelUnavailable { kernel } => {
                write!(f, "this CPU cannot run the `{kernel}` matrix kernel")
            }
        }
    }
}

impl core::error::Error for Error {}

/// `rows * cols`, checked against `len`.
pub(crate) fn check(
    operand: &'static str,
    rows: usize,
    cols: usize,
    len: usize,
) -> Result<usize, Error> {
    let needed = rows.checked_mul(cols).ok_or(Error::DimensionOverflow)?;
    if len < needed {
        return Err(Error::ShortSlice {
            operand,
            needed,
            got: len,
        });
    }
    Ok(needed)
}
