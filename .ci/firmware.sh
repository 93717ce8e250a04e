#!/usr/bin/env bash
# On-device CI: the defmt-test tests and the firmwares (digits, digits_cnn, digits_resume,
# mnist) of examples/cortex-m4 under QEMU's mps2-an386 (Cortex-M4F). Fails on any non-zero exit.
#
# Installs what is missing: qemu-system-arm (apt), the thumbv7em-none-eabihf target (rustup),
# defmt-print (cargo install --locked --debug). MNIST is read from ../shared/data/mnist beside the
# clone, or $AGD_MNIST_DIR.
#
# Time on 2 cores: build ~1 min (plus ~1-2 min once for `cargo install defmt-print --debug`), tests
# ~5 s, digits ~5 s, digits_cnn ~15-30 s (4.2 G instructions), digits_resume ~4 s (six boots),
# mnist ~1 min of QEMU (9.0 G + 1.3 G instructions). Every QEMU run sits
# under `timeout` (in the runner, $AGD_QEMU_TIMEOUT s) and every cargo command under another
# one here.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fw="$repo/examples/cortex-m4"

last=$SECONDS
step() {
    printf '\n== %s (previous step: %d s)\n' "$*" $((SECONDS - last))
    last=$SECONDS
}

if ! command -v qemu-system-arm >/dev/null; then
    step "installing qemu-system-arm"
    apt-get update && apt-get install -y qemu-system-arm
fi
step "rustup target add thumbv7em-none-eabihf"
rustup target add thumbv7em-none-eabihf
if ! command -v defmt-print >/dev/null; then
    step "installing defmt-print"
    # The dev profile: it builds in about half the time (74 s against 123 s on 2 cores) and
    # decodes the firmware's few hundred log lines as fast as a release build would.
    cargo install defmt-print --locked --debug
fi

export AGD_QEMU_TIMEOUT="${AGD_QEMU_TIMEOUT:-300}"
cd "$fw"

step "build (release)"
timeout 600 cargo build --release --bins --tests

step "on-device tests (defmt-test)"
timeout 300 cargo test --release

step "matrix kernels: instructions per multiply-accumulate (target <= 2.5)"
timeout 300 cargo run --release --bin kernels

step "digits firmware"
timeout 300 cargo run --release --bin digits

step "digits CNN firmware"
timeout 300 cargo run --release --bin digits_cnn

step "digits firmware resuming from the emulated flash across resets"
timeout 300 cargo run --release --bin digits_resume

step "mnist firmware (256 KiB RAM)"
timeout 400 cargo run --release --bin mnist

step "firmware: all passed"
