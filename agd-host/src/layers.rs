//! The `--layers` syntax: a network of convolution and dense layers in one short string.
//!
//! Layers are separated by commas; each is
//!
//! - `conv<C>k<K>[s<S>][p<P>]`: a `K x K` convolution with `C` output channels, stride `S`
//!   (default 1) and zero padding `P` on every side (default 0);
//! - `dense<W>`: a dense layer with `W` outputs.
//!
//! The input shape comes from the dataset (MNIST 1x28x28, digits 1x8x8); a dense layer after a
//! convolution reads its outputs flattened (channel, row, column), so "flatten" needs no
//! layer. Output sizes round down, as torch's. The last layer's outputs must be the dataset's classes.
//!
//! ```
//! use agd_host::layers::{parse, layers_text};
//! let layers = parse("conv16k3p1,conv32k3s2p1,conv32k3s2p1,dense10", [1, 28, 28], 10).unwrap();
//! assert_eq!(layers.len(), 4);
//! assert_eq!(layers[3].in_features(), 32 * 7 * 7);
//! assert_eq!(layers_text(&layers), "conv16k3p1,conv32k3s2p1,conv32k3s2p1,dense10");
//! ```

use agd_core::Error;
use agd_core::conv::Conv2d;
use agd_core::spec::{LayerSpec, chain, conv, dense};

use crate::HostError;

/// The issue's MNIST CNN, `conv16k3p1,conv32k3s2p1,conv32k3s2p1,dense10`: conv 1→16 3x3 p1 →
/// conv 16→32 3x3 s2 p1 → conv 32→32 3x3 s2 p1 → flatten 1568 → dense 10 (what `agd bench`
/// times and the README trains).
pub const MNIST_CNN: [LayerSpec; 4] = chain(
    [1, 28, 28],
    [
        conv(16, 3, 1, 1),
        conv(32, 3, 2, 1),
        conv(32, 3, 2, 1),
        dense(10),
    ],
);

fn usage(msg: String) -> HostError {
    HostError::Usage(msg)
}

/// Splits `"16k3s2p1"`-like text after `conv`: the leading number, then `k`, `s`, `p` numbers.
fn parse_conv(item: &str, rest: &str) -> Result<LayerSpec, HostError> {
    let bad = || {
        usage(format!(
            "--layers: `{item}` is not conv<channels>k<kernel>[s<stride>][p<padding>]"
        ))
    };
    let mut fields: Vec<(char, usize)> = Vec::new();
    let mut key = 'c';
    let mut digits = String::new();
    for ch in rest.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
        } else {
            fields.push((key, digits.parse().map_err(|_| bad())?));
            digits.clear();
            key = ch;
        }
    }
    fields.push((key, digits.parse().map_err(|_| bad())?));
    let (mut c, mut k, mut s, mut p) = (None, None, None, None);
    for (key, value) in fields {
        let slot = match key {
            'c' => &mut c,
            'k' => &mut k,
            's' => &mut s,
            'p' => &mut p,
            _ => return Err(bad()),
        };
        if slot.replace(value).is_some() {
            return Err(bad());
        }
    }
    let (Some(c), Some(k)) = (c, k) else {
        return Err(bad());
    };
    let (s, p) = (s.unwrap_or(1), p.unwrap_or(0));
    if c == 0 || k == 0 || s == 0 {
        return Err(usage(format!(
            "--layers: `{item}`: channels, kernel and stride must be at least 1"
        )));
    }
    Ok(conv(c, k, s, p))
}

/// Parses one layer, its input shape still unknown.
fn parse_one(item: &str) -> Result<LayerSpec, HostError> {
    if let Some(rest) = item.strip_prefix("conv") {
        parse_conv(item, rest)
    } else if let Some(rest) = item.strip_prefix("dense") {
        match rest.parse::<usize>() {
            Ok(0) => Err(usage(format!(
                "--layers: `{item}`: a dense layer needs at least 1 output"
            ))),
            Ok(w) => Ok(dense(w)),
            Err(_) => Err(usage(format!("--layers: `{item}` is not dense<width>"))),
        }
    } else {
        Err(usage(format!(
            "--layers: `{item}` is neither conv<channels>k<kernel>[s<stride>][p<padding>] nor \
             dense<width>"
        )))
    }
}

/// Parses `text` into layers for inputs of shape `[channels, height, width]`, checking that
/// every layer fits the shape coming into it and that the last gives `classes` outputs.
pub fn parse(text: &str, input: [usize; 3], classes: usize) -> Result<Vec<LayerSpec>, HostError> {
    let mut layers = text
        .split(',')
        .map(|item| parse_one(item.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    if layers.len() > agd_core::MAX_DEPTH {
        return Err(usage(format!(
            "--layers: {} layers, at most {} are supported",
            layers.len(),
            agd_core::MAX_DEPTH
        )));
    }
    let [mut c, mut h, mut w] = input;
    for (k, layer) in layers.iter_mut().enumerate() {
        let item = text.split(',').nth(k).unwrap_or("").trim();
        match layer {
            LayerSpec::Dense { inputs, outputs } => {
                *inputs = c
                    .checked_mul(h)
                    .and_then(|ch| ch.checked_mul(w))
                    .ok_or_else(|| usage(format!("--layers {text}: {}", Error::TooLarge)))?;
                (c, h, w) = (*outputs, 1, 1);
            }
            LayerSpec::Conv(cv) => {
                (cv.c_in, cv.h, cv.w) = (c, h, w);
                check_conv(item, cv)?;
                (c, h, w) = (cv.c_out, cv.out_h(), cv.out_w());
            }
        }
    }
    // The last layer's outputs: a dense width, or a convolution's features, which `fits` checked.
    let outputs = c * h * w;
    if outputs != classes {
        return Err(usage(format!(
            "--layers {text}: the last layer gives {outputs} outputs, the data has {classes} classes"
        )));
    }
    agd_core::spec::SpecLayout::new(&layers).map_err(|e| usage(format!("--layers {text}: {e}")))?;
    Ok(layers)
}

/// A convolution must fit its padded input (its output is then at least 1x1). The output
/// size is `(h + 2·pad − k) / stride + 1` rounded down, as torch's: the issue's CNN relies
/// on it (28 → 14 with k3 s2 p1).
fn check_conv(item: &str, cv: &Conv2d) -> Result<(), HostError> {
    if !cv.fits() {
        return Err(usage(format!("--layers: `{item}`: {}", Error::TooLarge)));
    }
    let (ph, pw) = (cv.h + 2 * cv.pad, cv.w + 2 * cv.pad);
    if cv.kh > ph || cv.kw > pw {
        return Err(usage(format!(
            "--layers: `{item}`: kernel {}x{} is larger than its padded {ph}x{pw} input",
            cv.kh, cv.kw
        )));
    }
    Ok(())
}

/// The `--layers` text of `layers` (the inverse of [`parse`]).
pub fn layers_text(layers: &[LayerSpec]) -> String {
    layers
        .iter()
        .map(|l| match l {
            LayerSpec::Dense { outputs, .. } => format!("dense{outputs}"),
            LayerSpec::Conv(c) => {
                let mut t = format!("conv{}k{}", c.c_out, c.kh);
                if c.stride != 1 {
                    t += &format!("s{}", c.stride);
                }
                if c.pad != 0 {
                    t += &format!("p{}", c.pad);
                }
                t
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Features between layers, `[f_0, …, f_L]` (input, every layer's outputs).
pub fn features(layers: &[LayerSpec]) -> Vec<usize> {
    let mut f = vec![layers.first().map_or(0, LayerSpec::in_features)];
    f.extend(layers.iter().map(LayerSpec::out_features));
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(text, [1, 28, 28], 10).unwrap_err().to_string()
    }

    #[test]
    fn the_issue_cnn_parses_and_prints_back() {
        let text = "conv16k3p1,conv32k3s2p1,conv32k3s2p1,dense10";
        let layers = parse(text, [1, 28, 28], 10).unwrap();
        assert_eq!(features(&layers), [784, 16 * 784, 32 * 196, 1568, 10]);
        assert_eq!(layers_text(&layers), text);
        assert_eq!(
            parse("dense10", [1, 8, 8], 10).unwrap()[0].in_features(),
            64
        );
    }

    #[test]
    fn unparsable_layers_are_usage_errors() {
        for bad in [
            "",
            "conv",
            "conv16",
            "conv16k",
            "conv16k3x1",
            "conv16k3k3",
            "dense",
            "dense1x",
            "pool2",
            "conv16k3,,dense10",
        ] {
            let e = err(bad);
            assert!(e.starts_with("--layers"), "{bad}: {e}");
            assert!(!e.contains('\n'), "{bad}: {e}");
        }
    }

    #[test]
    fn zero_channels_kernel_stride_or_width_are_refused() {
        assert!(err("conv0k3,dense10").contains("at least 1"));
        assert!(err("conv4k0,dense10").contains("at least 1"));
        assert!(err("conv4k3s0,dense10").contains("at least 1"));
        assert!(err("dense0,dense10").contains("at least 1"));
    }

    #[test]
    fn a_kernel_larger_than_its_padded_input_is_refused() {
        let e = err("conv4k29,dense10");
        assert!(e.contains("larger than its padded 28x28"), "{e}");
        assert!(parse("conv4k29p1,dense10", [1, 28, 28], 10).is_ok());
    }

    #[test]
    fn the_output_size_rounds_down_like_torch() {
        // (28 + 0 − 3) / 2 + 1 = 13.5 → 13.
        let layers = parse("conv4k3s2,dense10", [1, 28, 28], 10).unwrap();
        assert_eq!(layers[1].in_features(), 4 * 13 * 13);
    }

    #[test]
    fn the_outputs_must_be_the_classes() {
        assert!(err("conv4k3p1,dense7").contains("10 classes"));
        assert!(err("conv4k3p1").contains("10 classes"));
    }
}
