//! Golden trajectories recorded from the reference implementation, and their replay.
//!
//! The format is described in `tests/golden/README.md`. [`GoldenFile::load`] parses and checks
//! a file; [`replay`] runs it through agd-core in `f32` or `f64` and measures the worst
//! relative deviation per quantity, with the metrics of that README:
//! tensors `max|got − ref| / max|ref|`, scalars `|got − ref| / |ref|`, and exact zeros where the
//! reference has exact zeros.

use std::path::Path;

use std::ops::Range;

use agd_core::{Agd, ConvNetMut, ConvNetwork, Element, Loss, NetMut, Network, StepReport};
use serde::Deserialize;

use crate::HostError;
use crate::net::{HostConvNet, HostNet};

mod conv;

use conv::norm_list;

/// Relative tolerance of an `f64` replay.
pub const TOL_F64: f64 = 1e-9;
/// Relative tolerance of an `f32` replay.
pub const TOL_F32: f64 = 1e-4;

/// A tensor as stored: shape and flat row-major data.
#[derive(Debug, Clone, Deserialize)]
pub struct Tensor {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f64>,
}

/// The architecture block.
#[derive(Debug, Clone, Deserialize)]
pub struct Architecture {
    /// `"fcn"` (dense) or `"conv_then_linear"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Widths `[d_0, …, C]` of a dense network.
    #[serde(default)]
    pub widths: Option<Vec<usize>>,
    /// Always false in the reference.
    #[serde(default)]
    pub bias: bool,
    /// The convolution of a `conv_then_linear` case.
    #[serde(default)]
    pub conv: Option<ConvInfo>,
}

/// A size given as one number or as `[height, width]` (torch accepts both).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
pub enum Pair {
    /// The same for both axes.
    One(usize),
    /// `[height, width]`.
    Two([usize; 2]),
}

impl Pair {
    /// `(height, width)`.
    pub fn hw(self) -> (usize, usize) {
        match self {
            Pair::One(v) => (v, v),
            Pair::Two([h, w]) => (h, w),
        }
    }
}

/// The `architecture.conv` block of a `conv_then_linear` case.
#[derive(Debug, Clone, Deserialize)]
pub struct ConvInfo {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel size.
    pub kernel: Pair,
    /// Stride.
    pub stride: Pair,
    /// Zero padding.
    pub padding: Pair,
    /// Dilation (only 1 is supported).
    #[serde(default)]
    pub dilation: Option<Pair>,
    /// Groups (only 1 is supported).
    #[serde(default)]
    pub groups: Option<usize>,
}

/// One layer's metadata.
#[derive(Debug, Clone, Deserialize)]
pub struct LayerInfo {
    /// torch parameter name.
    pub name: String,
    /// `[d_out, d_in]`.
    pub shape: Vec<usize>,
    /// `s_k`.
    pub singular_value_factor: f64,
}

/// The loss block.
#[derive(Debug, Clone, Deserialize)]
pub struct LossInfo {
    /// `"xent"` or `"mse"`.
    pub name: String,
}

/// One recorded step.
#[derive(Debug, Clone, Deserialize)]
pub struct Step {
    /// Step index.
    pub step: usize,
    /// Loss before the step.
    pub loss: f64,
    /// Gradient per layer.
    pub grads: Vec<Tensor>,
    /// `||g_k||_F` per layer (a list for conv layers, which this replay does not take).
    pub grad_norms: Vec<serde_json::Value>,
    /// `G`.
    #[serde(rename = "G")]
    pub g: f64,
    /// `η`.
    pub eta: f64,
    /// Weights after the step.
    pub weights_after: Vec<Tensor>,
}

/// A golden file.
#[derive(Debug, Clone, Deserialize)]
pub struct GoldenFile {
    /// Always 1.
    pub format_version: u32,
    /// Case id.
    pub case: String,
    /// AGD gain.
    pub gain: f64,
    /// `L`.
    #[serde(rename = "depth_L")]
    pub depth: usize,
    /// Network description.
    pub architecture: Architecture,
    /// Per-layer metadata.
    pub layers: Vec<LayerInfo>,
    /// Loss used.
    pub loss: LossInfo,
    /// Number of classes.
    pub num_classes: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Number of steps.
    pub num_steps: usize,
    /// Input batch `[B, d_0]`.
    #[serde(rename = "X")]
    pub x: Tensor,
    /// Class labels.
    pub targets: Vec<usize>,
    /// Initial weights per layer.
    pub initial_weights: Vec<Tensor>,
    /// Outputs at the initial weights.
    pub initial_outputs: Tensor,
    /// The recorded steps.
    pub steps: Vec<Step>,
    /// Loss after the last step.
    pub final_loss: f64,
}

fn bad(path: &Path, what: impl std::fmt::Display) -> HostError {
    HostError::Golden(format!("{}: {what}", path.display()))
}

impl GoldenFile {
    /// Reads and checks a golden file: a dense (`fcn`) or `conv_then_linear` case whose every
    /// tensor has the shape its architecture implies.
    pub fn load(path: &Path) -> Result<Self, HostError> {
        let text = std::fs::read_to_string(path).map_err(|e| bad(path, e))?;
        let file: GoldenFile = serde_json::from_str(&text)
            .map_err(|e| bad(path, format!("not a golden file: {e}")))?;
        file.check().map_err(|e| bad(path, e))?;
        Ok(file)
    }

    /// The dense widths.
    pub fn widths(&self) -> &[usize] {
        self.architecture.widths.as_deref().unwrap_or(&[])
    }

    /// Whether this is a `conv_then_linear` case (replayed with [`agd_core::ConvNetMut`]).
    pub fn is_conv(&self) -> bool {
        self.architecture.kind == "conv_then_linear"
    }

    /// One line naming the network: `widths [..]` or the conv and dense layers.
    pub fn network_summary(&self) -> String {
        match self.conv_layers() {
            Ok(layers) if self.is_conv() => conv::summary(&layers),
            _ => format!("widths {:?}", self.widths()),
        }
    }

    /// The loss.
    pub fn loss(&self) -> Loss {
        if self.loss.name == "mse" {
            Loss::Mse
        } else {
            Loss::Xent
        }
    }

    fn check(&self) -> Result<(), String> {
        if self.format_version != 1 {
            return Err(format!(
                "format_version {} is not supported (expected 1)",
                self.format_version
            ));
        }
        if self.architecture.bias {
            return Err("networks with biases are not AGD networks".into());
        }
        if self.is_conv() {
            return self.check_conv();
        }
        if self.architecture.kind != "fcn" {
            return Err(format!(
                "architecture `{}` is not supported (`fcn` or `conv_then_linear`)",
                self.architecture.kind
            ));
        }
        let widths = self.widths();
        agd_core::Layout::new(widths).map_err(|e| format!("widths {widths:?}: {e}"))?;
        let depth = widths.len() - 1;
        if self.depth != depth || self.layers.len() != depth {
            return Err(format!(
                "depth_L {} and {} layers do not match widths {widths:?}",
                self.depth,
                self.layers.len()
            ));
        }
        let (b, d0, c) = (self.batch_size, widths[0], widths[depth]);
        if b == 0 || self.num_classes != c {
            return Err(format!(
                "batch_size {b} / num_classes {} do not fit widths {widths:?}",
                self.num_classes
            ));
        }
        tensor_shape("X", &self.x, &[b, d0])?;
        let shapes: Vec<Vec<usize>> = (0..depth).map(|k| vec![widths[k + 1], widths[k]]).collect();
        self.check_run(&shapes, |_, v| v.as_f64().is_some(), "a number per layer")
    }

    /// The checks every architecture shares: loss, gain, targets, the output and per-layer
    /// tensors against `shapes` (one per layer), the step count, and each step's gradient
    /// norms (`norm_ok(layer, value)`, described by `norms` in the error).
    fn check_run(
        &self,
        shapes: &[Vec<usize>],
        norm_ok: impl Fn(usize, &serde_json::Value) -> bool,
        norms: &str,
    ) -> Result<(), String> {
        if !matches!(self.loss.name.as_str(), "xent" | "mse") {
            return Err(format!("unknown loss `{}`", self.loss.name));
        }
        if !(self.gain.is_finite() && self.gain > 0.0) {
            return Err(format!("gain {} must be finite and positive", self.gain));
        }
        let (b, classes) = (self.batch_size, self.num_classes);
        if self.targets.len() != b {
            return Err(format!("{} targets for batch_size {b}", self.targets.len()));
        }
        if let Some(t) = self.targets.iter().find(|&&t| t >= classes) {
            return Err(format!("target {t} out of range for {classes} classes"));
        }
        tensor_shape("initial_outputs", &self.initial_outputs, &[b, classes])?;
        let depth = shapes.len();
        let layer_list = |name: &str, ts: &[Tensor]| -> Result<(), String> {
            if ts.len() != depth {
                return Err(format!("{name} has {} tensors, expected {depth}", ts.len()));
            }
            ts.iter()
                .zip(shapes)
                .enumerate()
                .try_for_each(|(k, (t, s))| tensor_shape(&format!("{name}[{k}]"), t, s))
        };
        layer_list("initial_weights", &self.initial_weights)?;
        if self.steps.len() != self.num_steps {
            return Err(format!(
                "{} steps recorded, num_steps says {}",
                self.steps.len(),
                self.num_steps
            ));
        }
        for (t, s) in self.steps.iter().enumerate() {
            layer_list(&format!("steps[{t}].grads"), &s.grads)?;
            layer_list(&format!("steps[{t}].weights_after"), &s.weights_after)?;
            let ok = s.grad_norms.len() == depth
                && s.grad_norms.iter().enumerate().all(|(k, v)| norm_ok(k, v));
            if !ok {
                return Err(format!("steps[{t}].grad_norms must hold {norms}"));
            }
        }
        Ok(())
    }
}

fn tensor_shape(name: &str, t: &Tensor, want: &[usize]) -> Result<(), String> {
    if t.shape != want {
        return Err(format!("{name} has shape {:?}, expected {want:?}", t.shape));
    }
    if t.data.len() != want.iter().product::<usize>() {
        return Err(format!(
            "{name} has {} values for shape {want:?}",
            t.data.len()
        ));
    }
    if t.data.iter().any(|v| !v.is_finite()) {
        return Err(format!("{name} holds a non-finite value"));
    }
    Ok(())
}

/// The worst relative deviation seen per quantity, and rule violations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Deviations {
    /// Network outputs at the initial weights.
    pub outputs: f64,
    /// Loss before each step, and the final loss.
    pub loss: f64,
    /// Gradients.
    pub grads: f64,
    /// Gradient norms.
    pub grad_norms: f64,
    /// `G`.
    pub g: f64,
    /// `η`.
    pub eta: f64,
    /// Weights after each step.
    pub weights: f64,
    /// Values that should have been exactly zero (the reference's are) but were not.
    pub zero_violations: usize,
    /// Layers with an exactly-zero gradient that did not stay bit-for-bit unchanged.
    pub unchanged_violations: usize,
}

impl Deviations {
    /// The largest of the relative deviations.
    pub fn worst(&self) -> f64 {
        [
            self.outputs,
            self.loss,
            self.grads,
            self.grad_norms,
            self.g,
            self.eta,
            self.weights,
        ]
        .into_iter()
        .fold(0.0, f64::max)
    }

    /// Within tolerance `tol`, with no rule violated.
    pub fn passes(&self, tol: f64) -> bool {
        self.worst() <= tol && self.zero_violations == 0 && self.unchanged_violations == 0
    }

    /// `(name, value)` pairs in report order.
    pub fn rows(&self) -> [(&'static str, f64); 7] {
        [
            ("outputs", self.outputs),
            ("loss", self.loss),
            ("grads", self.grads),
            ("grad_norms", self.grad_norms),
            ("G", self.g),
            ("eta", self.eta),
            ("weights_after", self.weights),
        ]
    }
}

/// Which AGD step the replay runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StepKind {
    /// The reference step: gradients in a buffer, then [`Agd::step`].
    #[default]
    Standard,
    /// The gradient-buffer-free step, [`Agd::step_buffer_free`]: norms from the Gram identity
    /// over the errors and activations the backward pass left, then a rank-B update. (The
    /// replay still forms the gradients, only to compare them with the file.)
    BufferFree,
}

/// `|got − ref| / |ref|`, or exact-zero rule when `ref == 0`.
fn scalar_dev(got: f64, want: f64, zero_violations: &mut usize) -> f64 {
    if want == 0.0 {
        if got != 0.0 {
            *zero_violations += 1;
        }
        0.0
    } else if got.is_finite() {
        (got - want).abs() / want.abs()
    } else {
        f64::INFINITY
    }
}

/// `max|got − ref| / max|ref|`, or exact-zero rule for an all-zero reference.
fn tensor_dev<T: Element>(got: &[T], want: &[f64], zero_violations: &mut usize) -> f64 {
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if scale == 0.0 {
        *zero_violations += got.iter().filter(|v| v.to_f64() != 0.0).count();
        return 0.0;
    }
    let worst = got.iter().zip(want).fold(0.0f64, |m, (g, w)| {
        let d = (g.to_f64() - w).abs();
        if d.is_nan() { f64::INFINITY } else { m.max(d) }
    });
    worst / scale
}

fn cast<T: Element>(v: &[f64]) -> Vec<T> {
    v.iter().map(|&x| T::from_f64(x)).collect()
}

/// Replays a golden file in element type `T` and returns the worst deviations.
pub fn replay<T: Element>(file: &GoldenFile, kind: StepKind) -> Result<Deviations, HostError> {
    if file.is_conv() {
        let layers = file.conv_layers().map_err(HostError::Golden)?;
        let mut net = HostConvNet::<T>::new(&layers, file.batch_size)?;
        return replay_on(net.view(), file, kind);
    }
    let mut net = HostNet::<T>::new(file.widths(), file.batch_size, true)?;
    replay_on(net.view(), file, kind)
}

/// What a replay needs of a network view: a dense [`NetMut`] or a conv [`ConvNetMut`].
trait Replayed<T: Element> {
    fn weights(&self) -> &[T];
    fn weights_mut(&mut self) -> &mut [T];
    fn set_input(&mut self, x: &[T]) -> Result<usize, agd_core::Error>;
    fn forward(&mut self, batch: usize) -> Result<&[T], agd_core::Error>;
    fn compute_grads(&mut self, loss: Loss, t: &[usize]) -> Result<(T, usize), agd_core::Error>;
    fn loss_grad(&mut self, loss: Loss, t: &[usize]) -> Result<T, agd_core::Error>;
    fn depth(&self) -> usize;
    fn layer_weights(&self, k: usize) -> &[T];
    fn layer_grads(&self, k: usize) -> &[T];
    fn weight_range(&self, k: usize) -> Range<usize>;
    /// The AGD step of `kind` on a batch of `batch` samples.
    fn step(
        &mut self,
        agd: &Agd<T>,
        kind: StepKind,
        batch: usize,
    ) -> Result<StepReport<T>, HostError>;
    /// Layer `k`'s gradient norms of the last step, one per kernel position (one for a dense
    /// layer).
    fn norms(&self, report: &StepReport<T>, k: usize) -> Vec<T>;
}

/// The methods both views have under the same names.
macro_rules! replayed_common {
    () => {
        fn weights(&self) -> &[T] {
            Self::weights(self)
        }
        fn weights_mut(&mut self) -> &mut [T] {
            Self::weights_mut(self)
        }
        fn set_input(&mut self, x: &[T]) -> Result<usize, agd_core::Error> {
            Self::set_input(self, x)
        }
        fn forward(&mut self, batch: usize) -> Result<&[T], agd_core::Error> {
            Self::forward(self, batch)
        }
        fn compute_grads(
            &mut self,
            loss: Loss,
            t: &[usize],
        ) -> Result<(T, usize), agd_core::Error> {
            Self::compute_grads(self, loss, t)
        }
        fn loss_grad(&mut self, loss: Loss, t: &[usize]) -> Result<T, agd_core::Error> {
            Self::loss_grad(self, loss, t)
        }
        fn depth(&self) -> usize {
            self.layout().depth()
        }
        fn layer_weights(&self, k: usize) -> &[T] {
            Self::layer_weights(self, k)
        }
        fn layer_grads(&self, k: usize) -> &[T] {
            Self::layer_grads(self, k)
        }
        fn weight_range(&self, k: usize) -> Range<usize> {
            self.layout().weight_range(k)
        }
    };
}

impl<T: Element> Replayed<T> for NetMut<'_, T> {
    replayed_common!();
    fn step(
        &mut self,
        agd: &Agd<T>,
        kind: StepKind,
        batch: usize,
    ) -> Result<StepReport<T>, HostError> {
        Ok(match kind {
            StepKind::Standard => {
                let (layout, w, g) = self.step_parts();
                agd.step(layout, w, g)?
            }
            StepKind::BufferFree => agd.step_buffer_free(self, batch)?,
        })
    }
    fn norms(&self, report: &StepReport<T>, k: usize) -> Vec<T> {
        vec![report.grad_norms[k]]
    }
}

impl<T: Element> Replayed<T> for ConvNetMut<'_, T> {
    replayed_common!();
    fn step(&mut self, agd: &Agd<T>, kind: StepKind, _: usize) -> Result<StepReport<T>, HostError> {
        match kind {
            StepKind::Standard => Ok(ConvNetMut::step(self, agd)?),
            StepKind::BufferFree => Err(HostError::Usage(
                "the buffer-free step is defined for dense networks only".into(),
            )),
        }
    }
    fn norms(&self, _: &StepReport<T>, k: usize) -> Vec<T> {
        self.grad_norms(k).to_vec()
    }
}

/// [`replay`] on a network view: the initial outputs, then every recorded step's loss,
/// gradients, norms (one per kernel position for a conv layer), G, η and weights after, and
/// the final loss. A slice (or dense layer) whose recorded norm is 0 must come out of its step
/// bit-for-bit unchanged.
fn replay_on<T: Element>(
    mut v: impl Replayed<T>,
    file: &GoldenFile,
    kind: StepKind,
) -> Result<Deviations, HostError> {
    let agd = Agd::<T>::with_gain(T::from_f64(file.gain))?;
    let (loss, depth) = (file.loss(), v.depth());
    let mut dev = Deviations::default();
    let mut zv = 0;
    let init: Vec<f64> = file
        .initial_weights
        .iter()
        .flat_map(|t| t.data.iter().copied())
        .collect();
    v.weights_mut().copy_from_slice(&cast::<T>(&init));
    v.set_input(&cast::<T>(&file.x.data))?;
    let out = v.forward(file.batch_size)?;
    dev.outputs = tensor_dev(out, &file.initial_outputs.data, &mut zv);
    for rec in &file.steps {
        let (value, _) = v.compute_grads(loss, &file.targets)?;
        dev.loss = dev.loss.max(scalar_dev(value.to_f64(), rec.loss, &mut zv));
        for k in 0..depth {
            dev.grads = dev
                .grads
                .max(tensor_dev(v.layer_grads(k), &rec.grads[k].data, &mut zv));
        }
        let before = v.weights().to_vec();
        let report = v.step(&agd, kind, file.batch_size)?;
        for k in 0..depth {
            let want = norm_list(&rec.grad_norms[k]).unwrap_or_default();
            let got = v.norms(&report, k);
            let positions = got.len();
            let range = v.weight_range(k);
            for (p, (&n, &w)) in got.iter().zip(&want).enumerate() {
                dev.grad_norms = dev.grad_norms.max(scalar_dev(n.to_f64(), w, &mut zv));
                if w == 0.0 {
                    let same = v.weights()[range.clone()]
                        .iter()
                        .zip(&before[range.clone()])
                        .skip(p)
                        .step_by(positions)
                        .all(|(a, b)| a.to_bits_u64() == b.to_bits_u64());
                    if !same {
                        dev.unchanged_violations += 1;
                    }
                }
            }
        }
        dev.g = dev.g.max(scalar_dev(report.g.to_f64(), rec.g, &mut zv));
        dev.eta = dev
            .eta
            .max(scalar_dev(report.eta.to_f64(), rec.eta, &mut zv));
        for k in 0..depth {
            dev.weights = dev.weights.max(tensor_dev(
                v.layer_weights(k),
                &rec.weights_after[k].data,
                &mut zv,
            ));
        }
    }
    v.forward(file.batch_size)?;
    let value = v.loss_grad(loss, &file.targets)?;
    dev.loss = dev
        .loss
        .max(scalar_dev(value.to_f64(), file.final_loss, &mut zv));
    dev.zero_violations = zv;
    Ok(dev)
}
