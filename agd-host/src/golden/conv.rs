//! The `conv_then_linear` golden case: Conv2d (no bias) → `sqrt(2)·relu` → flatten → Linear,
//! replayed through [`agd_core::ConvNetMut`] and [`agd_core::Agd::step_spec`] with the
//! metrics of the dense replay, plus one norm per kernel position.

use agd_core::conv::Conv2d;
use agd_core::spec::{self, LayerSpec};
use agd_core::{Agd, ConvNetwork, Element};
use serde_json::Value;

use super::{Deviations, GoldenFile, StepKind, cast, scalar_dev, tensor_dev, tensor_shape};
use crate::HostError;
use crate::net::HostConvNet;

/// `conv 1→3 3x3 stride 1 pad 0 → dense 27→4`.
pub(super) fn summary(layers: &[LayerSpec]) -> String {
    layers
        .iter()
        .map(|l| match l {
            LayerSpec::Conv(c) => format!(
                "conv {}→{} {}x{} stride {} pad {}",
                c.c_in, c.c_out, c.kh, c.kw, c.stride, c.pad
            ),
            LayerSpec::Dense { inputs, outputs } => format!("dense {inputs}→{outputs}"),
        })
        .collect::<Vec<_>>()
        .join(" → ")
}

/// A recorded norm entry as a list: a number for a dense layer, a list for a conv layer.
fn norm_list(v: &Value) -> Option<Vec<f64>> {
    match v {
        Value::Number(n) => n.as_f64().map(|x| vec![x]),
        Value::Array(a) => a.iter().map(Value::as_f64).collect(),
        _ => None,
    }
}

impl GoldenFile {
    /// The layers of a `conv_then_linear` case: the convolution of `architecture.conv` on the
    /// input shape of `X` (`[B, c_in, h, w]`), then a dense layer to `num_classes`.
    pub fn conv_layers(&self) -> Result<Vec<LayerSpec>, String> {
        let c = self
            .architecture
            .conv
            .as_ref()
            .ok_or("a conv_then_linear case needs architecture.conv")?;
        if c.dilation.is_some_and(|d| d.hw() != (1, 1)) || c.groups.is_some_and(|g| g != 1) {
            return Err("only dilation 1 and groups 1 are supported".into());
        }
        let ((kh, kw), (sh, sw), (ph, pw)) = (c.kernel.hw(), c.stride.hw(), c.padding.hw());
        if sh != sw || ph != pw {
            return Err("stride and padding must be the same on both axes".into());
        }
        let [_, c_in, h, w] = self.x.shape[..] else {
            return Err(format!(
                "X has shape {:?}, expected [B, channels, height, width]",
                self.x.shape
            ));
        };
        if c_in != c.in_channels {
            return Err(format!(
                "X has {c_in} channels, the conv takes {}",
                c.in_channels
            ));
        }
        let mut layers = [
            LayerSpec::Conv(Conv2d {
                c_in,
                c_out: c.out_channels,
                kh,
                kw,
                h,
                w,
                stride: sh,
                pad: ph,
            }),
            spec::dense(self.num_classes),
        ];
        spec::try_chain([c_in, h, w], &mut layers)
            .map_err(|e| format!("architecture.conv on X {:?}: {e}", self.x.shape))?;
        Ok(layers.to_vec())
    }

    pub(super) fn check_conv(&self) -> Result<(), String> {
        let layers = self.conv_layers()?;
        let depth = layers.len();
        if self.depth != depth || self.layers.len() != depth {
            return Err(format!(
                "depth_L {} and {} layers do not match a conv and a dense layer",
                self.depth,
                self.layers.len()
            ));
        }
        let b = self.batch_size;
        if b == 0 || self.x.shape[0] != b {
            return Err(format!(
                "batch_size {b} does not fit X of shape {:?}",
                self.x.shape
            ));
        }
        tensor_shape("X", &self.x, &self.x.shape.clone())?;
        let shapes: Vec<Vec<usize>> = layers
            .iter()
            .map(|l| match *l {
                LayerSpec::Conv(c) => vec![c.c_out, c.c_in, c.kh, c.kw],
                LayerSpec::Dense { inputs, outputs } => vec![outputs, inputs],
            })
            .collect();
        for (k, (info, s)) in self.layers.iter().zip(&shapes).enumerate() {
            if &info.shape != s {
                return Err(format!(
                    "layers[{k}] has shape {:?}, expected {s:?}",
                    info.shape
                ));
            }
        }
        self.check_run(
            &shapes,
            |k, v| {
                let l = &layers[k];
                norm_list(v).is_some_and(|n| n.len() == l.norm_count())
                    && (l.norm_count() > 1 || v.is_number())
            },
            "a list of kh·kw numbers per conv layer and a number per dense layer",
        )?;
        Ok(())
    }
}

/// Replays a checked `conv_then_linear` file in element type `T`.
pub(super) fn replay<T: Element>(
    file: &GoldenFile,
    kind: StepKind,
) -> Result<Deviations, HostError> {
    let layers = file.conv_layers().map_err(HostError::Golden)?;
    let depth = layers.len();
    let mut net = HostConvNet::<T>::new(&layers, file.batch_size)?;
    let agd = Agd::<T>::with_gain(T::from_f64(file.gain))?;
    let loss = file.loss();
    let mut dev = Deviations::default();
    let mut zv = 0;
    let mut v = net.view();
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
        let report = match kind {
            StepKind::Standard => v.step(&agd)?,
            StepKind::BufferFree => {
                return Err(HostError::Usage(
                    "the buffer-free step is defined for dense networks only".into(),
                ));
            }
        };
        for k in 0..depth {
            let want = norm_list(&rec.grad_norms[k]).unwrap_or_default();
            let got = v.grad_norms(k);
            let positions = got.len();
            let range = v.layout().weight_range(k);
            for (p, (&n, &w)) in got.iter().zip(&want).enumerate() {
                dev.grad_norms = dev.grad_norms.max(scalar_dev(n.to_f64(), w, &mut zv));
                if w == 0.0 {
                    // A zero slice (or dense layer) must be bit-for-bit unchanged.
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
