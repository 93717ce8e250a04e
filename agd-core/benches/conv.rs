//! Convolution speed: im2col + matrix kernels against a direct loop on one layer of the
//! issue's MNIST CNN, and the full CNN training step (batch 128, f32): `cargo bench -p
//! agd-core-benches`.

use agd_core::conv::Conv2d;
use agd_core::spec::{LayerSpec, chain, conv, dense};
use agd_core::{Agd, ConvBuffers, ConvNetMut, Loss, SplitMix64, init, spec};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

/// Direct cross-correlation of one sample, loops ordered so the innermost runs along an
/// output row (the usual hand-written baseline).
fn direct_forward(cv: &Conv2d, w: &[f32], x: &[f32], z: &mut [f32]) {
    let (oh, ow) = (cv.out_h(), cv.out_w());
    z.fill(0.0);
    for o in 0..cv.c_out {
        let zo = &mut z[o * oh * ow..][..oh * ow];
        for c in 0..cv.c_in {
            let plane = &x[c * cv.h * cv.w..][..cv.h * cv.w];
            for i in 0..cv.kh {
                for j in 0..cv.kw {
                    let wv = w[((o * cv.c_in + c) * cv.kh + i) * cv.kw + j];
                    for y in 0..oh {
                        let sy = (y * cv.stride + i).wrapping_sub(cv.pad);
                        if sy >= cv.h {
                            continue;
                        }
                        let row = &plane[sy * cv.w..][..cv.w];
                        let zr = &mut zo[y * ow..][..ow];
                        for (xx, zv) in zr.iter_mut().enumerate() {
                            let sx = (xx * cv.stride + j).wrapping_sub(cv.pad);
                            if sx < cv.w {
                                *zv += wv * row[sx];
                            }
                        }
                    }
                }
            }
        }
    }
}

const MNIST_CNN: [LayerSpec; 4] = chain(
    [1, 28, 28],
    [
        conv(16, 3, 1, 1),
        conv(32, 3, 2, 1),
        conv(32, 3, 2, 1),
        dense(10),
    ],
);

fn gaussian(n: usize, seed: u64) -> Vec<f32> {
    let mut w = vec![0.0f32; n];
    init::fill_gaussian(&mut w, &mut SplitMix64::new(seed));
    w
}

fn layer_forward(c: &mut Criterion) {
    let LayerSpec::Conv(cv) = MNIST_CNN[1] else {
        unreachable!()
    };
    let batch = 16;
    let w = gaussian(cv.param_count(), 1);
    let x = gaussian(batch * cv.in_features(), 2);
    let mut z = vec![0.0f32; batch * cv.out_features()];
    let mut scratch = vec![0.0f32; cv.scratch_len()];
    let mut g = c.benchmark_group("conv 16->32 3x3 s2 p1 on 28x28, forward, batch 16");
    g.bench_function("im2col + matmul_nn", |b| {
        b.iter(|| cv.forward(batch, &w, &x, &mut z, &mut scratch).unwrap())
    });
    g.bench_function("direct", |b| {
        b.iter(|| {
            for (xn, zn) in x
                .chunks_exact(cv.in_features())
                .zip(z.chunks_exact_mut(cv.out_features()))
            {
                direct_forward(&cv, &w, xn, zn);
            }
            black_box(&z);
        })
    });
    g.finish();
}

fn cnn_step(c: &mut Criterion) {
    let layers = &MNIST_CNN;
    let batch = 128;
    let layout = spec::SpecLayout::new(layers).unwrap();
    let mut weights = vec![0.0f32; layout.param_count()];
    init::orthogonal_spec(layout, &mut weights, &mut SplitMix64::new(3));
    let mut grads = vec![0.0f32; layout.param_count()];
    let mut acts = vec![0.0f32; spec::act_count(layers, batch)];
    let mut deltas = vec![0.0f32; spec::delta_count(layers, batch)];
    let mut scratch = vec![0.0f32; layout.scratch_count()];
    let mut norms = vec![0.0f32; layout.norm_count()];
    let mut net = ConvNetMut::new(
        layers,
        batch,
        ConvBuffers {
            weights: &mut weights,
            grads: &mut grads,
            acts: &mut acts,
            deltas: &mut deltas,
            scratch: &mut scratch,
            norms: &mut norms,
        },
    )
    .unwrap();
    let x: Vec<f32> = gaussian(batch * 784, 4).iter().map(|v| v.abs()).collect();
    let y: Vec<usize> = (0..batch).map(|n| n % 10).collect();
    net.set_input(&x).unwrap();
    let agd = Agd::new();
    let mut g = c.benchmark_group("MNIST CNN training step, batch 128, f32");
    g.sample_size(10);
    g.bench_function("forward + backward + AGD step", |b| {
        b.iter(|| net.train_step(&agd, Loss::Xent, &y).unwrap())
    });
    g.finish();
}

/// Where the CNN step's time goes: each conv layer's forward and backward at batch 128.
fn cnn_layers(c: &mut Criterion) {
    let batch = 128;
    let mut g = c.benchmark_group("MNIST CNN conv layers, batch 128, f32");
    g.sample_size(10);
    for (k, layer) in MNIST_CNN.iter().enumerate() {
        let LayerSpec::Conv(cv) = *layer else {
            continue;
        };
        let w = gaussian(cv.param_count(), 1);
        let x = gaussian(batch * cv.in_features(), 2);
        let d = gaussian(batch * cv.out_features(), 3);
        let mut z = vec![0.0f32; batch * cv.out_features()];
        let mut gw = vec![0.0f32; cv.param_count()];
        let mut gx = vec![0.0f32; batch * cv.in_features()];
        let mut scratch = vec![0.0f32; cv.scratch_len()];
        g.bench_function(format!("layer {k} forward"), |b| {
            b.iter(|| cv.forward(batch, &w, &x, &mut z, &mut scratch).unwrap())
        });
        g.bench_function(format!("layer {k} backward"), |b| {
            b.iter(|| {
                let prev = if k > 0 { Some(&mut gx[..]) } else { None };
                cv.backward(batch, &w, &x, &d, Some(&mut gw), prev, &mut scratch)
                    .unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, layer_forward, cnn_step, cnn_layers);
criterion_main!(benches);
