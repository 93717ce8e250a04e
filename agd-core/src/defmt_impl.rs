//! `defmt::Format` for the types firmware logs (feature `defmt`).

use crate::{Error, Loss, StepReport};

impl defmt::Format for Error {
    fn format(&self, f: defmt::Formatter<'_>) {
        match *self {
            Error::InvalidWidths => defmt::write!(f, "invalid widths"),
            Error::InvalidLayer { layer } => defmt::write!(f, "layer {} does not fit", layer),
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
