//! The mutator: small random edits of a valid input, the kinds that break parsers.
use rand::Rng;

/// Values that sit on the edges of integer and length fields.
const INTERESTING_BYTES: [u8; 6] = [0, 1, 0x7f, 0x80, 0xfe, 0xff];
const INTERESTING_U64: [u64; 9] = [
    0,
    u16::MAX as u64,
    i32::MAX as u64,
    u32::MAX as u64,
    1 << 32,
    1 << 40,
    1 << 62,
    i64::MAX as u64,
    u64::MAX,
];
/// Numbers for text formats: huge, negative, fractional, not a number.
const INTERESTING_NUMBERS: [&str; 9] = [
    "0",
    "-1",
    "4294967296",
    "18446744073709551616",
    "99999999999999999999999999",
    "1e308",
    "-1e308",
    "NaN",
    "0.5",
];

/// The most a mutated input may grow to.
const MAX_LEN: usize = 1 << 20;

/// One to four random edits of `base`; `other` (another corpus input) is spliced in by some.
pub fn mutate(base: &[u8], other: &[u8], rng: &mut impl Rng) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..rng.gen_range(1..=4) {
        edit(&mut v, other, rng);
        v.truncate(MAX_LEN);
    }
    v
}

fn edit(v: &mut Vec<u8>, other: &[u8], rng: &mut impl Rng) {
    let at = |rng: &mut dyn rand::RngCore, len: usize| {
        if len == 0 {
            0
        } else {
            rng.gen_range(0..len)
        }
    };
    match rng.gen_range(0..11) {
        // Flip one bit.
        0 if !v.is_empty() => {
            let i = at(rng, v.len());
            v[i] ^= 1 << rng.gen_range(0..8);
        }
        // An edge value in one byte.
        1 if !v.is_empty() => {
            let i = at(rng, v.len());
            v[i] = INTERESTING_BYTES[rng.gen_range(0..INTERESTING_BYTES.len())];
        }
        // Cut short.
        2 => {
            let n = at(rng, v.len() + 1);
            v.truncate(n);
        }
        // Delete a range.
        3 if !v.is_empty() => {
            let i = at(rng, v.len());
            let n = rng.gen_range(1..=(v.len() - i).min(64));
            v.drain(i..i + n);
        }
        // Duplicate a range in place.
        4 if !v.is_empty() => {
            let i = at(rng, v.len());
            let n = rng.gen_range(1..=(v.len() - i).min(256));
            let copy = v[i..i + n].to_vec();
            let j = at(rng, v.len() + 1);
            v.splice(j..j, copy);
        }
        // Splice: this input's head, the other's tail.
        5 if !other.is_empty() => {
            let i = at(rng, v.len() + 1);
            let j = at(rng, other.len());
            v.truncate(i);
            v.extend_from_slice(&other[j..]);
        }
        // A huge length field: an edge u16, u32 or u64, little- or big-endian, over any offset.
        6 if !v.is_empty() => {
            let x = INTERESTING_U64[rng.gen_range(0..INTERESTING_U64.len())];
            let width = [2, 4, 8][rng.gen_range(0..3)];
            // The low `width` bytes of x, in either byte order.
            let bytes = if rng.gen_bool(0.8) {
                x.to_le_bytes()[..width].to_vec()
            } else {
                x.to_be_bytes()[8 - width..].to_vec()
            };
            let i = at(rng, v.len());
            let end = (i + width).min(v.len());
            v[i..end].copy_from_slice(&bytes[..end - i]);
        }
        // A number of a text format replaced by an edge one.
        7 => {
            let digits: Vec<usize> = (0..v.len()).filter(|&i| v[i].is_ascii_digit()).collect();
            if let Some(&i) = digits.get(at(rng, digits.len())) {
                let mut j = i;
                while j < v.len() && (v[j].is_ascii_digit() || v[j] == b'.') {
                    j += 1;
                }
                let n = INTERESTING_NUMBERS[rng.gen_range(0..INTERESTING_NUMBERS.len())];
                v.splice(i..j, n.bytes());
            }
        }
        // Deep nesting of a text format.
        8 => {
            let open: &[u8] = [b"[".as_slice(), b"{\"a\":", b"[[", b"a.b."][rng.gen_range(0..4)];
            let depth = rng.gen_range(64..20_000);
            let i = at(rng, v.len() + 1);
            let nest: Vec<u8> = open
                .iter()
                .copied()
                .cycle()
                .take(open.len() * depth)
                .collect();
            v.splice(i..i, nest);
        }
        // Random bytes inserted.
        9 => {
            let n = rng.gen_range(1..32);
            let bytes: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
            let i = at(rng, v.len() + 1);
            v.splice(i..i, bytes);
        }
        // A line or field separator somewhere (text formats: an extra row, an extra column).
        _ => {
            let sep = [b'\n', b',', b'"', b'\\', b'\0', b'\r'][rng.gen_range(0..6)];
            let i = at(rng, v.len() + 1);
            v.insert(i, sep);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn mutations_change_inputs_and_stay_bounded() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let base = b"{\"a\": [1, 2, 3], \"b\": \"text\"}".to_vec();
        let mut changed = 0;
        for _ in 0..2000 {
            let m = mutate(&base, b"other input 42", &mut rng);
            assert!(m.len() <= MAX_LEN);
            changed += usize::from(m != base);
        }
        // A few edits can undo themselves (a truncation to the full length); almost none do.
        assert!(changed > 1900, "{changed} of 2000 changed");
        // An empty input can grow.
        assert!((0..50).any(|_| !mutate(b"", b"", &mut rng).is_empty()));
    }
}
