//! A walk over a GGUF header that checks every size it declares against the file before
//! candle's reader allocates by it: string lengths, array counts, tensor counts and dimensions,
//! and each tensor's bytes (its offset and size within the file). candle's reader allocates a
//! declared length before reading it, so a lying header of a few bytes could ask for terabytes;
//! here a lying field is an error that names it.
use std::io::Read;

/// Bytes of one element of the GGUF metadata value types 0–12 (strings and arrays: `None`).
fn scalar_size(t: u32) -> Option<u64> {
    match t {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

/// Block size (elements) and bytes per block of the ggml tensor types candle reads.
fn block_of(t: u32) -> Option<(u64, u64)> {
    Some(match t {
        0 => (1, 4),      // F32
        1 => (1, 2),      // F16
        30 => (1, 2),     // BF16
        2 => (32, 18),    // Q4_0
        3 => (32, 20),    // Q4_1
        6 => (32, 22),    // Q5_0
        7 => (32, 24),    // Q5_1
        8 => (32, 34),    // Q8_0
        9 => (32, 36),    // Q8_1
        10 => (256, 84),  // Q2_K
        11 => (256, 110), // Q3_K
        12 => (256, 144), // Q4_K
        13 => (256, 176), // Q5_K
        14 => (256, 210), // Q6_K
        15 => (256, 292), // Q8_K
        24 => (1, 1),     // I8
        25 => (1, 2),     // I16
        26 => (1, 4),     // I32
        27 => (1, 8),     // I64
        28 => (1, 8),     // F64
        _ => return None,
    })
}

struct Walk<R> {
    r: R,
    pos: u64,
    size: u64,
    /// Version 1 files use 32-bit lengths and counts.
    wide: bool,
}

impl<R: Read> Walk<R> {
    fn left(&self) -> u64 {
        self.size.saturating_sub(self.pos)
    }

    fn bytes<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let mut b = [0u8; N];
        self.r
            .read_exact(&mut b)
            .map_err(|_| format!("{what}: the file ends at byte {}", self.pos))?;
        self.pos += N as u64;
        Ok(b)
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        self.bytes::<4>(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        self.bytes::<8>(what).map(u64::from_le_bytes)
    }

    /// A length or count field.
    fn len(&mut self, what: &str) -> Result<u64, String> {
        if self.wide {
            self.u64(what)
        } else {
            self.u32(what).map(u64::from)
        }
    }

    /// Skips `n` bytes, which must be in the file.
    fn skip(&mut self, n: u64, what: &str) -> Result<(), String> {
        if n > self.left() {
            return Err(format!(
                "{what} declares {n} bytes at byte {}, and {} are left in the file",
                self.pos,
                self.left()
            ));
        }
        let copied = std::io::copy(&mut (&mut self.r).take(n), &mut std::io::sink())
            .map_err(|e| format!("{what}: {e}"))?;
        if copied != n {
            return Err(format!(
                "{what}: the file ends at byte {}",
                self.pos + copied
            ));
        }
        self.pos += n;
        Ok(())
    }

    fn string(&mut self, what: &str) -> Result<(), String> {
        let n = self.len(what)?;
        self.skip(n, what)
    }

    fn value(&mut self, t: u32, what: &str, depth: usize) -> Result<(), String> {
        if let Some(n) = scalar_size(t) {
            return self.skip(n, what);
        }
        match t {
            8 => self.string(what),
            9 => {
                if depth > 4 {
                    return Err(format!("{what}: arrays nested more than 4 deep"));
                }
                let inner = self.u32(what)?;
                let count = self.len(what)?;
                match scalar_size(inner) {
                    Some(n) => self.skip(count.saturating_mul(n), what),
                    None => {
                        // Each string or array element takes at least its length field.
                        let least = if self.wide { 8 } else { 4 };
                        if count.saturating_mul(least) > self.left() {
                            return Err(format!(
                                "{what}: {count} elements cannot fit in the {} bytes left",
                                self.left()
                            ));
                        }
                        (0..count).try_for_each(|_| self.value(inner, what, depth + 1))
                    }
                }
            }
            _ => Err(format!("{what}: unknown value type {t}")),
        }
    }
}

/// Checks the header of a GGUF file of `size` bytes read from `r`.
pub fn check_header(r: impl Read, size: u64) -> Result<(), String> {
    let mut w = Walk {
        r,
        pos: 0,
        size,
        wide: true,
    };
    if &w.bytes::<4>("magic")? != b"GGUF" {
        return Err("not a GGUF file (no GGUF magic)".into());
    }
    let version = w.u32("version")?;
    if !(1..=3).contains(&version) {
        return Err(format!("unsupported GGUF version {version}"));
    }
    w.wide = version > 1;
    let tensors = w.len("tensor count")?;
    let kvs = w.len("metadata count")?;
    // Each metadata entry and tensor record takes at least 12 bytes.
    if kvs.saturating_add(tensors).saturating_mul(12) > w.left() {
        return Err(format!(
            "{kvs} metadata entries and {tensors} tensors cannot fit in a {size}-byte file"
        ));
    }
    let mut alignment = 32u64;
    for i in 0..kvs {
        let klen = w.len("metadata key")?;
        if klen > 65_535 {
            return Err(format!("metadata key {i}: a key of {klen} bytes"));
        }
        let mut key = vec![0u8; klen as usize];
        w.r.read_exact(&mut key)
            .map_err(|_| format!("metadata key {i}: the file ends at byte {}", w.pos))?;
        w.pos += klen;
        let key = String::from_utf8_lossy(&key).into_owned();
        let t = w.u32(&key)?;
        if key == "general.alignment" && t == 4 {
            alignment = u64::from(w.u32(&key)?);
            if alignment == 0 || !alignment.is_power_of_two() {
                return Err(format!(
                    "general.alignment {alignment} is not a power of two"
                ));
            }
        } else {
            w.value(t, &key, 0)?;
        }
    }
    let mut extents = Vec::new();
    for i in 0..tensors {
        let what = format!("tensor {i}");
        w.string(&what)?;
        let dims = w.u32(&what)?;
        if dims > 4 {
            return Err(format!("{what}: {dims} dimensions (at most 4)"));
        }
        let mut elements = 1u64;
        for _ in 0..dims {
            let d = w.len(&what)?;
            elements = elements
                .checked_mul(d)
                .ok_or_else(|| format!("{what}: its dimensions overflow"))?;
        }
        let t = w.u32(&what)?;
        let (block, bytes) =
            block_of(t).ok_or_else(|| format!("{what}: unknown tensor type {t}"))?;
        if !elements.is_multiple_of(block) {
            return Err(format!("{what}: {elements} elements in blocks of {block}"));
        }
        let offset = w.u64(&what)?;
        let len = (elements / block)
            .checked_mul(bytes)
            .ok_or_else(|| format!("{what}: its size overflows"))?;
        extents.push((what, offset, len));
    }
    let data_start = w.pos.div_ceil(alignment) * alignment;
    for (what, offset, len) in extents {
        let end = data_start
            .checked_add(offset)
            .and_then(|s| s.checked_add(len))
            .unwrap_or(u64::MAX);
        if end > size {
            return Err(format!(
                "{what}: its {len} bytes at offset {offset} run past the end of the {size}-byte file (truncated?)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fuzz corpus's tiny GGUF (written by gguf-py: 11 tensors, a tokenizer), then the same
    /// bytes with one field made to lie.
    fn tiny() -> Vec<u8> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../w2s-fuzz/corpus/gguf/tiny-llama.gguf"
        );
        std::fs::read(path).unwrap()
    }

    fn check(bytes: &[u8]) -> Result<(), String> {
        check_header(bytes, bytes.len() as u64)
    }

    #[test]
    fn a_valid_header_passes_and_lying_sizes_are_named() {
        let good = tiny();
        check(&good).unwrap();
        // Magic, version 3, tensor count (u64) at 8, metadata count (u64) at 16.
        let mut b = good.clone();
        b[8..16].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let e = check(&b).unwrap_err();
        assert!(e.contains("1099511627776 tensors cannot fit"), "{e}");
        // The first key's length (u64 at 24) made huge.
        let mut b = good.clone();
        b[24..32].copy_from_slice(&(1u64 << 62).to_le_bytes());
        let e = check(&b).unwrap_err();
        assert!(e.contains("metadata key 0"), "{e}");
        // Cut short: the last tensor's bytes are missing.
        let e = check(&good[..good.len() - 10]).unwrap_err();
        assert!(
            e.contains("run past the end") && e.contains("truncated"),
            "{e}"
        );
        assert!(check(b"GGML....").unwrap_err().contains("no GGUF magic"));
        let mut b = good.clone();
        b[4..8].copy_from_slice(&9u32.to_le_bytes());
        assert!(check(&b).unwrap_err().contains("version 9"));
    }

    /// Every string of the header named by its key: a lying length inside the tokenizer's token
    /// list is reported under that key.
    #[test]
    fn a_lying_array_element_names_its_key() {
        let good = tiny();
        let key = b"tokenizer.ggml.tokens";
        let at = good.windows(key.len()).position(|w| w == key).unwrap() + key.len();
        // Value type (u32 = 9, array), element type (u32 = 8, string), count (u64), then the
        // first string's length (u64).
        let mut b = good.clone();
        b[at + 16..at + 24].copy_from_slice(&u64::MAX.to_le_bytes());
        let e = check(&b).unwrap_err();
        assert!(e.starts_with("tokenizer.ggml.tokens declares"), "{e}");
    }
}
