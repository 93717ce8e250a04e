//! The device's static network and the host's run-time network are one code path: from the
//! same seed and batches they hold bit-identical weights after training (dense and conv).

use agd_core::{Agd, ConvNetwork, Loss, Network, SplitMix64};
use agd_host::net::{HostConvNet, HostNet};
use rand_core::Rng;

agd_core::dense_network!(Device: f32 = [12, 9, 7, 4], batch 6);

fn batch(rng: &mut SplitMix64, n: usize, d: usize) -> (Vec<f32>, Vec<usize>) {
    let x = (0..n * d)
        .map(|_| (rng.next_u32() as f32 / u32::MAX as f32) * 2.0 - 1.0)
        .collect();
    let y = (0..n).map(|_| (rng.next_u32() % 4) as usize).collect();
    (x, y)
}

#[test]
fn static_and_host_networks_train_bit_identically() {
    let mut device = Device::new();
    let mut host = HostNet::<f32>::new(Device::WIDTHS, Device::BATCH, true).unwrap();
    device.view().init_orthogonal(&mut SplitMix64::new(42));
    host.view().init_orthogonal(&mut SplitMix64::new(42));
    assert_eq!(device.view().weights(), host.weights());

    let mut data = SplitMix64::new(9);
    let agd = Agd::new();
    for step in 0..20 {
        let n = 1 + step % Device::BATCH;
        let (x, y) = batch(&mut data, n, Device::WIDTHS[0]);
        let loss = if step % 2 == 0 { Loss::Xent } else { Loss::Mse };
        let mut d = device.view();
        d.set_input(&x).unwrap();
        let rd = d.train_step(&agd, loss, &y).unwrap();
        let mut h = host.view();
        h.set_input(&x).unwrap();
        let rh = h.train_step(&agd, loss, &y).unwrap();
        assert_eq!(rd, rh, "step {step}");
    }
    let dw: Vec<u32> = device
        .view()
        .weights()
        .iter()
        .map(|w| w.to_bits())
        .collect();
    let hw: Vec<u32> = host.weights().iter().map(|w| w.to_bits()).collect();
    assert_eq!(dw, hw);
    assert_eq!(host.ram_bytes(), Device::RAM_BYTES);
}

agd_core::conv_network!(ConvDevice: f32 = [2, 7, 7] => [conv(4, 3, 1, 1), conv(5, 3, 2, 1), dense(4)], batch 5);

#[test]
fn static_and_host_conv_networks_train_bit_identically() {
    let mut device = ConvDevice::new();
    let mut host = HostConvNet::<f32>::new(&ConvDevice::LAYERS, ConvDevice::BATCH).unwrap();
    device.view().init_orthogonal(&mut SplitMix64::new(42));
    host.view().init_orthogonal(&mut SplitMix64::new(42));
    assert_eq!(device.view().weights(), host.view().weights());

    let mut data = SplitMix64::new(9);
    let agd = Agd::new();
    let inputs = 2 * 7 * 7;
    for step in 0..12 {
        let n = 1 + step % ConvDevice::BATCH;
        let (x, y) = batch(&mut data, n, inputs);
        let loss = if step % 2 == 0 { Loss::Xent } else { Loss::Mse };
        let mut d = device.view();
        d.set_input(&x).unwrap();
        let rd = d.train_step(&agd, loss, &y).unwrap();
        let mut h = host.view();
        h.set_input(&x).unwrap();
        let rh = h.train_step(&agd, loss, &y).unwrap();
        assert_eq!(rd, rh, "step {step}");
    }
    let bits = |w: &[f32]| w.iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
    assert_eq!(bits(device.view().weights()), bits(host.view().weights()));
    assert_eq!(host.ram_bytes(), ConvDevice::RAM_BYTES);
}
