#!/usr/bin/env bash
# Cargo runner: boots an ELF on QEMU's mps2-an386 (Cortex-M4F) and decodes its defmt log.
#
#   ./qemu-run.sh target/thumbv7em-none-eabihf/release/digits
#
# * `-icount shift=0`: one virtual nanosecond per instruction, so SysTick (25 MHz, 40 ns per
#   tick) counts instructions exactly: instructions = ticks x 40, the same on every run.
# * Semihosting on, with the host's file system (`target=native`): the firmware exits with its
#   own exit code, and the mnist firmware reads the IDX files from the directory given as its
#   first command-line argument (semihosting SYS_GET_CMDLINE): $AGD_MNIST_DIR, or the first of
#   <repo>/../shared/data/mnist and <repo>/../../shared/data/mnist that exists.
# * Always under `timeout` ($AGD_QEMU_TIMEOUT seconds, default 600): a fault or a closed pipe
#   can never hang CI. Returns QEMU's exit code (124 on timeout).
set -uo pipefail

elf="$1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

mnist="${AGD_MNIST_DIR:-}"
if [ -z "$mnist" ]; then
    for d in "$repo/../shared/data/mnist" "$repo/../../shared/data/mnist"; do
        if [ -d "$d" ]; then
            mnist="$(cd "$d" && pwd)"
            break
        fi
    done
fi
# QEMU's option parser splits on commas; the path goes in as one `arg=`.
case "$mnist" in
    *,*) echo "qemu-run.sh: the MNIST path must not contain a comma: $mnist" >&2; exit 2 ;;
esac

timeout "${AGD_QEMU_TIMEOUT:-600}" qemu-system-arm \
    -machine mps2-an386 -cpu cortex-m4 -nographic \
    -semihosting-config "enable=on,target=native,arg=$(basename "$elf"),arg=${mnist:-none}" \
    -icount shift=0 \
    -kernel "$elf" </dev/null | defmt-print -e "$elf"
exit "${PIPESTATUS[0]}"
