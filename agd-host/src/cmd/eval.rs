//! `agd eval --load FILE`: the test accuracy and loss of a checkpoint written by
//! `agd train --save`, on a dataset's test split prepared exactly as for training.

use std::path::PathBuf;

use agd_core::checkpoint::{ElemType, SpecHeader};
use agd_core::spec::LayerSpec;
use agd_core::{ConvNetwork, Element, Loss, Network};
use agd_host::HostError;
use agd_host::checkpoint_file::{check_buffers, read_any};
use agd_host::data::{DatasetKind, Split, load};
use agd_host::net::{HostConvNet, HostNet};
use agd_host::train::TrainNet;

use crate::cmd::common::LossArg;

/// Arguments of `agd eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Checkpoint file (from `agd train --save`).
    #[arg(long, value_name = "FILE")]
    load: PathBuf,
    /// Dataset whose test split to evaluate on (the checkpoint's widths must fit it).
    #[arg(long, value_enum, default_value = "digits")]
    dataset: DatasetKind,
    /// Directory holding the dataset's IDX files (as for `agd train`).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The split the network was trained on (as for `agd train`).
    #[arg(long, value_enum, default_value = "seeded")]
    split: Split,
    /// The loss to report (the accuracy does not depend on it).
    #[arg(long, value_enum, default_value = "mse")]
    loss: LossArg,
    /// Samples per forward pass. `agd train` evaluates in batches of its --batch (default
    /// 128); the same size gives bit-identical outputs.
    #[arg(long, default_value_t = 128)]
    batch: usize,
}

/// Evaluates; `Ok(true)` unless something was refused.
pub fn run(args: &Args) -> Result<bool, HostError> {
    if args.batch == 0 {
        return Err(HostError::Usage("--batch must be at least 1".into()));
    }
    // Every byte of the file is checked (magic, version, length, CRC, header, finite weights)
    // before the dataset is read or a network is built.
    let (header, bytes) = read_any(&args.load)?;
    match header.elem {
        ElemType::F32 => typed::<f32>(args, &header, &bytes),
        ElemType::F64 => typed::<f64>(args, &header, &bytes),
    }
}

/// `dense [64,32,10]` or `conv 1x8x8 → conv 4 3x3 s1 p1 → … → dense 10`.
fn describe(header: &SpecHeader) -> String {
    let layers = &header.layers;
    if header.dense {
        let mut w = vec![layers[0].in_features()];
        w.extend(layers.iter().map(LayerSpec::out_features));
        let w: Vec<String> = w.iter().map(usize::to_string).collect();
        return format!("dense [{}]", w.join(","));
    }
    let mut parts = vec![match layers[0] {
        LayerSpec::Conv(c) => format!("input {}x{}x{}", c.c_in, c.h, c.w),
        LayerSpec::Dense { inputs, .. } => format!("input {inputs}"),
    }];
    parts.extend(layers.iter().map(|l| match l {
        LayerSpec::Conv(c) => format!(
            "conv {} {}x{} s{} p{}",
            c.c_out, c.kh, c.kw, c.stride, c.pad
        ),
        LayerSpec::Dense { outputs, .. } => format!("dense {outputs}"),
    }));
    parts.join(" → ")
}

fn typed<T: Element>(args: &Args, header: &SpecHeader, bytes: &[u8]) -> Result<bool, HostError> {
    let path = args.load.as_path();
    let ckpt_err = |source| HostError::Checkpoint {
        path: path.display().to_string(),
        source,
    };
    let data = load::<T>(args.dataset, args.data_dir.as_deref(), args.split)?;
    let inputs = header.layers[0].in_features();
    let classes = header.layers[header.layers.len() - 1].out_features();
    if inputs != data.inputs() || classes != data.classes() {
        return Err(HostError::Usage(format!(
            "{}: the checkpoint's network ({}) takes {inputs} inputs and gives {classes} \
             classes; {} has {} inputs and {} classes",
            path.display(),
            describe(header),
            data.kind.name(),
            data.inputs(),
            data.classes()
        )));
    }
    let loss: Loss = args.loss.into();
    let (x, y) = (&data.test_x, &data.test_y);
    let cap = args.batch;
    let (progress, (correct, loss_sum)) = if header.dense {
        let mut w = vec![inputs];
        w.extend(header.layers.iter().map(LayerSpec::out_features));
        let mut net = HostNet::<T>::new(&w, cap, false)?;
        let progress = net.view().load_checkpoint(bytes).map_err(ckpt_err)?;
        (progress, score_all(&mut net, x, y, loss)?)
    } else {
        check_buffers(path, &header.layers, cap)?;
        let mut net = HostConvNet::<T>::new(&header.layers, cap)?;
        let progress = net.view().load_checkpoint(bytes).map_err(ckpt_err)?;
        (progress, score_all(&mut net, x, y, loss)?)
    };
    let n = y.len();
    println!(
        "checkpoint {}: {}, {}, step {}",
        path.display(),
        describe(header),
        T::NAME,
        progress.step
    );
    println!(
        "{} test set: accuracy {:.2} % ({correct} of {n}), {} loss {:.6}",
        data.kind.name(),
        100.0 * correct as f64 / n as f64,
        loss.name(),
        loss_sum / n as f64
    );
    Ok(true)
}

/// Correct predictions and summed `loss` over `x`, in batches of the network's capacity.
fn score_all<T: Element, N: TrainNet<T>>(
    net: &mut N,
    x: &[T],
    y: &[usize],
    loss: Loss,
) -> Result<(usize, f64), HostError> {
    let (inputs, cap) = (net.inputs(), net.capacity());
    let (mut correct, mut loss_sum) = (0usize, 0.0f64);
    for (xs, ys) in x.chunks(cap * inputs).zip(y.chunks(cap)) {
        let (c, l) = net.score(xs, ys, loss)?;
        correct += c;
        loss_sum += l.to_f64() * ys.len() as f64;
    }
    Ok((correct, loss_sum))
}
