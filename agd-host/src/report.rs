//! What a run leaves behind: `metrics.json`, `metrics.csv` and `curves.png`, and the plot of a
//! comparison.
//!
//! Plots are drawn with plotters into a bitmap; their text is rendered with DejaVu Sans,
//! shipped in `assets/` and compiled into the binary, so they render the same on a machine with
//! no system fonts.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::HostError;
use crate::train::{EpochRecord, Run, TrainConfig};

/// DejaVu Sans (Bitstream Vera licence, see `assets/DejaVuSans-LICENSE`).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
/// The family name every text style below asks for.
const FAMILY: &str = "sans-serif";

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is compiled in and known to parse; a failure would only lose the text.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

/// Everything recorded about a run, as written to `metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMetrics {
    /// Dataset name.
    pub dataset: String,
    /// Network widths (for a conv network: the features between its layers).
    pub widths: Vec<usize>,
    /// A conv network's layers in `--layers` syntax (absent for a dense network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<String>,
    /// `xent` or `mse`.
    pub loss: String,
    /// `agd`, `adam` or `sgd`.
    pub optimizer: String,
    /// A baseline's learning rate (`null` for AGD).
    pub lr: Option<f64>,
    /// AGD's gain (`null` for a baseline).
    pub gain: Option<f64>,
    /// The seed.
    pub seed: u64,
    /// Batch size.
    pub batch: usize,
    /// Epochs asked for.
    pub epochs: usize,
    /// Threads (batch-parallel when more than 1).
    pub threads: usize,
    /// `f32` or `f64`.
    pub dtype: String,
    /// How the inputs were normalised.
    pub normalisation: String,
    /// The train/test split (`--split`; MNIST and `idx`: the files' own).
    #[serde(default)]
    pub split: String,
    /// Per epoch: mean training loss (before each step).
    pub train_loss: Vec<f64>,
    /// Per epoch: training accuracy (fraction, before each step).
    pub train_accuracy: Vec<f64>,
    /// Per epoch: test accuracy (fraction) after the epoch.
    pub test_accuracy: Vec<f64>,
    /// Per epoch: AGD's mean η (`null` for a baseline).
    pub eta: Option<Vec<f64>>,
    /// Per epoch: training seconds.
    pub epoch_seconds: Vec<f64>,
    /// Wall-clock seconds of the whole run.
    pub seconds: f64,
    /// Test accuracy after the last epoch (`null` if the run failed).
    pub final_test_accuracy: Option<f64>,
    /// Why the run stopped early, if it did.
    pub failure: Option<String>,
    /// Batches skipped as bad (`--skip-bad-batches`).
    #[serde(default)]
    pub skipped_batches: usize,
}

impl RunMetrics {
    /// Collects a run's configuration and records.
    pub fn new(
        dataset: &str,
        dtype: &str,
        normalisation: &str,
        split: &str,
        cfg: &TrainConfig,
        run: &Run,
    ) -> Self {
        let col = |f: fn(&EpochRecord) -> f64| run.epochs.iter().map(f).collect::<Vec<_>>();
        let eta = run
            .epochs
            .iter()
            .map(|e| e.eta)
            .collect::<Option<Vec<f64>>>()
            .filter(|_| cfg.optimizer.gain().is_some());
        RunMetrics {
            dataset: dataset.to_string(),
            widths: cfg.widths.clone(),
            layers: (!cfg.layers.is_empty()).then(|| crate::layers::layers_text(&cfg.layers)),
            loss: cfg.loss.name().to_string(),
            optimizer: cfg.optimizer.name().to_string(),
            lr: cfg.optimizer.lr(),
            gain: cfg.optimizer.gain(),
            seed: cfg.seed,
            batch: cfg.batch,
            epochs: cfg.epochs,
            threads: cfg.threads,
            dtype: dtype.to_string(),
            normalisation: normalisation.to_string(),
            split: split.to_string(),
            train_loss: col(|e| e.train_loss),
            train_accuracy: col(|e| e.train_accuracy),
            test_accuracy: col(|e| e.test_accuracy),
            eta,
            epoch_seconds: col(|e| e.seconds),
            seconds: run.seconds,
            final_test_accuracy: run.final_test_accuracy(),
            failure: run.failure.as_ref().map(ToString::to_string),
            skipped_batches: run.skipped_batches,
        }
    }

    /// `agd`, `adam lr 0.001`, …
    pub fn label(&self) -> String {
        match (self.lr, self.gain) {
            (Some(lr), _) => format!("{} lr {lr}", self.optimizer),
            (None, Some(g)) if g != 1.0 => format!("{} gain {g}", self.optimizer),
            _ => self.optimizer.clone(),
        }
    }

    /// The CSV of the per-epoch records (`eta` empty for a baseline).
    pub fn csv(&self) -> String {
        let mut s = String::from("epoch,train_loss,train_accuracy,test_accuracy,eta,seconds\n");
        for i in 0..self.train_loss.len() {
            let eta = self
                .eta
                .as_ref()
                .map(|e| e[i].to_string())
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "{},{},{},{},{eta},{}",
                i + 1,
                self.train_loss[i],
                self.train_accuracy[i],
                self.test_accuracy[i],
                self.epoch_seconds[i]
            );
        }
        s
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> HostError + '_ {
    move |source| HostError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes `text` to `path` atomically (a temporary file renamed over it), so that an
/// interrupted run never leaves a truncated `metrics.json` that looks like a result.
pub fn write_text(path: &Path, text: &str) -> Result<(), HostError> {
    crate::checkpoint_file::write_atomically(path, text.as_bytes())
}

/// Creates a directory and its parents.
pub fn create_dir(path: &Path) -> Result<(), HostError> {
    std::fs::create_dir_all(path).map_err(io_err(path))
}

/// Writes `metrics.json`, `metrics.csv` and `curves.png` into `dir` (created if needed).
pub fn write_run(dir: &Path, m: &RunMetrics) -> Result<(), HostError> {
    create_dir(dir)?;
    let json = serde_json::to_string_pretty(m)
        .map_err(|e| HostError::Data(format!("metrics.json: {e}")))?;
    write_text(&dir.join("metrics.json"), &(json + "\n"))?;
    write_text(&dir.join("metrics.csv"), &m.csv())?;
    plot_curves(&dir.join("curves.png"), m)
}

/// One line of a chart: a label, its colour, and its points.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Line colour.
    pub color: RGBColor,
    /// `(x, y)` points.
    pub points: Vec<(f64, f64)>,
}

/// Colours for up to 6 lines; further lines reuse them.
pub const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn plot_err(path: &Path) -> impl Fn(String) -> HostError + '_ {
    move |message| HostError::Plot {
        path: path.display().to_string(),
        message,
    }
}

fn bounds(series: &[Series], log_y: bool) -> ((f64, f64), (f64, f64)) {
    let pts = || series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1) = (f64::MAX, f64::MIN);
    let (mut y0, mut y1) = (f64::MAX, f64::MIN);
    for &(x, y) in pts() {
        if !x.is_finite() || !y.is_finite() || (log_y && y <= 0.0) {
            continue;
        }
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        return ((0.0, 1.0), (if log_y { 0.1 } else { 0.0 }, 1.0));
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if log_y {
        (y0, y1) = (y0 / 1.5, y1 * 1.5);
    } else {
        let pad = ((y1 - y0) * 0.05).max(1e-6);
        (y0, y1) = (y0 - pad, y1 + pad);
    }
    ((x0, x1), (y0, y1))
}

/// The largest caption font size up to 22 px (down to 10) at which `title` fits across
/// `area`: a long network description would otherwise run off both edges.
fn caption_size<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, title: &str) -> f64 {
    let room = area.dim_in_pixel().0.saturating_sub(24);
    let mut size = 22.0;
    while size > 10.0 {
        match area.estimate_text_size(title, &(FAMILY, size).into_text_style(area)) {
            Ok((w, _)) if w <= room => break,
            Ok(_) => size -= 1.0,
            Err(_) => break,
        }
    }
    size
}

/// Draws one chart (line per series, legend) into `area`.
pub fn draw_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_y: bool,
    legend: SeriesLabelPosition,
) -> Result<(), String> {
    let ((x0, x1), (y0, y1)) = bounds(series, log_y);
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(title, (FAMILY, caption_size(area, title)))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64);
    macro_rules! finish {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .x_label_formatter(&|x| format!("{x:.0}"))
                .y_label_formatter(&|y| significant(*y))
                .max_light_lines(4)
                .y_labels(6)
                .y_desc(y_label)
                .label_style((FAMILY, 15))
                .axis_desc_style((FAMILY, 16))
                .draw()
                .map_err(|e| e.to_string())?;
            for s in series {
                let color = s.color;
                let pts = s
                    .points
                    .iter()
                    .copied()
                    .filter(|&(x, y)| x.is_finite() && y.is_finite() && (!log_y || y > 0.0));
                chart
                    .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                    .map_err(|e| e.to_string())?
                    .label(s.label.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font((FAMILY, 15))
                .position(legend.clone())
                .draw()
                .map_err(|e| e.to_string())?;
        }};
    }
    if log_y {
        finish!(
            builder
                .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
                .map_err(|e| e.to_string())?
        );
    } else {
        finish!(
            builder
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(|e| e.to_string())?
        );
    }
    Ok(())
}

/// `v` with three significant digits and no trailing zeros (`0.3`, not `0.30000000000000004`).
fn significant(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let decimals = (2 - v.abs().log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn per_epoch(values: &[f64], scale: f64) -> Vec<(f64, f64)> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| ((i + 1) as f64, v * scale))
        .collect()
}

/// `curves.png`: training loss (log scale), train and test accuracy, and AGD's mean η, per
/// epoch.
pub fn plot_curves(path: &Path, m: &RunMetrics) -> Result<(), HostError> {
    register_font();
    let panels = if m.eta.is_some() { 3 } else { 2 };
    let root = BitMapBackend::new(path, (520 * panels as u32, 460)).into_drawing_area();
    root.fill(&WHITE)
        .map_err(|e| plot_err(path)(e.to_string()))?;
    let final_acc = m
        .final_test_accuracy
        .map(|a| format!("final test {:.2} %", 100.0 * a))
        .unwrap_or_else(|| "failed".to_string());
    let widths = m.layers.clone().unwrap_or_else(|| {
        m.widths
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",")
    });
    let title = format!(
        "{} [{widths}], {}, {}, batch {}, seed {}: {final_acc}",
        m.dataset,
        m.loss,
        m.label(),
        m.batch,
        m.seed
    );
    let root = root
        .titled(&title, (FAMILY, 22))
        .map_err(|e| plot_err(path)(e.to_string()))?;
    let areas = root.split_evenly((1, panels));
    draw_chart(
        &areas[0],
        "training loss",
        "epoch",
        m.loss.as_str(),
        &[Series {
            label: "train".into(),
            color: PALETTE[0],
            points: per_epoch(&m.train_loss, 1.0),
        }],
        true,
        SeriesLabelPosition::UpperRight,
    )
    .map_err(plot_err(path))?;
    draw_chart(
        &areas[1],
        "accuracy",
        "epoch",
        "%",
        &[
            Series {
                label: "train".into(),
                color: PALETTE[0],
                points: per_epoch(&m.train_accuracy, 100.0),
            },
            Series {
                label: "test".into(),
                color: PALETTE[1],
                points: per_epoch(&m.test_accuracy, 100.0),
            },
        ],
        false,
        SeriesLabelPosition::LowerRight,
    )
    .map_err(plot_err(path))?;
    if let Some(eta) = &m.eta {
        draw_chart(
            &areas[2],
            "AGD step size",
            "epoch",
            "mean η",
            &[Series {
                label: "η".into(),
                color: PALETTE[2],
                points: per_epoch(eta, 1.0),
            }],
            false,
            SeriesLabelPosition::UpperRight,
        )
        .map_err(plot_err(path))?;
    }
    root.present().map_err(|e| plot_err(path)(e.to_string()))
}

/// A single chart of several series (used for `compare.png`).
pub fn plot_series(
    path: &Path,
    title: &str,
    y_label: &str,
    series: &[Series],
) -> Result<(), HostError> {
    register_font();
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)
        .map_err(|e| plot_err(path)(e.to_string()))?;
    draw_chart(
        &root,
        title,
        "epoch",
        y_label,
        series,
        false,
        SeriesLabelPosition::LowerRight,
    )
    .map_err(plot_err(path))?;
    root.present().map_err(|e| plot_err(path)(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::{FAMILY, caption_size, register_font, significant};
    use plotters::prelude::*;

    #[test]
    fn a_long_caption_shrinks_to_fit_and_a_short_one_keeps_its_size() {
        register_font();
        let mut buf = vec![0u8; 900 * 560 * 3];
        let area = BitMapBackend::with_buffer(&mut buf, (900, 560)).into_drawing_area();
        assert_eq!(caption_size(&area, "digits: test accuracy"), 22.0);
        let long = "mnist [conv16k3p1,conv32k3s2p1,conv32k3s2p1,dense10]: test accuracy, AGD vs \
                    best Adam and best SGD";
        let size = caption_size(&area, long);
        assert!((10.0..22.0).contains(&size), "{size}");
        let (w, _) = area
            .estimate_text_size(long, &(FAMILY, size).into_text_style(&area))
            .unwrap();
        assert!(w <= 900 - 24, "{w}");
    }

    #[test]
    fn axis_labels_have_three_significant_digits_and_no_float_noise() {
        assert_eq!(significant(0.1 + 0.2), "0.3");
        assert_eq!(significant(0.01), "0.01");
        assert_eq!(significant(0.0123456), "0.0123");
        assert_eq!(significant(1.0), "1");
        assert_eq!(significant(250.0), "250");
        assert_eq!(significant(12345.0), "12345");
        assert_eq!(significant(0.0), "0");
    }
}
