//! `agd train`: train one network on one dataset, with AGD (no learning rate) or a baseline.

use std::path::PathBuf;

use agd_core::Element;
use agd_host::HostError;
use agd_host::data::load;
use agd_host::report::{RunMetrics, write_run};
use agd_host::train::{Optimizer, TrainedNet, train_net};

use crate::cmd::common::{Bar, Dtype, RunArgs, check_lr};

/// The optimiser on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OptimizerArg {
    /// Automatic Gradient Descent: no learning rate.
    Agd,
    /// Adam (β1 0.9, β2 0.999, ε 1e-8); needs --lr.
    Adam,
    /// Plain SGD; needs --lr.
    Sgd,
}

/// Arguments of `agd train`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    run: RunArgs,
    /// Optimiser.
    #[arg(long, value_enum, default_value = "agd")]
    optimizer: OptimizerArg,
    /// Learning rate of a baseline (required for adam and sgd; AGD has none).
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// AGD's gain (default 1).
    #[arg(long, allow_negative_numbers = true)]
    gain: Option<f64>,
    /// Output directory. Default: runs/<dataset>-<optimizer>[-lr<lr>]-seed<seed>.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Save the trained network to this checkpoint file when the run completes (written
    /// atomically: a failed or interrupted run leaves any previous file intact). Evaluate it
    /// with `agd eval --load FILE`.
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,
}

/// The optimiser the flags ask for, or why they are inconsistent.
pub fn optimizer(
    kind: OptimizerArg,
    lr: Option<f64>,
    gain: Option<f64>,
) -> Result<Optimizer, HostError> {
    match (kind, lr, gain) {
        (OptimizerArg::Agd, Some(_), _) => Err(HostError::Usage(
            "--lr is for --optimizer adam|sgd: AGD has no learning rate".into(),
        )),
        (OptimizerArg::Agd, None, gain) => {
            let gain = gain.unwrap_or(1.0);
            if gain.is_finite() && gain > 0.0 {
                Ok(Optimizer::Agd { gain })
            } else {
                Err(HostError::Usage(format!(
                    "--gain {gain}: the gain must be finite and positive"
                )))
            }
        }
        (_, _, Some(_)) => Err(HostError::Usage(
            "--gain is AGD's; baselines take --lr".into(),
        )),
        (_, None, None) => Err(HostError::Usage(format!(
            "--optimizer {} needs --lr (AGD does not: try --optimizer agd)",
            if kind == OptimizerArg::Adam {
                "adam"
            } else {
                "sgd"
            }
        ))),
        (OptimizerArg::Adam, Some(lr), None) => Ok(Optimizer::Adam { lr: check_lr(lr)? }),
        (OptimizerArg::Sgd, Some(lr), None) => Ok(Optimizer::Sgd { lr: check_lr(lr)? }),
    }
}

/// Trains; `Ok(false)` when training stopped early (e.g. a diverged baseline), after writing
/// what it did.
pub fn run(args: &Args) -> Result<bool, HostError> {
    let opt = optimizer(args.optimizer, args.lr, args.gain)?;
    match args.run.dtype {
        Dtype::F32 => run_typed::<f32>(args, opt),
        Dtype::F64 => run_typed::<f64>(args, opt),
    }
}

fn run_typed<T: Element>(args: &Args, opt: Optimizer) -> Result<bool, HostError> {
    let mut cfg = args.run.config(opt);
    args.run.check_flags()?;
    if let Some(save) = &args.save {
        agd_host::checkpoint_file::check_writable(save)?;
    }
    let data = load::<T>(
        args.run.dataset,
        args.run.data_dir.as_deref(),
        args.run.split,
    )?;
    args.run.apply_network(&mut cfg, &data)?;
    let name = args.run.dataset.name();
    let out = args.out.clone().unwrap_or_else(|| {
        let lr = opt.lr().map(|lr| format!("-lr{lr}")).unwrap_or_default();
        PathBuf::from(format!(
            "runs/{name}-{}{lr}-seed{}",
            opt.name(),
            args.run.seed
        ))
    });
    println!(
        "{name}: {} train / {} test (split: {}), inputs {}",
        data.train_y.len(),
        data.test_y.len(),
        args.run.split.describe(args.run.dataset),
        data.normalisation
    );
    println!(
        "network [{}], {} loss, {}, batch {}, {} epochs, seed {}, {}",
        RunArgs::network_text(&cfg),
        cfg.loss.name(),
        opt.label(),
        cfg.batch,
        cfg.epochs,
        cfg.seed,
        args.run.dtype_name()
    );
    let mut bar = Bar::new(opt.name(), cfg.epochs, true);
    let result = train_net(&data, &cfg, &mut bar);
    bar.finish();
    let mut trained = result?;
    let run = &mut trained.run;
    let metrics = RunMetrics::new(
        name,
        args.run.dtype_name(),
        &data.normalisation,
        args.run.split.describe(args.run.dataset),
        &cfg,
        run,
    );
    write_run(&out, &metrics)?;
    if run.skipped_batches > 0 {
        println!("skipped {} bad batches", run.skipped_batches);
    }
    if let Some(failure) = run.failure.take() {
        println!(
            "wrote {} (metrics.json, metrics.csv, curves.png; the run stopped early)",
            out.display()
        );
        // A diverged baseline is a result (exit 1); a bad batch is bad input (exit 2).
        if matches!(failure, HostError::Training { .. }) {
            eprintln!("error: {failure}");
            return Ok(false);
        }
        return Err(failure);
    }
    let acc = metrics.final_test_accuracy.unwrap_or(f64::NAN);
    println!(
        "final test accuracy {:.2} % ({} epochs, {:.1} s)",
        100.0 * acc,
        cfg.epochs,
        run.seconds
    );
    println!(
        "wrote {} (metrics.json, metrics.csv, curves.png)",
        out.display()
    );
    if let Some(save) = &args.save {
        match &mut trained.net {
            TrainedNet::Dense(net) => agd_host::checkpoint_file::save(save, net, trained.progress)?,
            TrainedNet::Conv(net) => {
                agd_host::checkpoint_file::save_conv(save, net, trained.progress)?
            }
        }
        println!("saved checkpoint {}", save.display());
    }
    Ok(true)
}
