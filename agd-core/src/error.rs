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
    /// A network whose sizes (weights, features per sample, one sample's unfolding) do not fit
    /// in `usize`, or (on a host) whose buffers cannot be allocated: refused rather than
    /// computed with wrapped sizes or aborted by the allocator.
    TooLarge,
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
    /// An input sample holds a NaN or infinity; nothing was computed.
    NonFiniteInput {
        /// Sample index in the batch.
        sample: usize,
    },
    /// A weight is NaN or infinite (a checkpoint refuses to save or load it).
    NonFiniteWeight {
        /// Layer index, from 0.
        layer: usize,
    },
    /// The update could push a weight of this layer past the largest finite number (a huge
    /// gain, or weights already near it); the step refused and no weight was changed.
    WeightOverflow {
        /// Layer index, from 0.
        layer: usize,
    },
    /// The bytes do not start with the checkpoint magic `AGDC`.
    CheckpointMagic,
    /// A checkpoint format version this build does not read.
    CheckpointVersion {
        /// Version in the bytes.
        got: u16,
        /// The version this build reads and writes.
        supported: u16,
    },
    /// The checkpoint holds another element type than the target network.
    CheckpointElement {
        /// The target's element type.
        expected: &'static str,
        /// The checkpoint's (`"unknown"` for a code no build knows).
        got: &'static str,
    },
    /// The checkpoint holds another kind of network than the target (a layer-spec network
    /// with convolutions where a dense one is expected).
    CheckpointKind {
        /// The target's kind (`"dense"` or `"layer-spec"`).
        expected: &'static str,
        /// The checkpoint's.
        got: &'static str,
    },
    /// One layer of a layer-spec checkpoint differs from the target network's (another
    /// kind of layer, other sizes, or another input shape).
    CheckpointLayer {
        /// Layer index, from 0.
        index: usize,
    },
    /// The checkpoint has another number of layers than the target network.
    CheckpointDepth {
        /// The target's number of layers.
        expected: usize,
        /// The checkpoint's.
        got: usize,
    },
    /// One width of the checkpoint differs from the target network's.
    CheckpointWidths {
        /// Position in the widths, from 0 (= input width).
        index: usize,
        /// The target's width.
        expected: usize,
        /// The checkpoint's.
        got: usize,
    },
    /// Fewer bytes than the checkpoint needs (or claims to need).
    CheckpointTruncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// The length field disagrees with the length the widths and element type imply.
    CheckpointLength {
        /// The length field.
        claimed: usize,
        /// The length implied by the header.
        expected: usize,
    },
    /// The CRC-32 does not match the bytes: the checkpoint is corrupt.
    CheckpointCrc {
        /// CRC stored in the checkpoint.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// A flash access outside the device or region.
    FlashBounds {
        /// First byte of the access.
        offset: usize,
        /// Length of the access.
        len: usize,
    },
    /// A flash address or size that is not aligned to the page or write size.
    FlashAlignment {
        /// The misaligned offset or size.
        offset: usize,
    },
    /// A flash write that would have to set a bit back to 1 (the page was not erased).
    FlashNotErased {
        /// First offending byte.
        offset: usize,
    },
    /// The flash device reported a failure (or lost power).
    FlashDevice,
    /// No slot of the store holds a valid checkpoint.
    NoCheckpoint,
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
            Error::TooLarge => write!(
                f,
                "the network is too large: its buffers do not fit in memory"
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
            Error::NonFiniteInput { sample } => {
                write!(f, "input sample {sample} holds a NaN or infinity")
            }
            Error::NonFiniteWeight { layer } => {
                write!(f, "a weight of layer {layer} is NaN or infinite")
            }
            Error::WeightOverflow { layer } => write!(
                f,
                "the update could overflow a weight of layer {layer}; no weight was changed"
            ),
            Error::CheckpointMagic => write!(f, "not an agd checkpoint (bad magic)"),
            Error::CheckpointVersion { got, supported } => write!(
                f,
                "checkpoint format version {got} is not supported (this build reads {supported})"
            ),
            Error::CheckpointElement { expected, got } => write!(
                f,
                "the checkpoint holds {got} weights, the network is {expected}"
            ),
            Error::CheckpointKind { expected, got } => write!(
                f,
                "the checkpoint holds a {got} network, the target is {expected}"
            ),
            Error::CheckpointLayer { index } => write!(
                f,
                "layer {index} of the checkpoint differs from the network's (kind, sizes or shape)"
            ),
            Error::CheckpointDepth { expected, got } => write!(
                f,
                "the checkpoint has {got} layers, the network has {expected}"
            ),
            Error::CheckpointWidths {
                index,
                expected,
                got,
            } => write!(
                f,
                "width {index} of the checkpoint is {got}, the network's is {expected}"
            ),
            Error::CheckpointTruncated { needed, got } => write!(
                f,
                "the checkpoint is truncated: {got} bytes, {needed} needed"
            ),
            Error::CheckpointLength { claimed, expected } => write!(
                f,
                "the checkpoint claims {claimed} bytes, its header implies {expected}"
            ),
            Error::CheckpointCrc { stored, computed } => write!(
                f,
                "the checkpoint is corrupt: CRC-32 {computed:#010x}, stored {stored:#010x}"
            ),
            Error::FlashBounds { offset, len } => {
                write!(
                    f,
                    "flash access of {len} bytes at {offset} is out of bounds"
                )
            }
            Error::FlashAlignment { offset } => {
                write!(f, "flash offset or size {offset} is misaligned")
            }
            Error::FlashNotErased { offset } => {
                write!(f, "flash write at {offset} needs an erased page")
            }
            Error::FlashDevice => write!(f, "the flash device failed"),
            Error::NoCheckpoint => write!(f, "no valid checkpoint in storage"),
        }
    }
}

impl core::error::Error for Error {}
