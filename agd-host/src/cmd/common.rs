//! Flags shared by `agd train` and `agd compare`, and the progress display.

use std::path::PathBuf;

use agd_core::Loss;
use agd_host::HostError;
use agd_host::data::{Dataset, DatasetKind, Split};
use agd_host::train::{EpochRecord, Observer, Optimizer, Progress, TrainConfig};
use indicatif::{ProgressBar, ProgressStyle};

/// Element type of a training run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dtype {
    /// 32-bit floats, as the reference trains.
    F32,
    /// 64-bit floats.
    F64,
}

/// The loss on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LossArg {
    /// Cross-entropy.
    Xent,
    /// Square loss against `onehot·sqrt(C)`.
    Mse,
}

impl From<LossArg> for Loss {
    fn from(l: LossArg) -> Loss {
        match l {
            LossArg::Xent => Loss::Xent,
            LossArg::Mse => Loss::Mse,
        }
    }
}

/// Dataset, network and schedule: everything a run needs besides its optimiser.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Dataset to train on.
    #[arg(long, value_enum, default_value = "digits")]
    pub dataset: DatasetKind,
    /// Directory holding the dataset's IDX files (raw or .gz). Default: the repo's
    /// data/digits or data/breast_cancer; for MNIST ../shared/data/mnist.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Train/test split of digits: `seeded` (this project's, the firmware's) or `reference`
    /// (the reference implementation's, numpy `default_rng(0).permutation(1797)`, to compare
    /// with its published accuracy). MNIST and `idx` keep their files' split.
    #[arg(long, value_enum, default_value = "seeded")]
    pub split: Split,
    /// Layer widths d_0,…,d_L (d_0 = inputs, d_L = classes). Default: digits 64,128,128,10;
    /// mnist 784,256,256,10; breast-cancer 30,64,64,2.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub widths: Option<Vec<usize>>,
    /// Conv and dense layers instead of --widths, e.g. conv16k3p1,conv32k3s2p1,dense10:
    /// conv<channels>k<kernel>[s<stride>][p<padding>] (stride 1, padding 0 by default) or
    /// dense<width>. The input shape is the dataset's (mnist 1x28x28, digits 1x8x8); a dense
    /// layer flattens what comes into it; the last layer gives the classes.
    #[arg(long, value_name = "SPEC")]
    pub layers: Option<String>,
    /// Loss. The default is the square loss, as in the reference code (on digits it also
    /// generalises better: about 98 % test against about 96.5 % for xent).
    #[arg(long, value_enum, default_value = "mse")]
    pub loss: LossArg,
    /// Samples per batch (the last batch of an epoch may be smaller).
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Passes over the training set. Default: digits 50, mnist 20, breast-cancer 50.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Seed of the initialisation and the batch order.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub seed: u64,
    /// Element type.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: Dtype,
    /// Skip (and count) a batch whose step refuses because of a NaN or infinity, instead of
    /// stopping the run with exit code 2.
    #[arg(long)]
    pub skip_bad_batches: bool,
    /// Threads, dense or conv network (batch-parallel: each thread runs the forward and backward
    /// pass of a slice of the batch, one update combines them). Results differ from one
    /// thread's by the rounding of the gradient sum.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
}

impl RunArgs {
    /// The run configuration for an optimiser, with the dataset's defaults filled in.
    pub fn config(&self, optimizer: Optimizer) -> TrainConfig {
        TrainConfig {
            widths: self
                .widths
                .clone()
                .unwrap_or_else(|| self.dataset.default_widths()),
            loss: self.loss.into(),
            batch: self.batch,
            epochs: self.epochs.unwrap_or_else(|| self.dataset.default_epochs()),
            seed: self.seed,
            layers: Vec::new(),
            optimizer,
            skip_bad_batches: self.skip_bad_batches,
            threads: usize::from(self.threads),
        }
    }

    /// Refuses what the flags alone show to be wrong, before any data is read: --widths
    /// together with --layers, a zero --batch or --epochs.
    pub fn check_flags(&self) -> Result<(), HostError> {
        if self.widths.is_some() && self.layers.is_some() {
            return Err(HostError::Usage(
                "give --widths (dense) or --layers (conv), not both".into(),
            ));
        }
        if self.batch == 0 {
            return Err(HostError::Usage("--batch must be at least 1".into()));
        }
        if self.epochs == Some(0) {
            return Err(HostError::Usage("--epochs must be at least 1".into()));
        }
        Ok(())
    }

    /// Sets `cfg`'s network from the flags and the loaded data: `--layers` parsed against the
    /// data's input shape and classes (`widths` then hold the features between layers), else
    /// `--widths` or the data's default widths.
    pub fn apply_network<T>(
        &self,
        cfg: &mut TrainConfig,
        data: &Dataset<T>,
    ) -> Result<(), HostError> {
        self.check_flags()?;
        if let Some(text) = &self.layers {
            cfg.layers = agd_host::layers::parse(text, data.input_shape(), data.classes())?;
            cfg.widths = agd_host::layers::features(&cfg.layers);
        } else {
            if self.widths.is_none() {
                cfg.widths = data.default_widths();
            }
            agd_host::train::check_widths(&cfg.widths, data)?;
        }
        Ok(())
    }

    /// The network as the logs show it: `784,256,256,10` or the `--layers` text.
    pub fn network_text(cfg: &TrainConfig) -> String {
        if cfg.layers.is_empty() {
            widths_text(&cfg.widths)
        } else {
            agd_host::layers::layers_text(&cfg.layers)
        }
    }

    /// `f32` or `f64`.
    pub fn dtype_name(&self) -> &'static str {
        match self.dtype {
            Dtype::F32 => "f32",
            Dtype::F64 => "f64",
        }
    }
}

/// Refuses a learning rate that is not finite and positive.
pub fn check_lr(lr: f64) -> Result<f64, HostError> {
    if lr.is_finite() && lr > 0.0 {
        Ok(lr)
    } else {
        Err(HostError::Usage(format!(
            "--lr {lr}: a learning rate must be finite and positive"
        )))
    }
}

/// `784,256,256,10`.
pub fn widths_text(widths: &[usize]) -> String {
    widths
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// A progress bar (on stderr, hidden when it is not a terminal) and, optionally, one summary
/// line per epoch on stdout.
pub struct Bar {
    bar: ProgressBar,
    epochs: usize,
    epoch_lines: bool,
}

impl Bar {
    /// A bar for a run of `epochs` epochs, labelled `prefix`.
    pub fn new(prefix: &str, epochs: usize, epoch_lines: bool) -> Self {
        let bar = ProgressBar::new(1);
        let style = ProgressStyle::with_template(
            "{prefix} [{bar:30.cyan/blue}] {pos:>4}/{len:4} {msg} ({elapsed})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(prefix.to_string());
        Bar {
            bar,
            epochs,
            epoch_lines,
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    /// Prints a line above the bar.
    pub fn println(&self, line: &str) {
        self.bar.suspend(|| println!("{line}"));
    }
}

impl Observer for Bar {
    fn on_step(&mut self, p: &Progress) {
        if p.step == 1 {
            self.bar.set_length(p.steps as u64);
        }
        self.bar.set_position(p.step as u64);
        let eta = p.eta.map(|e| format!(" η {e:.4}")).unwrap_or_default();
        self.bar.set_message(format!(
            "epoch {}/{} loss {:.4} acc {:.2} %{eta}",
            p.epoch,
            self.epochs,
            p.loss,
            100.0 * p.accuracy
        ));
    }

    fn on_epoch(&mut self, r: &EpochRecord) {
        if self.epoch_lines {
            let eta = r.eta.map(|e| format!("  η {e:.4}")).unwrap_or_default();
            self.println(&format!(
                "epoch {:>3}/{}  train loss {:.4}  train {:6.2} %  test {:6.2} %{eta}  {:.2} s",
                r.epoch,
                self.epochs,
                r.train_loss,
                100.0 * r.train_accuracy,
                100.0 * r.test_accuracy,
                r.seconds
            ));
        }
    }
}
