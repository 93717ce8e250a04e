//! `defmt::Format` for the types firmware logs (feature `defmt`).

use crate::{Error, Loss, StepReport};

impl defmt::Format for Error {
    fn format(&self, f: defmt::Formatter<'_>) {
        match *self {
            Error::InvalidWidths => defmt::write!(f, "invalid widths"),
            Error::InvalidLayer { layer } => defmt::write!(f, "layer {} does not fit", layer),
            Error::TooLarge => defmt::write!(f, "network too large"),
            Error::TooDeep { depth, max } => defmt::write!(f, "{} layers > max {}", depth, max),
            Error::BufferSize {
                buffer,
                expected,
                got,
            } => {
                defmt::write!(f, "{} buffer: {} elements, need {}", buffer, got, expected)
            }
            Error::EmptyBatch => defmt::write!(f, "empty batch"),
            Error::BatchTooLarge { batch, capacity } => {
                defmt::write!(f, "batch {} > capacity {}", batch, capacity)
            }
            Error::TargetCount { expected, got } => {
                defmt::write!(f, "{} targets for batch {}", got, expected)
            }
            Error::TargetOutOfRange {
                sample,
                target,
                classes,
            } => {
                defmt::write!(
                    f,
                    "target {} of sample {} >= {} classes",
                    target,
                    sample,
                    classes
                )
            }
            Error::NonFiniteLoss => defmt::write!(f, "non-finite loss"),
            Error::NonFiniteGradient { layer } => {
                defmt::write!(f, "non-finite gradient in layer {}", layer)
            }
            Error::NonFiniteStep => defmt::write!(f, "non-finite G or eta"),
            Error::InvalidGain => defmt::write!(f, "invalid gain"),
            Error::NoGradientBuffer => defmt::write!(f, "no gradient buffer"),
            Error::Kernel(_) => defmt::write!(f, "kernel refused its operands"),
            Error::NonFiniteInput { sample } => {
                defmt::write!(f, "non-finite input in sample {}", sample)
            }
            Error::NonFiniteWeight { layer } => {
                defmt::write!(f, "non-finite weight in layer {}", layer)
            }
            Error::WeightOverflow { layer } => {
                defmt::write!(f, "update would overflow layer {}", layer)
            }
            Error::CheckpointMagic => defmt::write!(f, "checkpoint: bad magic"),
            Error::CheckpointVersion { got, supported } => {
                defmt::write!(f, "checkpoint: version {} (reads {})", got, supported)
            }
            Error::CheckpointElement { expected, got } => {
                defmt::write!(f, "checkpoint: {} weights, net is {}", got, expected)
            }
            Error::CheckpointKind { expected, got } => {
                defmt::write!(f, "checkpoint: {} network, net is {}", got, expected)
            }
            Error::CheckpointLayer { index } => {
                defmt::write!(f, "checkpoint: layer {} differs", index)
            }
            Error::CheckpointDepth { expected, got } => {
                defmt::write!(f, "checkpoint: {} layers, net has {}", got, expected)
            }
            Error::CheckpointWidths {
                index,
                expected,
                got,
            } => defmt::write!(
                f,
                "checkpoint: width {} is {}, net has {}",
                index,
                got,
                expected
            ),
            Error::CheckpointTruncated { needed, got } => {
                defmt::write!(f, "checkpoint: {} bytes, {} needed", got, needed)
            }
            Error::CheckpointLength { claimed, expected } => {
                defmt::write!(
                    f,
                    "checkpoint: claims {} bytes, implies {}",
                    claimed,
                    expected
                )
            }
            Error::CheckpointCrc { stored, computed } => {
                defmt::write!(
                    f,
                    "checkpoint: crc {=u32:#x} != {=u32:#x}",
                    computed,
                    stored
                )
            }
            Error::FlashBounds { offset, len } => {
                defmt::write!(f, "flash: {} bytes at {} out of bounds", len, offset)
            }
            Error::FlashAlignment { offset } => defmt::write!(f, "flash: misaligned {}", offset),
            Error::FlashNotErased { offset } => {
                defmt::write!(f, "flash: write at {} not erased", offset)
            }
            Error::FlashDevice => defmt::write!(f, "flash: device failure"),
            Error::NoCheckpoint => defmt::write!(f, "no valid checkpoint"),
        }
    }
}

impl defmt::Format for Loss {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "{=str}", self.name())
    }
}

impl<T: defmt::Format> defmt::Format for StepReport<T> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "G={} eta={} norms={}",
            self.g,
            self.eta,
            self.grad_norms.as_slice()
        )
    }
}
