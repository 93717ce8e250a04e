//! `agd compare`: AGD with no knobs against Adam and SGD, each over a grid of learning rates,
//! on the same dataset, network, epochs and seed (so the same initialisation and batch order).

use std::fmt::Write as _;
use std::path::PathBuf;

use agd_core::Element;
use agd_host::HostError;
use agd_host::data::load;
use agd_host::report::{
    PALETTE, RunMetrics, Series, create_dir, plot_series, write_run, write_text,
};
use agd_host::train::{Optimizer, TrainConfig, train};
use serde::Serialize;

use crate::cmd::common::{Bar, Dtype, RunArgs, check_lr};

/// Arguments of `agd compare`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    run: RunArgs,
    /// Adam's learning-rate grid.
    #[arg(long = "adam-lr", value_delimiter = ',', num_args = 1..,
          default_values_t = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2])]
    adam_lrs: Vec<f64>,
    /// SGD's learning-rate grid.
    #[arg(long = "sgd-lr", value_delimiter = ',', num_args = 1..,
          default_values_t = [0.01, 0.03, 0.1, 0.3, 1.0])]
    sgd_lrs: Vec<f64>,
    /// Leave SGD out (AGD against Adam's grid only), to halve a long comparison.
    #[arg(long)]
    no_sgd: bool,
    /// Output directory. Default: runs/compare-<dataset>-seed<seed>.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// `compare.json`.
#[derive(Debug, Serialize)]
struct CompareJson<'a> {
    dataset: &'a str,
    widths: &'a [usize],
    /// A conv network's layers in `--layers` syntax.
    #[serde(skip_serializing_if = "Option::is_none")]
    layers: Option<String>,
    loss: &'a str,
    batch: usize,
    epochs: usize,
    seed: u64,
    dtype: &'a str,
    /// Every run, AGD first.
    runs: &'a [RunMetrics],
    /// Index into `runs` of the best Adam and best SGD (by final test accuracy).
    best_adam: Option<usize>,
    best_sgd: Option<usize>,
    /// AGD's final test accuracy minus the best baseline's, in percentage points.
    gap_points: Option<f64>,
}

/// Runs the comparison; `Ok(true)` when every AGD run completed.
pub fn run(args: &Args) -> Result<bool, HostError> {
    for &lr in args.adam_lrs.iter().chain(&args.sgd_lrs) {
        check_lr(lr)?;
    }
    match args.run.dtype {
        Dtype::F32 => run_typed::<f32>(args),
        Dtype::F64 => run_typed::<f64>(args),
    }
}

fn best(runs: &[RunMetrics], optimizer: &str) -> Option<usize> {
    runs.iter()
        .enumerate()
        .filter(|(_, r)| r.optimizer == optimizer && r.final_test_accuracy.is_some())
        .max_by(|a, b| {
            let (x, y) = (a.1.final_test_accuracy, b.1.final_test_accuracy);
            x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal)
        })
        .map(|(i, _)| i)
}

fn pct(a: Option<f64>) -> String {
    a.map(|a| format!("{:.2}", 100.0 * a))
        .unwrap_or_else(|| "diverged".into())
}

fn pct_sign(a: Option<f64>) -> String {
    a.map(|a| format!("{:.2} %", 100.0 * a))
        .unwrap_or_else(|| "diverged".into())
}

fn run_typed<T: Element>(args: &Args) -> Result<bool, HostError> {
    let mut optimizers = vec![Optimizer::Agd { gain: 1.0 }];
    optimizers.extend(args.adam_lrs.iter().map(|&lr| Optimizer::Adam { lr }));
    if !args.no_sgd {
        optimizers.extend(args.sgd_lrs.iter().map(|&lr| Optimizer::Sgd { lr }));
    }
    let mut base = args.run.config(optimizers[0]);
    args.run.check_flags()?;
    let data = load::<T>(
        args.run.dataset,
        args.run.data_dir.as_deref(),
        args.run.split,
    )?;
    args.run.apply_network(&mut base, &data)?;
    let name = args.run.dataset.name();
    let dtype = args.run.dtype_name();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("runs/compare-{name}-seed{}", args.run.seed)));
    create_dir(&out)?;
    println!(
        "{name}, network [{}], {} loss, batch {}, {} epochs, seed {}, {dtype}: {} runs",
        RunArgs::network_text(&base),
        base.loss.name(),
        base.batch,
        base.epochs,
        base.seed,
        optimizers.len()
    );
    let mut runs = Vec::with_capacity(optimizers.len());
    for (i, &opt) in optimizers.iter().enumerate() {
        let cfg = TrainConfig {
            optimizer: opt,
            ..base.clone()
        };
        let label = opt.label();
        let mut bar = Bar::new(
            &format!("[{}/{}] {label}", i + 1, optimizers.len()),
            cfg.epochs,
            false,
        );
        let result = train(&data, &cfg, &mut bar);
        bar.finish();
        let run = result?;
        let m = RunMetrics::new(
            name,
            dtype,
            &data.normalisation,
            args.run.split.describe(args.run.dataset),
            &cfg,
            &run,
        );
        let dir = out.join("runs").join(label.replace(' ', "-"));
        write_run(&dir, &m)?;
        println!(
            "{label:<16} final train loss {:<10} test {:>9}  {:6.1} s{}",
            m.train_loss
                .last()
                .map(|l| format!("{l:.4}"))
                .unwrap_or_else(|| "diverged".into()),
            pct_sign(m.final_test_accuracy),
            m.seconds,
            run.failure
                .as_ref()
                .map(|f| format!("  ({f})"))
                .unwrap_or_default()
        );
        runs.push(m);
    }
    let (best_adam, best_sgd) = (best(&runs, "adam"), best(&runs, "sgd"));
    let agd = &runs[0];
    let best_baseline = [best_adam, best_sgd]
        .into_iter()
        .flatten()
        .max_by(|&a, &b| {
            let (x, y) = (runs[a].final_test_accuracy, runs[b].final_test_accuracy);
            x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal)
        });
    let gap = match (agd.final_test_accuracy, best_baseline) {
        (Some(a), Some(b)) => runs[b].final_test_accuracy.map(|b| 100.0 * (a - b)),
        _ => None,
    };

    // compare.md
    let mut md = String::new();
    let _ = writeln!(
        md,
        "{name}, network [{}], {} loss, batch {}, {} epochs, seed {}, {dtype}; same initialisation and batch order for every run.\n",
        RunArgs::network_text(&base),
        base.loss.name(),
        base.batch,
        base.epochs,
        base.seed
    );
    md.push_str("| optimizer | lr | final train loss | final test accuracy (%) | seconds |\n");
    md.push_str("|---|---|---|---|---|\n");
    for (i, r) in runs.iter().enumerate() {
        let mark = if Some(i) == best_adam || Some(i) == best_sgd {
            " (best)"
        } else {
            ""
        };
        let _ = writeln!(
            md,
            "| {}{mark} | {} | {} | {} | {:.1} |",
            r.optimizer,
            r.lr.map(|l| l.to_string()).unwrap_or_else(|| "none".into()),
            if r.failure.is_some() {
                "diverged".to_string()
            } else {
                r.train_loss
                    .last()
                    .map(|l| format!("{l:.4}"))
                    .unwrap_or_default()
            },
            pct(r.final_test_accuracy),
            r.seconds
        );
    }
    let gap_line = match (gap, best_baseline) {
        (Some(g), Some(b)) => format!(
            "AGD {} % vs best tuned baseline ({}) {} %: gap {g:+.2} points",
            pct(agd.final_test_accuracy),
            runs[b].label(),
            pct(runs[b].final_test_accuracy)
        ),
        _ => format!(
            "AGD {} %; no baseline to compare with",
            pct(agd.final_test_accuracy)
        ),
    };
    let _ = writeln!(md, "\n{gap_line}");
    write_text(&out.join("compare.md"), &md)?;

    let json = CompareJson {
        dataset: name,
        widths: &base.widths,
        layers: (!base.layers.is_empty()).then(|| RunArgs::network_text(&base)),
        loss: base.loss.name(),
        batch: base.batch,
        epochs: base.epochs,
        seed: base.seed,
        dtype,
        runs: &runs,
        best_adam,
        best_sgd,
        gap_points: gap,
    };
    let text = serde_json::to_string_pretty(&json)
        .map_err(|e| HostError::Data(format!("compare.json: {e}")))?;
    write_text(&out.join("compare.json"), &(text + "\n"))?;

    let curve = |r: &RunMetrics, color| Series {
        label: format!("{} ({} %)", r.label(), pct(r.final_test_accuracy)),
        color,
        points: r
            .test_accuracy
            .iter()
            .enumerate()
            .map(|(i, &a)| ((i + 1) as f64, 100.0 * a))
            .collect(),
    };
    let mut series = vec![curve(agd, PALETTE[1])];
    if let Some(i) = best_adam {
        series.push(curve(&runs[i], PALETTE[0]));
    }
    if let Some(i) = best_sgd {
        series.push(curve(&runs[i], PALETTE[2]));
    }
    plot_series(
        &out.join("compare.png"),
        &format!(
            "{name} [{}]: test accuracy, AGD vs best Adam and best SGD",
            RunArgs::network_text(&base)
        ),
        "test accuracy (%)",
        &series,
    )?;
    println!("{gap_line}");
    println!(
        "wrote {} (compare.md, compare.json, compare.png, runs/)",
        out.display()
    );
    Ok(agd.failure.is_none())
}
