//! The one error type of agd-core. Every refusal leaves the network's weights untouched.

use core::fmt;

/// Why an operation of agd-core refused to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// A network needs at least two widths (one layer) and every width must be non-zero.
    InvalidWidths,
    /// A layer of a [`crate::spec`] network has a zero size, a kernel larger than its padded
    /// input, or inputs that differ from the previous layer's outputs.
    InvalidLayer {
        /// Layer index, from 0.
        layer: usize,
    },
    /// More layers than [`crate::MAX_DEPTH`].
    TooDeep {
        /// Layers asked for.
        depth: usize,
        /// The limit.
        max: usize,
    },
    /// A buffer does not have the size the widths and batch capacity need.
    BufferSize {
        /// Which buffer (`"weights"`, `"grads"`, `"activations"`, `"deltas"`, `"input"`).
        buffer: &'static str,
        /// Elements needed.
        expected: usize,
        /// Elements given.
        got: usize,
    },
    /// A batch of zero samples.
    EmptyBatch,
    /// A batch larger than the buffers were sized for.
    BatchTooLarge {
        /// Samples asked for.
        batch: usize,
        /// Samples the buffers hold.
        capacity: usize,
    },
    /// The number of targets differs from the batch size.
    TargetCount {
        /// The batch size.
        expected: usize,
        /// Targets given.
        got: usize,
    },
    /// A class label is not below the number of outputs.
    TargetOutOfRange {
        /// Sample index in the batch.
        sample: usize,
        /// The label.
        target: usize,
        /// Number of classes (outputs).
        classes: usize,
    },
    /// The loss is NaN or infinite (bad input, or a diverged network).
    NonFiniteLoss,
    /// A gradient holds a NaN or infinity; the step refused.
    NonFiniteGradient {
        /// Layer index, from 0.
        layer: usize,
    },
    /// The step's G or η came out non-finite; the step refused.
    NonFiniteStep,
    /// The gain must be finite and positive.
    InvalidGain,
    /// This network has no gradient buffer (it was declared buffer-free).
    NoGradientBuffer,
    /// A kernel refused its operands (a bug in the caller's sizes).
    Kernel(agd_simd::Error),
}

impl From<agd_simd::Error> for Error {
    fn from(e: agd_simd::Error) -> Self {
        Error::Kernel(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::InvalidWidths => {
                write!(f, "a network needs at least two widths, all non-zero")
            }
            Error::InvalidLayer { layer } => write!(
                f,
                "layer {layer} does not fit the shape coming into it (zero size, kernel larger \
                 than the padded input, or inputs differing from the previous layer's outputs)"
            ),
            Error::TooDeep { depth, max } => {
                write!(f, "{depth} layers is more than the supported {max}")
            }
            Error::BufferSize {
                buffer,
                expected,
                got,
            } => {
                write!(
                    f,
                    "the {buffer} buffer has {got} elements, the network needs {expected}"
                )
            }
            Error::EmptyBatch => write!(f, "a batch needs at least one sample"),
            Error::BatchTooLarge { batch, capacity } => {
                write!(
                    f,
                    "batch of {batch} is larger than the buffers' capacity of {capacity}"
                )
            }
            Error::TargetCount { expected, got } => {
                write!(f, "{got} targets given for a batch of {expected}")
            }
            Error::TargetOutOfRange {
                sample,
                target,
                classes,
            } => write!(
                f,
                "target {target} of sample {sample} is out of range for {classes} classes"
            ),
            Error::NonFiniteLoss => write!(f, "the loss is not finite (NaN or infinite input?)"),
            Error::NonFiniteGradient { layer } => {
                write!(
                    f,
                    "the gradient of layer {layer} is not finite; no weight was changed"
                )
            }
            Error::NonFiniteStep => write!(f, "G or eta is not finite; no weight was changed"),
            Error::InvalidGain => write!(f, "the gain must be finite and positive"),
            Error::NoGradientBuffer => {
                write!(f, "this network was declared without a gradient buffer")
            }
            Error::Kernel(e) => write!(f, "kernel: {e}"),
        }
    }
}

impl core::error::Error for Error {}
