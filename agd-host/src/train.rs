//! The training loop: a run-time-sized network on a dataset, trained with AGD (no learning
//! rate) or a baseline (SGD, Adam), evaluated on the test set after every epoch.
//!
//! Every epoch visits the training set in a fresh order (Fisher–Yates from the run's seeded
//! RNG) in batches of `batch`, the last one partial if `batch` does not divide the set. The
//! same seed gives the same orthogonal initialisation and the same batch orders whatever the
//! optimiser, so a comparison differs in the optimiser only.

use std::time::Instant;

use agd_core::spec::LayerSpec;
use agd_core::{Agd, ConvNetwork, Element, Loss, Network, SplitMix64};
use serde::Serialize;

use crate::HostError;
use crate::baseline::{Adam, Sgd};
use crate::data::{Dataset, shuffle};
use crate::net::{HostConvNet, HostNet};
use crate::parallel::DataParallel;

/// Which optimiser trains the network.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Optimizer {
    /// Automatic Gradient Descent; `gain` is 1 unless asked otherwise.
    Agd {
        /// The gain.
        gain: f64,
    },
    /// Adam with the usual β1, β2, ε (see [`crate::baseline::Adam`]).
    Adam {
        /// The learning rate.
        lr: f64,
    },
    /// Plain SGD.
    Sgd {
        /// The learning rate.
        lr: f64,
    },
}

impl Optimizer {
    /// `agd`, `adam` or `sgd`.
    pub fn name(&self) -> &'static str {
        match self {
            Optimizer::Agd { .. } => "agd",
            Optimizer::Adam { .. } => "adam",
            Optimizer::Sgd { .. } => "sgd",
        }
    }

    /// The learning rate of a baseline (`None` for AGD, which has none).
    pub fn lr(&self) -> Option<f64> {
        match *self {
            Optimizer::Agd { .. } => None,
            Optimizer::Adam { lr } | Optimizer::Sgd { lr } => Some(lr),
        }
    }

    /// AGD's gain (`None` for a baseline).
    pub fn gain(&self) -> Option<f64> {
        match *self {
            Optimizer::Agd { gain } => Some(gain),
            _ => None,
        }
    }

    /// `agd`, `adam lr 0.001`, …
    pub fn label(&self) -> String {
        match *self {
            Optimizer::Agd { gain: 1.0 } => "agd".to_string(),
            Optimizer::Agd { gain } => format!("agd gain {gain}"),
            Optimizer::Adam { lr } | Optimizer::Sgd { lr } => format!("{} lr {lr}", self.name()),
        }
    }
}

/// Everything that defines a training run besides the data.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// Widths `[d_0, …, d_L]`; `d_0` must be the data's input size, `d_L` its class count.
    /// With `layers`, the features between those layers ([`crate::layers::features`]).
    pub widths: Vec<usize>,
    /// Conv and dense layers ([`crate::layers`]); empty for a dense network of `widths`.
    pub layers: Vec<LayerSpec>,
    /// The loss.
    pub loss: Loss,
    /// Samples per batch (the last batch of an epoch may be smaller).
    pub batch: usize,
    /// Passes over the training set.
    pub epochs: usize,
    /// Seed of the initialisation and of the batch order.
    pub seed: u64,
    /// The optimiser.
    pub optimizer: Optimizer,
    /// Skip a batch whose step refuses because of a NaN or infinity (in its inputs, loss,
    /// gradient or update) instead of stopping the run; the weights are left as they were.
    pub skip_bad_batches: bool,
    /// Threads for the forward and backward passes (batch-parallel, see
    /// [`crate::parallel::DataParallel`]); 1 runs the single-threaded core directly.
    pub threads: usize,
}

/// What one epoch did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EpochRecord {
    /// Epoch, from 1.
    pub epoch: usize,
    /// Mean loss over the epoch's training samples, each measured in its batch's forward pass
    /// before that batch's step.
    pub train_loss: f64,
    /// Fraction of the epoch's training samples classified correctly, measured the same way.
    pub train_accuracy: f64,
    /// Fraction of the test set classified correctly after the epoch.
    pub test_accuracy: f64,
    /// AGD: mean η over the epoch's steps (`None` for a baseline).
    pub eta: Option<f64>,
    /// Seconds of training in this epoch (the test evaluation excluded).
    pub seconds: f64,
}

/// Where training is, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Epoch, from 1.
    pub epoch: usize,
    /// Step within the epoch, from 1.
    pub step: usize,
    /// Steps per epoch.
    pub steps: usize,
    /// Mean training loss of the epoch so far.
    pub loss: f64,
    /// Training accuracy (fraction) of the epoch so far.
    pub accuracy: f64,
    /// AGD: this step's η.
    pub eta: Option<f64>,
}

/// Receives progress while a run trains (a progress bar, a log, nothing).
pub trait Observer {
    /// After every step.
    fn on_step(&mut self, _progress: &Progress) {}
    /// After every epoch's evaluation.
    fn on_epoch(&mut self, _record: &EpochRecord) {}
}

/// An observer that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Observer for Silent {}

/// The result of a run: every completed epoch, and why it stopped early, if it did.
#[derive(Debug)]
pub struct Run {
    /// Completed epochs.
    pub epochs: Vec<EpochRecord>,
    /// Wall-clock seconds of the whole run (training and evaluation).
    pub seconds: f64,
    /// Set when a step refused (e.g. a baseline whose loss became non-finite): the run stopped
    /// there and the weights are those before the refused step.
    pub failure: Option<HostError>,
    /// Batches skipped as bad (only with [`TrainConfig::skip_bad_batches`]).
    pub skipped_batches: usize,
}

impl Run {
    /// Test accuracy after the last completed epoch (`None` if the run failed, or ran no epoch).
    pub fn final_test_accuracy(&self) -> Option<f64> {
        if self.failure.is_some() {
            None
        } else {
            self.epochs.last().map(|e| e.test_accuracy)
        }
    }
}

/// Checks that the widths fit the data: every width at least 1, `d_0` = inputs, `d_L` =
/// classes.
pub fn check_widths<T>(widths: &[usize], data: &Dataset<T>) -> Result<(), HostError> {
    let shown = widths
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",");
    if widths.contains(&0) {
        return Err(HostError::Usage(format!(
            "--widths {shown}: every width must be at least 1"
        )));
    }
    match (widths.first(), widths.last()) {
        (Some(&d0), Some(&dl)) if widths.len() >= 2 => {
            if d0 != data.inputs() || dl != data.classes() {
                return Err(HostError::Usage(format!(
                    "--widths {shown} does not fit {}: the first width must be its {} inputs \
                     and the last its {} classes",
                    data.kind.name(),
                    data.inputs(),
                    data.classes()
                )));
            }
            Ok(())
        }
        _ => Err(HostError::Usage(format!(
            "--widths {shown}: a network needs at least two widths"
        ))),
    }
}

enum Stepper<T> {
    Agd(Agd<T>),
    Adam(Adam<T>),
    Sgd(Sgd),
}

/// A baseline's update of the weights from the gradients.
pub type Update<'a, T> = dyn FnMut(&mut [T], &[T]) -> Result<(), agd_core::Error> + 'a;

/// What the training loop needs of a network: the dense [`HostNet`] and the conv
/// [`HostConvNet`] both run their steps through agd-core, so one loop trains either.
pub trait TrainNet<T: Element> {
    /// Most samples per batch.
    fn capacity(&self) -> usize;
    /// Input features per sample.
    fn inputs(&self) -> usize;
    /// Number of weights.
    fn param_count(&self) -> usize;
    /// Orthogonal initialisation of every layer.
    fn init_orthogonal(&mut self, rng: &mut SplitMix64);
    /// The first `batch` samples of the input block, to fill in place.
    fn input_mut(&mut self, batch: usize) -> Result<&mut [T], agd_core::Error>;
    /// An AGD training step on the batch in the input block: `(loss, correct, η)`.
    fn agd_step(
        &mut self,
        agd: &Agd<T>,
        loss: Loss,
        targets: &[usize],
    ) -> Result<(T, usize, T), agd_core::Error>;
    /// Forward, loss and backward on the batch in the input block, then `update(weights,
    /// gradients)`: `(loss, correct)`.
    fn grad_step(
        &mut self,
        loss: Loss,
        targets: &[usize],
        update: &mut Update<'_, T>,
    ) -> Result<(T, usize), agd_core::Error>;
    /// Forward pass of `samples` (a whole number of samples, at most the capacity); returns
    /// how many of `targets` it predicts.
    fn count_correct(&mut self, samples: &[T], targets: &[usize])
    -> Result<usize, agd_core::Error>;
    /// [`TrainNet::count_correct`], and the mean `loss` over the samples.
    fn score(
        &mut self,
        samples: &[T],
        targets: &[usize],
        loss: Loss,
    ) -> Result<(usize, T), agd_core::Error>;
}

/// The one [`TrainNet`] implementation of a host network whose steps run through its
/// agd-core view ([`agd_core::NetMut`] or [`agd_core::ConvNetMut`], whose methods of the same
/// names do the same). The views are distinct types with inherent methods, hence a macro
/// rather than a generic impl. `$inputs` gives the input features of `$net_ref`, `$split`
/// splits `$view` into its weights (mutable) and gradients.
macro_rules! train_net_through_view {
    ($net:ident, |$net_ref:ident| $inputs:expr, |$view:ident| $split:expr) => {
        impl<T: Element> TrainNet<T> for $net<T> {
            fn capacity(&self) -> usize {
                $net::capacity(self)
            }
            fn inputs(&self) -> usize {
                let $net_ref = self;
                $inputs
            }
            fn param_count(&self) -> usize {
                self.weights().len()
            }
            fn init_orthogonal(&mut self, rng: &mut SplitMix64) {
                self.view().init_orthogonal(rng);
            }
            fn input_mut(&mut self, batch: usize) -> Result<&mut [T], agd_core::Error> {
                $net::input_mut(self, batch)
            }
            fn agd_step(
                &mut self,
                agd: &Agd<T>,
                loss: Loss,
                targets: &[usize],
            ) -> Result<(T, usize, T), agd_core::Error> {
                let r = self.view().train_step(agd, loss, targets)?;
                Ok((r.loss, r.correct, r.step.eta))
            }
            fn grad_step(
                &mut self,
                loss: Loss,
                targets: &[usize],
                update: &mut Update<'_, T>,
            ) -> Result<(T, usize), agd_core::Error> {
                let mut $view = self.view();
                let (l, c) = $view.compute_grads(loss, targets)?;
                let (w, g) = $split;
                update(w, g)?;
                Ok((l, c))
            }
            fn count_correct(
                &mut self,
                samples: &[T],
                targets: &[usize],
            ) -> Result<usize, agd_core::Error> {
                let mut view = self.view();
                view.set_input(samples)?;
                view.forward(targets.len())?;
                Ok(view.count_correct(targets))
            }
            fn score(
                &mut self,
                samples: &[T],
                targets: &[usize],
                loss: Loss,
            ) -> Result<(usize, T), agd_core::Error> {
                // The loss reads the outputs the forward pass left in the buffers.
                let correct = TrainNet::count_correct(self, samples, targets)?;
                Ok((correct, self.view().loss_grad(loss, targets)?))
            }
        }
    };
}

train_net_through_view!(HostNet, |net| net.widths()[0], |view| {
    let (_, w, g) = view.step_parts();
    (w, g)
});
train_net_through_view!(HostConvNet, |net| net.layers()[0].in_features(), |view| {
    view.weights_and_grads()
});

/// Forward passes over `x` in batches of the network's capacity; returns the fraction of
/// `y` predicted correctly.
pub fn evaluate<T: Element, N: TrainNet<T>>(
    net: &mut N,
    x: &[T],
    y: &[usize],
) -> Result<f64, HostError> {
    let (d, cap) = (net.inputs(), net.capacity());
    let mut correct = 0;
    for (xs, ys) in x.chunks(cap * d).zip(y.chunks(cap)) {
        correct += net.count_correct(xs, ys)?;
    }
    Ok(correct as f64 / y.len().max(1) as f64)
}

/// Checks that the layers of a conv run fit the data (the CLI parses them against the
/// dataset's shape already; this guards a hand-made config).
fn check_layers<T>(layers: &[LayerSpec], data: &Dataset<T>) -> Result<(), HostError> {
    let text = crate::layers::layers_text(layers);
    agd_core::spec::SpecLayout::new(layers)
        .map_err(|e| HostError::Usage(format!("--layers {text}: {e}")))?;
    let (first, last) = (
        layers[0].in_features(),
        layers[layers.len() - 1].out_features(),
    );
    if first != data.inputs() || last != data.classes() {
        return Err(HostError::Usage(format!(
            "--layers {text} does not fit {}: it reads {first} inputs and gives {last} outputs, \
             the data has {} inputs and {} classes",
            data.kind.name(),
            data.inputs(),
            data.classes()
        )));
    }
    Ok(())
}

/// Whether a step's refusal is about a NaN or infinity (the batch's inputs, loss, gradient
/// or update) rather than a bug in sizes: what `--skip-bad-batches` skips.
fn is_bad_batch(e: &agd_core::Error) -> bool {
    use agd_core::Error as E;
    matches!(
        e,
        E::NonFiniteInput { .. }
            | E::NonFiniteLoss
            | E::NonFiniteGradient { .. }
            | E::NonFiniteStep
            | E::WeightOverflow { .. }
    )
}

/// The network a run trained.
#[derive(Debug)]
pub enum TrainedNet<T> {
    /// A dense network (`--widths`).
    Dense(HostNet<T>),
    /// A conv network (`--layers`).
    Conv(HostConvNet<T>),
}

/// A trained network and where its training stands, for a checkpoint.
#[derive(Debug)]
pub struct Trained<T> {
    /// The run's records.
    pub run: Run,
    /// The network after the run (before the refused step, if one refused).
    pub net: TrainedNet<T>,
    /// Steps taken and the state of the data-order RNG.
    pub progress: agd_core::checkpoint::Progress,
}

/// Trains as `cfg` says and evaluates after every epoch. Bad settings are an `Err`; a step
/// that refuses mid-run ends the run early with [`Run::failure`] set.
pub fn train<T: Element>(
    data: &Dataset<T>,
    cfg: &TrainConfig,
    observer: &mut dyn Observer,
) -> Result<Run, HostError> {
    train_net(data, cfg, observer).map(|t| t.run)
}

/// [`train`], also returning the network and its progress (for `agd train --save`): a
/// [`HostNet`] of `cfg.widths`, or a [`HostConvNet`] of `cfg.layers` when there are any,
/// both trained by the same loop.
///
/// A step that refuses ends the run with [`Run::failure`]: [`HostError::BadBatch`] for a NaN
/// or infinity under AGD (whose steps are bounded, so the batch is to blame) or in a batch's
/// inputs, [`HostError::Training`] for a baseline whose loss or gradient became non-finite
/// (it diverged). With [`TrainConfig::skip_bad_batches`] such a batch is skipped and counted
/// instead — its samples count neither in the epoch's loss nor its accuracy — and the run
/// stops only if a whole epoch was skipped.
pub fn train_net<T: Element>(
    data: &Dataset<T>,
    cfg: &TrainConfig,
    observer: &mut dyn Observer,
) -> Result<Trained<T>, HostError> {
    if cfg.layers.is_empty() {
        check_widths(&cfg.widths, data)?;
    } else {
        check_layers(&cfg.layers, data)?;
    }
    if cfg.batch == 0 {
        return Err(HostError::Usage("--batch must be at least 1".into()));
    }
    if cfg.epochs == 0 {
        return Err(HostError::Usage("--epochs must be at least 1".into()));
    }
    let n = data.train_y.len();
    if n == 0 || data.test_y.is_empty() {
        return Err(HostError::Data(format!(
            "{}: empty training or test set",
            data.kind.name()
        )));
    }
    if cfg.threads == 0 {
        return Err(HostError::Usage("--threads must be at least 1".into()));
    }
    match (cfg.layers.is_empty(), cfg.threads > 1) {
        (true, true) => {
            let par = DataParallel::<T>::new(&cfg.widths, cfg.batch, cfg.threads)?;
            train_into(par, data, cfg, observer, |p| {
                TrainedNet::Dense(p.into_net())
            })
        }
        (false, true) => {
            let par = DataParallel::new_conv(&cfg.layers, cfg.batch, cfg.threads)?;
            train_into(par, data, cfg, observer, |p| TrainedNet::Conv(p.into_net()))
        }
        (true, false) => {
            let net = HostNet::<T>::new(&cfg.widths, cfg.batch, true)?;
            train_into(net, data, cfg, observer, TrainedNet::Dense)
        }
        (false, false) => {
            let net = HostConvNet::<T>::new(&cfg.layers, cfg.batch)?;
            train_into(net, data, cfg, observer, TrainedNet::Conv)
        }
    }
}

/// [`train_loop`] on `net`, keeping what `keep` makes of it (copy 0 of a batch-parallel
/// network).
fn train_into<T: Element, N: TrainNet<T>>(
    mut net: N,
    data: &Dataset<T>,
    cfg: &TrainConfig,
    observer: &mut dyn Observer,
    keep: impl FnOnce(N) -> TrainedNet<T>,
) -> Result<Trained<T>, HostError> {
    let (run, progress) = train_loop(&mut net, data, cfg, observer)?;
    Ok(Trained {
        run,
        net: keep(net),
        progress,
    })
}

/// The training loop proper, for any [`TrainNet`] of capacity `cfg.batch` (checked by
/// [`train_net`]).
fn train_loop<T: Element, N: TrainNet<T>>(
    net: &mut N,
    data: &Dataset<T>,
    cfg: &TrainConfig,
    observer: &mut dyn Observer,
) -> Result<(Run, agd_core::checkpoint::Progress), HostError> {
    let start = Instant::now();
    let n = data.train_y.len();
    let d = data.inputs();
    let mut rng = SplitMix64::new(cfg.seed);
    net.init_orthogonal(&mut rng);
    let mut stepper = match cfg.optimizer {
        Optimizer::Agd { gain } => Stepper::Agd(Agd::with_gain(T::from_f64(gain))?),
        Optimizer::Adam { lr } => Stepper::Adam(Adam::new(lr, net.param_count())),
        Optimizer::Sgd { lr } => Stepper::Sgd(Sgd { lr }),
    };
    let steps = n.div_ceil(cfg.batch);
    let mut order: Vec<usize> = (0..n).collect();
    let mut targets = Vec::with_capacity(cfg.batch);
    let mut epochs = Vec::with_capacity(cfg.epochs);
    let (mut taken, mut skipped) = (0u64, 0usize);
    let mut failure = None;
    'epochs: for epoch in 1..=cfg.epochs {
        let epoch_start = Instant::now();
        shuffle(&mut order, &mut rng);
        let (mut loss_sum, mut correct, mut seen, mut eta_sum) = (0.0, 0usize, 0usize, 0.0);
        let mut done = 0usize;
        for (s, rows) in order.chunks(cfg.batch).enumerate() {
            let input = net.input_mut(rows.len())?;
            for (dst, &r) in input.chunks_exact_mut(d).zip(rows) {
                dst.copy_from_slice(&data.train_x[r * d..(r + 1) * d]);
            }
            targets.clear();
            targets.extend(rows.iter().map(|&r| data.train_y[r]));
            let stepped: Result<(T, usize, Option<f64>), agd_core::Error> = match &mut stepper {
                Stepper::Agd(agd) => net
                    .agd_step(agd, cfg.loss, &targets)
                    .map(|(l, c, eta)| (l, c, Some(eta.to_f64()))),
                Stepper::Adam(adam) => net
                    .grad_step(cfg.loss, &targets, &mut |w, g| adam.step(w, g))
                    .map(|(l, c)| (l, c, None)),
                Stepper::Sgd(sgd) => net
                    .grad_step(cfg.loss, &targets, &mut |w, g| sgd.step(w, g))
                    .map(|(l, c)| (l, c, None)),
            };
            let (loss, ok, eta) = match stepped {
                Ok(v) => v,
                Err(source) if cfg.skip_bad_batches && is_bad_batch(&source) => {
                    skipped += 1;
                    continue;
                }
                Err(source) => {
                    let baseline = !matches!(stepper, Stepper::Agd(_));
                    failure = Some(match source {
                        agd_core::Error::NonFiniteInput { sample } => HostError::BadBatch {
                            epoch,
                            step: s + 1,
                            sample: rows.get(sample).copied(),
                            source,
                        },
                        _ if baseline || !is_bad_batch(&source) => HostError::Training {
                            epoch,
                            step: s + 1,
                            source,
                        },
                        _ => HostError::BadBatch {
                            epoch,
                            step: s + 1,
                            sample: None,
                            source,
                        },
                    });
                    break 'epochs;
                }
            };
            taken += 1;
            done += 1;
            loss_sum += loss.to_f64() * rows.len() as f64;
            correct += ok;
            seen += rows.len();
            eta_sum += eta.unwrap_or(0.0);
            observer.on_step(&Progress {
                epoch,
                step: s + 1,
                steps,
                loss: loss_sum / seen as f64,
                accuracy: correct as f64 / seen as f64,
                eta,
            });
        }
        if seen == 0 {
            failure = Some(HostError::AllSkipped { epoch });
            break;
        }
        let seconds = epoch_start.elapsed().as_secs_f64();
        let test_accuracy = match evaluate(net, &data.test_x, &data.test_y) {
            Ok(a) => a,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        let record = EpochRecord {
            epoch,
            train_loss: loss_sum / seen as f64,
            train_accuracy: correct as f64 / seen as f64,
            test_accuracy,
            eta: matches!(stepper, Stepper::Agd(_)).then(|| eta_sum / done as f64),
            seconds,
        };
        observer.on_epoch(&record);
        epochs.push(record);
    }
    Ok((
        Run {
            epochs,
            seconds: start.elapsed().as_secs_f64(),
            failure,
            skipped_batches: skipped,
        },
        agd_core::checkpoint::Progress {
            step: taken,
            rng: rng.state(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{DatasetKind, load};

    fn tiny_digits() -> Dataset<f32> {
        let mut d = load::<f32>(DatasetKind::Digits, None, crate::data::Split::Seeded).unwrap();
        d.train_x.truncate(300 * 64);
        d.train_y.truncate(300);
        d
    }

    fn config(optimizer: Optimizer) -> TrainConfig {
        TrainConfig {
            widths: vec![64, 32, 10],
            layers: Vec::new(),
            loss: Loss::Xent,
            batch: 64,
            epochs: 2,
            seed: 3,
            optimizer,
            skip_bad_batches: false,
            threads: 1,
        }
    }

    #[test]
    fn same_seed_same_run_and_partial_batches_counted() {
        let data = tiny_digits();
        let cfg = config(Optimizer::Agd { gain: 1.0 });
        let a = train(&data, &cfg, &mut Silent).unwrap();
        let b = train(&data, &cfg, &mut Silent).unwrap();
        assert!(a.failure.is_none());
        assert_eq!(a.epochs.len(), 2);
        for (x, y) in a.epochs.iter().zip(&b.epochs) {
            assert_eq!(x.train_loss, y.train_loss);
            assert_eq!(x.test_accuracy, y.test_accuracy);
        }
        // 300 samples in batches of 64: 4 full and one of 44, all counted.
        let acc = a.epochs[0].train_accuracy * 300.0;
        assert!((acc - acc.round()).abs() < 1e-9);
        assert!(a.epochs[0].eta.unwrap() > 0.0);
    }

    /// Batch-parallel training takes the same steps as one thread, up to the rounding of the
    /// gradient sum (f64 here, so that rounding stays near 1e-16 after 10 steps), for AGD
    /// and for a baseline, dense and conv; three threads cut a batch of 64 into 22 + 22 + 20
    /// and the last batch of 44 into 15 + 15 + 14.
    #[test]
    fn threads_train_like_one_thread() {
        let mut data = load::<f64>(DatasetKind::Digits, None, crate::data::Split::Seeded).unwrap();
        data.train_x.truncate(300 * 64);
        data.train_y.truncate(300);
        let conv = crate::layers::parse("conv3k3p1,conv4k3s2p1,dense10", [1, 8, 8], 10).unwrap();
        for (optimizer, layers) in [
            (Optimizer::Agd { gain: 1.0 }, Vec::new()),
            (Optimizer::Adam { lr: 1e-3 }, Vec::new()),
            (Optimizer::Agd { gain: 1.0 }, conv.clone()),
            (Optimizer::Adam { lr: 1e-3 }, conv),
        ] {
            let cfg = TrainConfig {
                layers,
                ..config(optimizer)
            };
            let one = train(&data, &cfg, &mut Silent).unwrap();
            let cfg = TrainConfig { threads: 3, ..cfg };
            let three = train(&data, &cfg, &mut Silent).unwrap();
            assert!(one.failure.is_none() && three.failure.is_none());
            for (a, b) in one.epochs.iter().zip(&three.epochs) {
                let rel = (a.train_loss - b.train_loss).abs() / a.train_loss;
                assert!(
                    rel < 1e-9,
                    "{optimizer:?}, {:?}: loss {} vs {}",
                    cfg.layers,
                    a.train_loss,
                    b.train_loss
                );
                assert_eq!(a.test_accuracy, b.test_accuracy);
                assert_eq!(a.train_accuracy, b.train_accuracy);
            }
        }
        let cfg = TrainConfig {
            threads: 0,
            ..config(Optimizer::Agd { gain: 1.0 })
        };
        assert!(train(&data, &cfg, &mut Silent).is_err());
    }

    #[test]
    fn a_diverging_baseline_stops_with_a_failure() {
        let data = tiny_digits();
        let run = train(&data, &config(Optimizer::Sgd { lr: 1e30 }), &mut Silent).unwrap();
        assert!(run.failure.is_some());
        assert_eq!(run.final_test_accuracy(), None);
    }

    #[test]
    fn widths_must_fit_the_data() {
        let data = tiny_digits();
        let mut cfg = config(Optimizer::Agd { gain: 1.0 });
        cfg.widths = vec![784, 10];
        let err = train(&data, &cfg, &mut Silent).unwrap_err();
        assert!(err.to_string().contains("64 inputs"), "{err}");
        cfg.widths = vec![64, 32, 3];
        assert!(train(&data, &cfg, &mut Silent).is_err());
    }
}
