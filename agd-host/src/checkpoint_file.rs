//! Checkpoint files: agd-core's checkpoint format ([`agd_core::checkpoint`]) on disk.
//!
//! Saving never leaves a half-written file under the target name: the bytes go to a temporary
//! file in the same directory, are flushed to disk, and only then renamed over the target (an
//! atomic replace on POSIX file systems); on any error the temporary file is removed. Loading
//! checks everything the core checks (magic, version, length, CRC, header, finite weights)
//! before a network is built from it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use agd_core::checkpoint::{
    self, ElemType, Header, Progress, SpecHeader, checkpoint_len, spec_checkpoint_len,
};
use agd_core::spec::LayerSpec;
use agd_core::{ConvNetwork, Element, Network};

use crate::HostError;
use crate::net::{HostConvNet, HostNet};

fn io(path: &Path, source: std::io::Error) -> HostError {
    HostError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn core(path: &Path, source: agd_core::Error) -> HostError {
    HostError::Checkpoint {
        path: path.display().to_string(),
        source,
    }
}

/// A temporary name next to `path` (same directory, so the rename stays on one file system).
fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Writes the checkpoint of `net` with `progress` to `path`, atomically (see the module docs).
pub fn save<T: Element>(
    path: &Path,
    net: &mut HostNet<T>,
    progress: Progress,
) -> Result<(), HostError> {
    let elem = elem_of::<T>(path)?;
    let mut bytes = vec![0u8; checkpoint_len(net.widths(), elem)];
    let n = net
        .view()
        .save_checkpoint(progress, &mut bytes)
        .map_err(|e| core(path, e))?;
    bytes.truncate(n);
    write_atomically(path, &bytes)
}

/// The checkpoint element type of `T`, or the error for an element type a checkpoint cannot
/// hold.
fn elem_of<T: Element>(path: &Path) -> Result<ElemType, HostError> {
    ElemType::of::<T>().ok_or_else(|| {
        core(
            path,
            agd_core::Error::CheckpointElement {
                expected: "f32 or f64",
                got: T::NAME,
            },
        )
    })
}

/// Replaces `path` by `bytes` so that a crash leaves either the old file or the new one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), HostError> {
    let tmp = temp_name(path);
    let result = (|| {
        let mut f = fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| io(&tmp, e))?;
        f.sync_all().map_err(|e| io(&tmp, e))?;
        drop(f);
        fs::rename(&tmp, path).map_err(|e| io(path, e))?;
        // Make the rename itself durable (best effort: not every platform opens directories).
        if let Some(dir) = path.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Refuses, before any work is done, a checkpoint path that cannot be written: its directory
/// does not exist, or the path is a directory.
pub fn check_writable(path: &Path) -> Result<(), HostError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if path.is_dir() {
        return Err(HostError::Usage(format!(
            "--save {}: is a directory, not a file",
            path.display()
        )));
    }
    if !dir.is_dir() {
        return Err(HostError::Usage(format!(
            "--save {}: directory {} does not exist",
            path.display(),
            dir.display()
        )));
    }
    Ok(())
}

/// Reads and fully checks a checkpoint file; returns its header and bytes.
pub fn read(path: &Path) -> Result<(Header, Vec<u8>), HostError> {
    let bytes = fs::read(path).map_err(|e| io(path, e))?;
    let header = checkpoint::inspect(&bytes).map_err(|e| core(path, e))?;
    Ok((header, bytes))
}

/// Loads a checkpoint file into a new network of its widths with this batch capacity.
/// The element type must be `T`.
pub fn load<T: Element>(
    path: &Path,
    capacity: usize,
    grad_buffer: bool,
) -> Result<(HostNet<T>, Progress), HostError> {
    let (header, bytes) = read(path)?;
    let mut net = HostNet::<T>::new(&header.widths, capacity, grad_buffer)?;
    let progress = net
        .view()
        .load_checkpoint(&bytes)
        .map_err(|e| core(path, e))?;
    Ok((net, progress))
}

/// Loads a checkpoint file into an existing network (same widths and element type).
pub fn load_into<T: Element>(path: &Path, net: &mut HostNet<T>) -> Result<Progress, HostError> {
    let (_, bytes) = read(path)?;
    net.view()
        .load_checkpoint(&bytes)
        .map_err(|e| core(path, e))
}

/// Writes the checkpoint of a conv (layer-spec) network with `progress` to `path`,
/// atomically. The header records every layer, so that it only ever loads into a network of
/// the same architecture.
pub fn save_conv<T: Element>(
    path: &Path,
    net: &mut HostConvNet<T>,
    progress: Progress,
) -> Result<(), HostError> {
    let elem = elem_of::<T>(path)?;
    let mut bytes = vec![0u8; spec_checkpoint_len(net.layers(), elem)];
    let n = net
        .view()
        .save_checkpoint(progress, &mut bytes)
        .map_err(|e| core(path, e))?;
    bytes.truncate(n);
    write_atomically(path, &bytes)
}

/// Reads and fully checks a checkpoint file of either kind (dense or layer-spec); returns
/// its header (a dense one described as dense layers, `dense` set) and bytes.
pub fn read_any(path: &Path) -> Result<(SpecHeader, Vec<u8>), HostError> {
    let bytes = fs::read(path).map_err(|e| io(path, e))?;
    let header = checkpoint::inspect_spec(&bytes).map_err(|e| core(path, e))?;
    Ok((header, bytes))
}

/// Most buffer elements (activations, errors and the convolution scratch, for the whole batch)
/// a network loaded from a file may need: 2^28, 1 GiB of `f32`. A crafted header can describe
/// few weights but huge feature maps, and the buffers are allocated from it.
pub const MAX_BUFFER_ELEMENTS: usize = 1 << 28;

/// Loads a checkpoint file (conv or dense) into a new [`HostConvNet`] of its layers with this
/// batch capacity. The element type must be `T`.
pub fn load_conv<T: Element>(
    path: &Path,
    capacity: usize,
) -> Result<(HostConvNet<T>, Progress), HostError> {
    let (header, bytes) = read_any(path)?;
    check_buffers(path, &header.layers, capacity)?;
    let mut net = HostConvNet::<T>::new(&header.layers, capacity)?;
    let progress = net
        .view()
        .load_checkpoint(&bytes)
        .map_err(|e| core(path, e))?;
    Ok((net, progress))
}

/// Loads a checkpoint file into an existing conv network (same layers and element type).
pub fn load_conv_into<T: Element>(
    path: &Path,
    net: &mut HostConvNet<T>,
) -> Result<Progress, HostError> {
    let (_, bytes) = read_any(path)?;
    net.view()
        .load_checkpoint(&bytes)
        .map_err(|e| core(path, e))
}

/// Refuses layers whose buffers at this batch capacity would exceed [`MAX_BUFFER_ELEMENTS`].
pub fn check_buffers(path: &Path, layers: &[LayerSpec], capacity: usize) -> Result<(), HostError> {
    let total = layers
        .iter()
        .try_fold(
            layers.first().map_or(0, LayerSpec::in_features),
            |acc, l| acc.checked_add(l.out_features()),
        )
        .and_then(|f| f.checked_mul(capacity)?.checked_mul(2))
        .and_then(|b| b.checked_add(agd_core::spec::scratch_count(layers)))
        .filter(|&t| t <= MAX_BUFFER_ELEMENTS);
    match total {
        Some(_) => Ok(()),
        None => Err(HostError::Data(format!(
            "{}: the network's buffers at batch {capacity} would exceed {MAX_BUFFER_ELEMENTS} \
             values",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agd_core::SplitMix64;

    /// A fresh empty directory under the system temp dir.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("agd-ckpt-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn net(seed: u64) -> HostNet<f32> {
        let mut n = HostNet::<f32>::new(&[6, 5, 3], 2, true).unwrap();
        n.view().init_orthogonal(&mut SplitMix64::new(seed));
        n
    }

    fn bits(w: &[f32]) -> Vec<u32> {
        w.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn save_then_load_is_bit_exact_and_leaves_no_temp_file() {
        let dir = scratch("roundtrip");
        let path = dir.join("net.agdc");
        let mut a = net(1);
        let p = Progress { step: 77, rng: 5 };
        save(&path, &mut a, p).unwrap();
        // Overwrite with another network: the file is replaced whole.
        let mut b = net(2);
        save(&path, &mut b, Progress { step: 78, rng: 6 }).unwrap();
        let (c, q) = load::<f32>(&path, 4, false).unwrap();
        assert_eq!(q, Progress { step: 78, rng: 6 });
        assert_eq!(c.widths(), &[6, 5, 3]);
        assert_eq!(bits(c.weights()), bits(b.weights()));
        let mut d = net(3);
        assert_eq!(load_into(&path, &mut d).unwrap().step, 78);
        assert_eq!(bits(d.weights()), bits(b.weights()));
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["net.agdc"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_bad_file_is_a_one_line_error() {
        let dir = scratch("bad");
        let good = dir.join("good.agdc");
        save(&good, &mut net(1), Progress::default()).unwrap();
        let bytes = fs::read(&good).unwrap();
        let write = |name: &str, b: &[u8]| {
            let p = dir.join(name);
            fs::write(&p, b).unwrap();
            p
        };
        let cases: Vec<(PathBuf, &str)> = vec![
            (dir.join("missing.agdc"), "(os error 2)"),
            (write("empty", b""), "truncated"),
            (write("short", &bytes[..bytes.len() / 2]), "truncated"),
            (write("text", b"{\"not\": \"a checkpoint\"}"), "bad magic"),
            (
                write("flipped", &{
                    let mut b = bytes.clone();
                    b[60] ^= 4;
                    b
                }),
                "corrupt",
            ),
        ];
        for (path, needle) in cases {
            let e = load::<f32>(&path, 2, true).unwrap_err().to_string();
            assert!(e.contains(needle), "{}: {e}", path.display());
            assert!(!e.contains('\n'));
        }
        // Right file, wrong element type or widths.
        let e = load::<f64>(&good, 2, true).unwrap_err().to_string();
        assert!(e.contains("f32 weights, the network is f64"), "{e}");
        let mut other = HostNet::<f32>::new(&[6, 4, 3], 2, true).unwrap();
        let e = load_into(&good, &mut other).unwrap_err().to_string();
        assert!(e.contains("width 1 of the checkpoint is 5"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_save_leaves_nothing_behind() {
        let dir = scratch("fail");
        let path = dir.join("no-such-dir").join("net.agdc");
        let e = save(&path, &mut net(1), Progress::default()).unwrap_err();
        assert!(matches!(e, HostError::Io { .. }), "{e}");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        // A network with a NaN weight is refused before any file is opened.
        let mut bad = net(1);
        let good = dir.join("net.agdc");
        save(&good, &mut bad, Progress::default()).unwrap();
        let before = fs::read(&good).unwrap();
        bad.view().weights_mut()[3] = f32::NAN;
        let e = save(&good, &mut bad, Progress::default()).unwrap_err();
        assert!(e.to_string().contains("NaN or infinite"), "{e}");
        assert_eq!(fs::read(&good).unwrap(), before, "the good file was kept");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn conv_nets_round_trip_and_refuse_another_architecture() {
        use agd_core::ConvNetwork;
        use agd_core::spec::{chain, conv, dense};
        let dir = scratch("conv");
        let path = dir.join("cnn.agdc");
        let layers = chain([1, 8, 8], [conv(4, 3, 1, 1), conv(8, 3, 2, 1), dense(10)]);
        let mut a = HostConvNet::<f32>::new(&layers, 3).unwrap();
        a.view().init_orthogonal(&mut SplitMix64::new(4));
        save_conv(&path, &mut a, Progress { step: 9, rng: 1 }).unwrap();
        let (mut b, p) = load_conv::<f32>(&path, 5).unwrap();
        assert_eq!(p, Progress { step: 9, rng: 1 });
        assert_eq!(b.layers(), &layers);
        assert_eq!(bits(b.view().weights()), bits(a.view().weights()));
        let other = chain([1, 8, 8], [conv(4, 3, 1, 1), conv(8, 3, 1, 1), dense(10)]);
        let mut c = HostConvNet::<f32>::new(&other, 2).unwrap();
        let e = load_conv_into(&path, &mut c).unwrap_err().to_string();
        assert!(e.contains("layer 1 of the checkpoint differs"), "{e}");
        // The dense loader names the kind.
        let e = load::<f32>(&path, 2, false).unwrap_err().to_string();
        assert!(e.contains("layer-spec network, the target is dense"), "{e}");
        // A dense checkpoint loads as a conv network of dense layers.
        let dense_path = dir.join("dense.agdc");
        save(&dense_path, &mut net(1), Progress::default()).unwrap();
        let (d, _) = load_conv::<f32>(&dense_path, 2).unwrap();
        assert_eq!(d.layers().len(), 2);
        fs::remove_dir_all(&dir).unwrap();
    }
}
