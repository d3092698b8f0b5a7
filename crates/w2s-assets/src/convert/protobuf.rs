//! A minimal protobuf wire-format reader: enough to walk an ONNX model without generated code.
//!
//! ONNX files are protobuf messages; pulling in a protobuf compiler for the handful of fields we
//! read (graph, nodes, initializers) would cost more build time than these hundred lines.

/// One field of a message.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64,
    /// Wire type 2: bytes, a string, a sub-message or a packed array.
    Bytes(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
}

/// Iterates over the fields of one message.
pub struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    /// Starts reading `buf` as a message.
    pub fn new(buf: &'a [u8]) -> Self {
        Fields { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or("field runs past the end of its message")?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let item = (|| {
            let key = self.varint()?;
            let field = u32::try_from(key >> 3).map_err(|_| "field number out of range")?;
            let value = match key & 7 {
                0 => Value::Varint(self.varint()?),
                1 => {
                    self.take(8)?;
                    Value::Fixed64
                }
                2 => {
                    let n = usize::try_from(self.varint()?).map_err(|_| "length out of range")?;
                    Value::Bytes(self.take(n)?)
                }
                5 => Value::Fixed32(u32::from_le_bytes(
                    self.take(4)?.try_into().expect("4 bytes"),
                )),
                w => return Err(format!("unsupported wire type {w}")),
            };
            Ok((field, value))
        })();
        if item.is_err() {
            self.pos = self.buf.len();
        }
        Some(item)
    }
}

/// Decodes a packed array of varints (or a single unpacked one).
pub fn varints(value: Value<'_>) -> Result<Vec<u64>, String> {
    match value {
        Value::Varint(v) => Ok(vec![v]),
        Value::Bytes(b) => {
            let mut f = Fields { buf: b, pos: 0 };
            let mut out = Vec::new();
            while f.pos < b.len() {
                out.push(f.varint()?);
            }
            Ok(out)
        }
        other => Err(format!("expected varints, found {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_varint_bytes_and_packed_fields() {
        // field 1 varint 150; field 2 bytes "hi"; field 3 packed varints [1, 300]
        let msg = [
            0x08, 0x96, 0x01, 0x12, 0x02, b'h', b'i', 0x1a, 0x03, 0x01, 0xac, 0x02,
        ];
        let fields: Vec<_> = Fields::new(&msg).collect::<Result<_, _>>().unwrap();
        assert!(matches!(fields[0], (1, Value::Varint(150))));
        assert!(matches!(fields[1], (2, Value::Bytes(b"hi"))));
        assert_eq!(varints(fields[2].1).unwrap(), vec![1, 300]);
    }

    #[test]
    fn truncated_message_is_an_error() {
        let msg = [0x12, 0x05, b'h'];
        assert!(Fields::new(&msg).next().unwrap().is_err());
    }
}
