//! The `conv_then_linear` golden case: Conv2d (no bias) → `sqrt(2)·relu` → flatten → Linear.
//! Its layers and checks are here; the replay is the dense one's (`super::replay_on`), through
//! [`agd_core::ConvNetMut`] and [`agd_core::Agd::step_spec`], with one norm per kernel
//! position.

use agd_core::conv::Conv2d;
use agd_core::spec::{self, LayerSpec};
use serde_json::Value;

use super::{GoldenFile, tensor_shape};

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
pub(super) fn norm_list(v: &Value) -> Option<Vec<f64>> {
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
