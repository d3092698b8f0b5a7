//! A legacy (pre-1.6, not zip) `torch.save` file of a state dict, read without executing
//! anything: candle's pickle reader builds the objects (it knows no code, only a fixed set of
//! opcodes), and we lay out the tensors ourselves.
//!
//! The file is five pickles and the raw storages: the magic number, the protocol version
//! (1001), system info, the state dict (tensors as `_rebuild_tensor_v2` of a persistent
//! `('storage', FloatStorage, key, location, numel, None)`), the sorted storage keys; then per
//! key an int64 element count and the elements.
use super::F32Tensor;
use candle_core::pickle::{Object, Stack};
use std::io::{Cursor, Read};

/// The first pickle of a legacy `torch.save` file: protocol 2, the 10-byte magic number
/// 0x1950a86a20f9469cfc6c as LONG1 (little-endian), STOP. Checked as bytes: candle's LONG1
/// decoder holds at most 8 bytes.
const MAGIC_PICKLE: [u8; 15] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
];

fn one_pickle(r: &mut Cursor<&[u8]>, what: &str) -> Result<Object, String> {
    let rest = &r.get_ref()[r.position() as usize..];
    check_lengths(rest).map_err(|e| format!("{what}: not a readable pickle: {e}"))?;
    let mut stack = Stack::empty();
    stack
        .read_loop(r)
        .map_err(|e| format!("{what}: not a readable pickle: {e}"))?;
    stack.finalize().map_err(|e| format!("{what}: {e}"))
}

/// The f32 tensors of a legacy state dict by name (in no particular order); integer buffers
/// (`num_batches_tracked`) are left out.
/// Walks one pickle's op-codes (those candle's reader knows) up to STOP and checks that every
/// length it declares fits in the bytes that follow: candle's reader allocates a string's length
/// before reading it, so a lying length of 4 GiB would be allocated from a file of a few bytes.
/// Op-codes it does not know are left for candle's reader to refuse.
fn check_lengths(bytes: &[u8]) -> Result<(), String> {
    let mut pos = 0usize;
    let need = |pos: usize, n: usize| -> Result<usize, String> {
        pos.checked_add(n)
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| format!("byte {pos}: {n} bytes declared, {} left", bytes.len() - pos))
    };
    while pos < bytes.len() {
        let op = bytes[pos];
        pos += 1;
        pos = match op {
            b'.' => return Ok(()),
            // PROTO, BININT1, BINPUT, BINGET: one byte.
            0x80 | b'K' | b'q' | b'h' => need(pos, 1)?,
            b'M' => need(pos, 2)?,
            b'J' | b'r' | b'j' => need(pos, 4)?,
            b'G' => need(pos, 8)?,
            // BINUNICODE: a u32 length, then that many bytes.
            b'X' => {
                let at = need(pos, 4)?;
                let len = u32::from_le_bytes(bytes[pos..at].try_into().expect("4 bytes"));
                need(at, len as usize)?
            }
            // LONG1: a u8 length, then that many bytes.
            0x8a => {
                let at = need(pos, 1)?;
                need(at, bytes[pos] as usize)?
            }
            // GLOBAL: two newline-terminated lines.
            b'c' => {
                let mut at = pos;
                for _ in 0..2 {
                    let nl = bytes[at..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .ok_or_else(|| format!("byte {at}: a GLOBAL name without its newline"))?;
                    at += nl + 1;
                }
                at
            }
            _ => pos,
        };
    }
    Ok(())
}

pub fn state_dict(bytes: &[u8]) -> Result<Vec<(String, F32Tensor)>, String> {
    // candle's pickle objects panic on ill-shaped tensor arguments (found by w2s-fuzz).
    crate::contain::contain(|| state_dict_unguarded(bytes))
        .unwrap_or_else(|panic| Err(format!("malformed checkpoint ({panic})")))
}

fn state_dict_unguarded(bytes: &[u8]) -> Result<Vec<(String, F32Tensor)>, String> {
    if !bytes.starts_with(&MAGIC_PICKLE) {
        return Err(
            "not a legacy torch.save file (no magic number); zip-format .pth files are not read here"
                .into(),
        );
    }
    let mut r = Cursor::new(bytes);
    r.set_position(MAGIC_PICKLE.len() as u64);
    match one_pickle(&mut r, "protocol version")? {
        Object::Int(1001) | Object::Long(1001) => {}
        other => return Err(format!("unknown protocol version {other:?}")),
    }
    one_pickle(&mut r, "system info")?;
    let dict = match one_pickle(&mut r, "state dict")? {
        Object::Dict(d) => d,
        other => {
            return Err(format!(
                "expected a state dict, found {:.80}",
                format!("{other:?}")
            ))
        }
    };
    let keys: Vec<String> = match one_pickle(&mut r, "storage keys")? {
        Object::List(ks) => ks
            .into_iter()
            .map(|k| k.unicode().map_err(|o| format!("storage key {o:?}")))
            .collect::<Result<_, _>>()?,
        other => return Err(format!("expected the storage key list, found {other:?}")),
    };
    // Storages follow in key order, each as (count: i64 LE, elements).
    let mut storages = std::collections::HashMap::new();
    for key in &keys {
        let mut n = [0u8; 8];
        r.read_exact(&mut n)
            .map_err(|_| format!("storage {key}: file ends before its size"))?;
        let start = r.position() as usize;
        let count = i64::from_le_bytes(n);
        storages.insert(key.clone(), (start, count as usize));
        // The element size is the storage type's, declared by the tensors that use it.
        let size = element_size_of(&dict, key).unwrap_or(8);
        let end = start
            .checked_add(count as usize * size)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| {
                format!("storage {key}: {count} elements run past the end of the file")
            })?;
        r.set_position(end as u64);
    }
    let mut out = Vec::new();
    for (name, value) in dict {
        let name = name
            .unicode()
            .map_err(|o| format!("a state-dict key is not a string: {o:?}"))?;
        let info = match value
            .into_tensor_info(Object::Unicode(name.clone()), std::path::Path::new(""))
            .map_err(|e| format!("{name}: {e}"))?
        {
            Some(i) => i,
            // Not a tensor: the state dict's `_metadata` (module versions), carried along by
            // its BUILD opcode.
            None => continue,
        };
        if info.dtype != candle_core::DType::F32 {
            continue;
        }
        let key = info.path.trim_start_matches('/').to_string();
        let (start, count) = *storages
            .get(&key)
            .ok_or_else(|| format!("{name}: storage {key} is not in the file"))?;
        let shape = info.layout.shape().dims().to_vec();
        let numel: usize = shape.iter().product();
        let strides = info.layout.stride().to_vec();
        let offset = info.layout.start_offset() / 4;
        // The last element a view reaches must lie inside its storage.
        let reach = offset
            + shape
                .iter()
                .zip(&strides)
                .map(|(&d, &s)| d.saturating_sub(1) * s)
                .sum::<usize>();
        if numel > 0 && reach >= count {
            return Err(format!(
                "{name}: its view reaches element {reach} of a storage of {count}"
            ));
        }
        let at = |i: usize| {
            let b = start + 4 * i;
            f32::from_le_bytes(bytes[b..b + 4].try_into().expect("4 bytes"))
        };
        // A view (a transposed weight, say) is gathered into row-major order.
        let mut data = Vec::with_capacity(numel);
        let mut index = vec![0usize; shape.len()];
        for _ in 0..numel {
            data.push(at(offset
                + index
                    .iter()
                    .zip(&strides)
                    .map(|(i, s)| i * s)
                    .sum::<usize>()));
            for d in (0..shape.len()).rev() {
                index[d] += 1;
                if index[d] < shape[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        out.push((name, F32Tensor { shape, data }));
    }
    Ok(out)
}

/// The element size of the storage `key` as its first tensor declares it.
fn element_size_of(dict: &[(Object, Object)], key: &str) -> Option<usize> {
    dict.iter().find_map(|(n, v)| {
        let info = v
            .clone()
            .into_tensor_info(n.clone(), std::path::Path::new(""))
            .ok()??;
        (info.path.trim_start_matches('/') == key).then(|| info.dtype.size_in_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A legacy file written by torch 2.x (tests/reference/torch/legacy.pth): a plain tensor, a
    /// transposed view, a view at an offset into a larger storage, and an int64 buffer (left out).
    #[test]
    fn views_offsets_and_buffers() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/reference/torch/legacy.pth"
        );
        let bytes = std::fs::read(path).unwrap();
        let mut t = state_dict(&bytes).unwrap();
        t.sort_by(|a, b| a.0.cmp(&b.0));
        let names: Vec<&str> = t.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a.weight", "b.weight", "c.bias"]);
        assert_eq!(t[0].1.shape, [2, 3]);
        assert_eq!(t[0].1.data, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        // arange(6).reshape(2,3).t(): rows are the columns.
        assert_eq!(t[1].1.shape, [3, 2]);
        assert_eq!(t[1].1.data, [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        assert_eq!(t[2].1.data, [2.0, 2.5, 3.0]);
        // Truncated, or not a legacy file: an error, not a panic.
        let e = state_dict(&bytes[..bytes.len() - 10]).unwrap_err();
        assert!(e.contains("past the end"), "{e}");
        assert!(state_dict(b"PK\x03\x04zip").unwrap_err().contains("legacy"));
    }

    /// A string whose declared length runs past the file is refused before candle's reader
    /// allocates it (the fuzzer's first find: 2 GiB from a few hundred bytes).
    #[test]
    fn lying_lengths_are_refused_before_allocating() {
        let mut bytes = MAGIC_PICKLE.to_vec();
        bytes.extend_from_slice(b"X\xff\xff\xff\x7fabc.");
        let e = state_dict(&bytes).unwrap_err();
        assert!(
            e.contains("protocol version") && e.contains("2147483647 bytes declared"),
            "{e}"
        );
        assert!(check_lengths(b"X\x03\x00\x00\x00abc.").is_ok());
        assert!(check_lengths(b"\x8a\x09\x01.").is_err());
        assert!(check_lengths(b"cmodule\nclass.")
            .unwrap_err()
            .contains("GLOBAL"));
        assert!(check_lengths(b"cmodule\nclass\n.").is_ok());
    }
}
