//! ONNX BERT export → HF-named safetensors.
//!
//! The export we use (paraphrase-MiniLM-L3-v2) keeps HF names for biases, embeddings and
//! LayerNorms, but its Linear weights were renamed `onnx::MatMul_N` and stored as `[in, out]`.
//! Each such weight feeds a MatMul whose output goes into an Add with the HF-named bias, so the
//! weight's name is the bias name with `.bias` → `.weight`, and the matrix is transposed back.
use super::protobuf::{varints, Fields, Value};
use super::F32Tensor;
use std::collections::{BTreeMap, HashMap};

const FLOAT: u64 = 1;

#[derive(Debug, Default)]
struct Node {
    op: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
}

fn utf8(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|e| e.to_string())
}

fn parse_tensor(buf: &[u8]) -> Result<(String, u64, F32Tensor), String> {
    let (mut name, mut dtype, mut dims, mut raw, mut floats) =
        (String::new(), 0, Vec::new(), None, Vec::new());
    for field in Fields::new(buf) {
        match field? {
            (1, v) => dims.extend(varints(v)?),
            (2, Value::Varint(t)) => dtype = t,
            (4, Value::Bytes(b)) => floats.extend(
                b.chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))),
            ),
            (4, Value::Fixed32(f)) => floats.push(f32::from_bits(f)),
            (8, Value::Bytes(b)) => name = utf8(b)?,
            (9, Value::Bytes(b)) => raw = Some(b),
            _ => {}
        }
    }
    let shape: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
    let data = if dtype == FLOAT {
        match raw {
            Some(b) => b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect(),
            None => floats,
        }
    } else {
        Vec::new()
    };
    if dtype == FLOAT && data.len() != shape.iter().product::<usize>() {
        return Err(format!(
            "initializer {name}: {} values for shape {shape:?}",
            data.len()
        ));
    }
    Ok((name, dtype, F32Tensor { shape, data }))
}

fn parse_node(buf: &[u8]) -> Result<Node, String> {
    let mut node = Node::default();
    for field in Fields::new(buf) {
        match field? {
            (1, Value::Bytes(b)) => node.inputs.push(utf8(b)?),
            (2, Value::Bytes(b)) => node.outputs.push(utf8(b)?),
            (4, Value::Bytes(b)) => node.op = utf8(b)?,
            _ => {}
        }
    }
    Ok(node)
}

/// Drops the module path an export may put in front of HF names (`model.0.auto_model.`, `bert.`).
fn hf_name(name: &str) -> String {
    ["embeddings.", "encoder.", "pooler."]
        .iter()
        .filter_map(|root| name.find(root))
        .min()
        .map_or(name, |i| &name[i..])
        .to_string()
}

/// Reads the float initializers of an ONNX BERT model and returns them under HF names,
/// with Linear weights transposed to `[out, in]`.
pub fn bert_weights(model: &[u8]) -> Result<BTreeMap<String, F32Tensor>, String> {
    let graph = Fields::new(model)
        .find_map(|f| match f {
            Ok((7, Value::Bytes(b))) => Some(Ok(b)),
            Err(e) => Some(Err(e)),
            _ => None,
        })
        .ok_or("no graph in the ONNX model")??;
    let (mut inits, mut nodes) = (HashMap::new(), Vec::new());
    for field in Fields::new(graph) {
        match field? {
            (1, Value::Bytes(b)) => nodes.push(parse_node(b)?),
            (5, Value::Bytes(b)) => {
                let (name, dtype, t) = parse_tensor(b)?;
                if dtype == FLOAT {
                    inits.insert(name, t);
                }
            }
            _ => {}
        }
    }
    // MatMul output → the HF-named bias added to it.
    let mut bias_of_output = HashMap::new();
    for n in nodes.iter().filter(|n| n.op == "Add") {
        if let Some(bias) = n
            .inputs
            .iter()
            .find(|i| i.ends_with(".bias") && inits.contains_key(*i))
        {
            for other in n.inputs.iter().filter(|i| *i != bias) {
                bias_of_output.insert(other.clone(), bias.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    for n in nodes.iter().filter(|n| n.op == "MatMul") {
        let Some(weight) = n.inputs.iter().find(|i| inits.contains_key(*i)) else {
            continue;
        };
        let output = n.outputs.first().ok_or("MatMul without output")?;
        let bias = bias_of_output
            .get(output)
            .ok_or_else(|| format!("MatMul {weight} is not followed by a bias Add"))?;
        let hf = hf_name(&format!("{}.weight", bias.trim_end_matches(".bias")));
        let w = inits.remove(weight).expect("checked above");
        let [rows, cols] = w.shape[..] else {
            return Err(format!("{weight}: expected a matrix, got {:?}", w.shape));
        };
        let mut t = vec![0f32; rows * cols];
        for r in 0..rows {
            for c in 0..cols {
                t[c * rows + r] = w.data[r * cols + c];
            }
        }
        out.insert(
            hf,
            F32Tensor {
                shape: vec![cols, rows],
                data: t,
            },
        );
    }
    for (name, t) in inits {
        if name.starts_with("onnx::") || name.contains("position_ids") {
            continue;
        }
        out.insert(hf_name(&name), t);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_prefixes_are_dropped() {
        assert_eq!(
            hf_name("model.0.auto_model.encoder.layer.0.output.dense.weight"),
            "encoder.layer.0.output.dense.weight"
        );
        assert_eq!(
            hf_name("bert.embeddings.LayerNorm.bias"),
            "embeddings.LayerNorm.bias"
        );
        assert_eq!(hf_name("classifier.bias"), "classifier.bias");
    }
}
