//! Each fused op against the composed autograd path it replaces (values and every input gradient,
//! f32, within 1e-5 relative, on random shapes with padding masks) and against f64 central finite
//! differences on tiny shapes.
use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use w2s_kernels::{
    composed_attention, composed_embedding, composed_gated, composed_layer_norm, composed_linear,
    composed_rms_norm, composed_rotary, fused_attention, fused_embedding, fused_gated,
    fused_layer_norm, fused_linear, fused_rms_norm, fused_rotary, linear_in_out, Act,
    AttentionShape,
};

type Op = dyn Fn(&[Tensor]) -> Result<Tensor>;
/// Each input's gradient (None for constants), flattened.
type Gradients = Vec<Option<Vec<f64>>>;

fn random(rng: &mut ChaCha8Rng, shape: &[usize], scale: f64) -> Vec<f64> {
    let n: usize = shape.iter().product();
    (0..n).map(|_| rng.gen_range(-1.0..1.0) * scale).collect()
}

/// An input of a check: its values, shape, and whether it is trained (gets a gradient).
struct Input {
    values: Vec<f64>,
    shape: Vec<usize>,
    trained: bool,
}

fn input(rng: &mut ChaCha8Rng, shape: &[usize], scale: f64) -> Input {
    Input {
        values: random(rng, shape, scale),
        shape: shape.to_vec(),
        trained: true,
    }
}

fn constant(values: Vec<f64>, shape: &[usize]) -> Input {
    Input {
        values,
        shape: shape.to_vec(),
        trained: false,
    }
}

fn tensors(inputs: &[Input], dtype: DType) -> Result<(Vec<Tensor>, Vec<Option<Var>>)> {
    let mut ts = Vec::new();
    let mut vars = Vec::new();
    for i in inputs {
        let t = Tensor::from_vec(i.values.clone(), Shape::from(i.shape.clone()), &Device::Cpu)?
            .to_dtype(dtype)?;
        if i.trained {
            let v = Var::from_tensor(&t)?;
            ts.push(v.as_tensor().clone());
            vars.push(Some(v));
        } else {
            ts.push(t);
            vars.push(None);
        }
    }
    Ok((ts, vars))
}

/// Output and input gradients of `sum(op(inputs) ⊙ weights)`.
fn run(op: &Op, inputs: &[Input], weights: &[f64], dtype: DType) -> Result<(Vec<f64>, Gradients)> {
    let (ts, vars) = tensors(inputs, dtype)?;
    let out = op(&ts)?;
    let w = Tensor::from_vec(weights.to_vec(), out.shape(), &Device::Cpu)?.to_dtype(dtype)?;
    let loss = (&out * &w)?.sum_all()?;
    // The trainer's backward: fused ops hand variables' gradients straight to the store.
    let grads = w2s_kernels::backward(&loss)?;
    let flat =
        |t: &Tensor| -> Result<Vec<f64>> { t.to_dtype(DType::F64)?.flatten_all()?.to_vec1() };
    let mut gs = Vec::new();
    for (i, v) in vars.iter().enumerate() {
        gs.push(match v {
            Some(v) => {
                Some(flat(grads.get(v.as_tensor()).unwrap_or_else(|| {
                    panic!("trained input {i} got no gradient")
                }))?)
            }
            None => None,
        });
    }
    Ok((flat(&out)?, gs))
}

/// The largest difference relative to b's largest magnitude; infinite where either side is NaN
/// (`f64::max` would skip it, and an unwritten output buffer starts as NaN in tests).
fn rel_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-12);
    let diff = |(x, y): (&f64, &f64)| match (x - y).abs() {
        d if d.is_nan() => f64::INFINITY,
        d => d,
    };
    a.iter().zip(b).map(diff).fold(0f64, f64::max) / scale
}

/// Fused and composed agree in f32 on values and every gradient.
fn against_composed(what: &str, fused: &Op, composed: &Op, inputs: &[Input], seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (ts, _) = tensors(inputs, DType::F32).unwrap();
    let n = composed(&ts).unwrap().elem_count();
    let weights = random(&mut rng, &[n], 1.0);
    let (fo, fg) = run(fused, inputs, &weights, DType::F32).unwrap();
    let (co, cg) = run(composed, inputs, &weights, DType::F32).unwrap();
    let d = rel_diff(&fo, &co);
    assert!(d < 1e-5, "{what}: output differs by {d:e} (relative)");
    for (i, (f, c)) in fg.iter().zip(&cg).enumerate() {
        if let (Some(f), Some(c)) = (f, c) {
            let d = rel_diff(f, c);
            assert!(
                d < 1e-5,
                "{what}: gradient of input {i} differs by {d:e} (relative)"
            );
            assert!(
                c.iter().any(|v| *v != 0.0),
                "{what}: input {i} has an all-zero gradient"
            );
        }
    }
}

/// The fused op's f64 gradients against central finite differences of its own forward pass.
fn against_finite_differences(what: &str, fused: &Op, inputs: &mut [Input], seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (ts, _) = tensors(inputs, DType::F64).unwrap();
    let n = fused(&ts).unwrap().elem_count();
    let weights = random(&mut rng, &[n], 1.0);
    let (_, grads) = run(fused, inputs, &weights, DType::F64).unwrap();
    let loss = |inputs: &[Input]| -> f64 {
        let (ts, _) = tensors(inputs, DType::F64).unwrap();
        let out: Vec<f64> = fused(&ts)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        out.iter().zip(&weights).map(|(a, b)| a * b).sum()
    };
    let h = 1e-6;
    for i in 0..inputs.len() {
        let Some(analytic) = grads[i].clone() else {
            continue;
        };
        let mut numeric = vec![0.0; analytic.len()];
        for (j, num) in numeric.iter_mut().enumerate() {
            let x = inputs[i].values[j];
            inputs[i].values[j] = x + h;
            let up = loss(inputs);
            inputs[i].values[j] = x - h;
            let down = loss(inputs);
            inputs[i].values[j] = x;
            *num = (up - down) / (2.0 * h);
        }
        let d = rel_diff(&analytic, &numeric);
        assert!(
            d < 1e-6,
            "{what}: gradient of input {i} is {d:e} (relative) from finite differences"
        );
    }
}

/// `[b, 1, 1, t]` padding bias: the last `pad[i]` keys of row i hidden.
fn padding_bias(b: usize, t: usize, pad: &[usize]) -> Input {
    let mut v = Vec::new();
    for &p in &pad[..b] {
        for j in 0..t {
            v.push(if j + p >= t { -1e9 } else { 0.0 });
        }
    }
    constant(v, &[b, 1, 1, t])
}

/// `[b, 1, t, t]` causal + left-padding bias, `hidden` added to hidden keys.
fn causal_bias(b: usize, t: usize, pad: &[usize], hidden: f64) -> Input {
    let mut v = Vec::new();
    for &p in &pad[..b] {
        for i in 0..t {
            for j in 0..t {
                v.push(if j > i || j < p { hidden } else { 0.0 });
            }
        }
    }
    constant(v, &[b, 1, t, t])
}

fn attention_ops(
    shape: AttentionShape,
    bias_index: usize,
    extra_bias: Option<usize>,
) -> (Box<Op>, Box<Op>) {
    let bias = move |ts: &[Tensor]| -> Result<Tensor> {
        match extra_bias {
            Some(i) => ts[bias_index].broadcast_add(&ts[i]),
            None => Ok(ts[bias_index].clone()),
        }
    };
    let fused: Box<Op> =
        Box::new(move |ts: &[Tensor]| fused_attention(&ts[0], &ts[1], &ts[2], &bias(ts)?, shape));
    let composed: Box<Op> = Box::new(move |ts: &[Tensor]| {
        composed_attention(&ts[0], &ts[1], &ts[2], &bias(ts)?, shape)
    });
    (fused, composed)
}

#[test]
fn attention_matches_composed_with_padding_causal_and_grouped_heads() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    // Encoder layout: q/k/v straight from the projections, [b, t, heads·d], padding mask.
    let (b, t, h, d) = (3, 11, 4, 8);
    let shape = AttentionShape {
        heads: h,
        kv_heads: h,
        scale: 1.0 / (d as f64).sqrt(),
    };
    let inputs = [
        input(&mut rng, &[b, t, h * d], 1.0),
        input(&mut rng, &[b, t, h * d], 1.0),
        input(&mut rng, &[b, t, h * d], 1.0),
        padding_bias(b, t, &[0, 3, 7]),
    ];
    let (f, c) = attention_ops(shape, 3, None);
    against_composed("attention [b,t,hd] + padding", &*f, &*c, &inputs, 2);
    // Decoder layout: [b, heads, t, d], causal + left padding, 2 query heads per key/value head.
    let (kv, t) = (2, 9);
    let shape = AttentionShape {
        heads: h,
        kv_heads: kv,
        scale: 0.3,
    };
    let inputs = [
        input(&mut rng, &[b, h, t, d], 1.0),
        input(&mut rng, &[b, kv, t, d], 1.0),
        input(&mut rng, &[b, kv, t, d], 1.0),
        causal_bias(b, t, &[0, 2, 5], -1e9),
    ];
    let (f, c) = attention_ops(shape, 3, None);
    against_composed("attention GQA causal", &*f, &*c, &inputs, 3);
    // A trained bias (MPNet's relative positions) [1, h, t, t] plus the padding mask.
    let shape = AttentionShape {
        heads: h,
        kv_heads: h,
        scale: 0.25,
    };
    let inputs = [
        input(&mut rng, &[b, t, h * d], 1.0),
        input(&mut rng, &[b, t, h * d], 1.0),
        input(&mut rng, &[b, t, h * d], 1.0),
        padding_bias(b, t, &[1, 0, 4]),
        input(&mut rng, &[1, h, t, t], 1.0),
    ];
    let (f, c) = attention_ops(shape, 3, Some(4));
    against_composed("attention trained bias", &*f, &*c, &inputs, 4);
}

#[test]
fn attention_gradients_match_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (b, t, h, kv, d) = (2, 4, 2, 1, 3);
    let shape = AttentionShape {
        heads: h,
        kv_heads: kv,
        scale: 0.5,
    };
    let mut inputs = [
        input(&mut rng, &[b, h, t, d], 1.0),
        input(&mut rng, &[b, t, kv * d], 1.0),
        input(&mut rng, &[b, t, kv * d], 1.0),
        // A finite hiding value: -1e9 would swamp f64's precision in the differences.
        causal_bias(b, t, &[0, 1], -30.0),
        input(&mut rng, &[1, h, t, t], 0.5),
    ];
    let (f, _) = attention_ops(shape, 3, Some(4));
    against_finite_differences("attention", &*f, &mut inputs, 6);
}

#[test]
fn layer_norm_and_rms_norm_match_composed_and_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let ln_f: Box<Op> = Box::new(|ts: &[Tensor]| fused_layer_norm(&ts[0], &ts[1], &ts[2], 1e-5));
    let ln_c: Box<Op> = Box::new(|ts: &[Tensor]| composed_layer_norm(&ts[0], &ts[1], &ts[2], 1e-5));
    let mut offset = input(&mut rng, &[3, 70, 48], 2.0);
    for v in offset.values.iter_mut() {
        *v += 3.0;
    }
    let inputs = [
        offset,
        input(&mut rng, &[48], 1.0),
        input(&mut rng, &[48], 1.0),
    ];
    against_composed("layer norm", &*ln_f, &*ln_c, &inputs, 8);
    let mut tiny = [
        input(&mut rng, &[3, 5], 1.0),
        input(&mut rng, &[5], 1.0),
        input(&mut rng, &[5], 1.0),
    ];
    against_finite_differences("layer norm", &*ln_f, &mut tiny, 9);
    for plus_one in [false, true] {
        let f: Box<Op> =
            Box::new(move |ts: &[Tensor]| fused_rms_norm(&ts[0], &ts[1], 1e-6, plus_one));
        let c: Box<Op> =
            Box::new(move |ts: &[Tensor]| composed_rms_norm(&ts[0], &ts[1], 1e-6, plus_one));
        let inputs = [
            input(&mut rng, &[2, 67, 40], 1.5),
            input(&mut rng, &[40], 1.0),
        ];
        against_composed("rms norm", &*f, &*c, &inputs, 10);
        let mut tiny = [input(&mut rng, &[4, 6], 1.0), input(&mut rng, &[6], 1.0)];
        against_finite_differences("rms norm", &*f, &mut tiny, 11);
    }
}

#[test]
fn linear_with_each_activation_matches_composed_and_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    for act in [
        Act::Identity,
        Act::GeluErf,
        Act::GeluTanh,
        Act::QuickGelu,
        Act::Silu,
        Act::Relu,
    ] {
        for bias in [true, false] {
            let f: Box<Op> = Box::new(move |ts: &[Tensor]| {
                fused_linear(&ts[0], &ts[1], bias.then(|| &ts[2]), act)
            });
            let c: Box<Op> = Box::new(move |ts: &[Tensor]| {
                composed_linear(&ts[0], &ts[1], bias.then(|| &ts[2]), act)
            });
            let mut inputs = [
                input(&mut rng, &[3, 37, 24], 1.5),
                input(&mut rng, &[40, 24], 0.5),
                input(&mut rng, &[40], 0.5),
            ];
            inputs[2].trained = bias;
            against_composed(
                &format!("linear {act:?} bias {bias}"),
                &*f,
                &*c,
                &inputs,
                13,
            );
            let mut tiny = [
                input(&mut rng, &[2, 3, 4], 1.5),
                input(&mut rng, &[5, 4], 0.7),
                input(&mut rng, &[5], 0.5),
            ];
            tiny[2].trained = bias;
            against_finite_differences(&format!("linear {act:?}"), &*f, &mut tiny, 14);
        }
    }
    // A weight held transposed (GPT-2's Conv1D stores [in, out]).
    let f: Box<Op> =
        Box::new(|ts: &[Tensor]| fused_linear(&ts[0], &ts[1].t()?, Some(&ts[2]), Act::GeluTanh));
    let c: Box<Op> =
        Box::new(|ts: &[Tensor]| composed_linear(&ts[0], &ts[1].t()?, Some(&ts[2]), Act::GeluTanh));
    let inputs = [
        input(&mut rng, &[2, 19, 16], 1.0),
        input(&mut rng, &[16, 24], 0.5),
        input(&mut rng, &[24], 0.5),
    ];
    against_composed("linear transposed weight", &*f, &*c, &inputs, 15);
    // The same weight trained as stored, [in, out]: its gradient comes out [in, out].
    let f: Box<Op> =
        Box::new(|ts: &[Tensor]| linear_in_out(&ts[0], &ts[1], Some(&ts[2]), Act::GeluTanh));
    against_composed("linear stored [in, out]", &*f, &*c, &inputs, 16);
    let mut tiny = [
        input(&mut rng, &[2, 3, 4], 1.5),
        input(&mut rng, &[4, 5], 0.7),
        input(&mut rng, &[5], 0.5),
    ];
    against_finite_differences("linear stored [in, out]", &*f, &mut tiny, 17);
}

/// Thirds of one fused projection (GPT-2's q/k/v), sliced in place and recombined, inside a
/// region against candle's graph: each slice's gradient must land in its own columns.
#[test]
fn slices_of_a_projection_inside_a_region_match_candles_graph() {
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    let layer = |x: &Tensor, ts: &[Tensor]| -> Result<Tensor> {
        let qkv = fused_linear(x, &ts[1], Some(&ts[2]), Act::Identity)?;
        let part = |i: usize| w2s_kernels::narrow(&qkv, 2, i * 6, 6);
        // Each third used differently, so a gradient padded into the wrong columns shows.
        let (q, k, v) = (part(0)?, part(1)?, part(2)?);
        let qk = w2s_kernels::add(
            &w2s_kernels::contiguous(&q)?,
            &fused_gated(
                &w2s_kernels::contiguous(&k)?,
                &w2s_kernels::contiguous(&v)?,
                Act::Silu,
            )?,
        )?;
        fused_linear(&qk, &ts[3], None, Act::GeluErf)
    };
    let inputs = [
        input(&mut rng, &[2, 5, 4], 1.0),
        input(&mut rng, &[18, 4], 0.6),
        input(&mut rng, &[18], 0.4),
        input(&mut rng, &[3, 6], 0.6),
    ];
    let weights = random(&mut rng, &[2 * 5 * 3], 1.0);
    assert_region_matches_graph(layer, &inputs, &weights, &[DType::F32]);
}

/// `layer` run as a taped region against the same layer in candle's graph, its input doubled
/// first (so the region's input is an activation): it ran taped, and the output and every
/// input's (nonzero) gradient match.
fn assert_region_matches_graph(
    layer: impl Fn(&Tensor, &[Tensor]) -> Result<Tensor> + Copy + 'static,
    inputs: &[Input],
    weights: &[f64],
    dtypes: &[DType],
) {
    let plain = move |ts: &[Tensor]| layer(&(&ts[0] * 2.0)?, ts);
    let taped = move |ts: &[Tensor]| {
        let x = (&ts[0] * 2.0)?;
        w2s_kernels::region(&[&x], |xs| layer(&xs[0], ts))
    };
    for &dtype in dtypes {
        let before = w2s_kernels::tape::taped_layers();
        let (y1, g1) = run(&taped, inputs, weights, dtype).unwrap();
        assert_eq!(w2s_kernels::tape::taped_layers(), before + 1, "ran taped");
        let (y0, g0) = run(&plain, inputs, weights, dtype).unwrap();
        assert!(rel_diff(&y1, &y0) < 1e-6, "output: {}", rel_diff(&y1, &y0));
        for (i, (a, c)) in g1.iter().zip(&g0).enumerate() {
            let (a, c) = (a.as_ref().unwrap(), c.as_ref().unwrap());
            assert!(c.iter().any(|&v| v != 0.0), "input {i}: zero gradient");
            assert!(
                rel_diff(a, c) < 1e-5,
                "{dtype:?} input {i}: {}",
                rel_diff(a, c)
            );
        }
    }
}

#[test]
fn overlapping_slices_and_a_shared_gradient_inside_a_region_match_candles_graph() {
    let mut rng = ChaCha8Rng::seed_from_u64(32);
    let layer = |x: &Tensor, ts: &[Tensor]| -> Result<Tensor> {
        let p = fused_linear(x, &ts[1], None, Act::Identity)?;
        let s = fused_linear(x, &ts[2], None, Act::Silu)?;
        // Two overlapping column slices, and a slice along a middle dimension.
        let (a, b) = (
            w2s_kernels::narrow(&s, 2, 0, 3)?,
            w2s_kernels::narrow(&s, 2, 1, 3)?,
        );
        let b = w2s_kernels::contiguous(&b)?;
        let c = w2s_kernels::add(
            &w2s_kernels::contiguous(&a)?,
            &fused_gated(&b, &b, Act::Silu)?,
        )?;
        let u = fused_linear(&c, &ts[3], None, Act::GeluErf)?;
        let rows = w2s_kernels::contiguous(&w2s_kernels::narrow(&s, 1, 1, 3)?)?;
        let rows = fused_linear(&rows, &ts[1], None, Act::Silu)?;
        let rows =
            w2s_kernels::tape::map(&rows, |r| r.pad_with_zeros(1, 1, 1), |g| g.narrow(1, 1, 3))?;
        // s's first gradient comes from a sum, shared with p's until p's backward reads it: the
        // slices' gradients must not be added into that shared buffer.
        let t = w2s_kernels::add(&s, &p)?;
        w2s_kernels::add(&w2s_kernels::add(&t, &u)?, &rows)
    };
    let inputs = [
        input(&mut rng, &[2, 5, 4], 1.0),
        input(&mut rng, &[4, 4], 0.6),
        input(&mut rng, &[4, 4], 0.6),
        input(&mut rng, &[4, 3], 0.6),
    ];
    let weights = random(&mut rng, &[2 * 5 * 4], 1.0);
    assert_region_matches_graph(layer, &inputs, &weights, &[DType::F32, DType::F64]);
}

#[test]
fn frozen_inputs_get_no_gradient_and_inference_keeps_nothing() {
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    // Frozen weight and bias, trained input: only x gets a gradient.
    let x = Var::from_tensor(
        &Tensor::from_vec(random(&mut rng, &[4, 6], 1.0), (4, 6), &Device::Cpu)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap(),
    )
    .unwrap();
    let w = Tensor::from_vec(random(&mut rng, &[3, 6], 1.0), (3, 6), &Device::Cpu)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    let b = Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap();
    let y = fused_linear(x.as_tensor(), &w, Some(&b), Act::Silu).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    assert!(grads.get(x.as_tensor()).is_some());
    assert!(grads.get(&w).is_none() && grads.get(&b).is_none());
    // Nothing trained: the op is recorded without a backward.
    let y = fused_linear(&w, &w, None, Act::Identity).unwrap();
    assert!(!y.track_op());
}

#[test]
fn rotary_matches_composed_and_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    // Partial rotation (Pythia's rotary_pct): 6 of 10 dimensions rotate.
    for (rot, d) in [(8, 8), (6, 10)] {
        let (b, h, t) = (2, 3, 7);
        let angles: Vec<f64> = (0..t * rot)
            .map(|i| (i / rot) as f64 * 0.37 * (1.0 + (i % (rot / 2)) as f64))
            .collect();
        let cos = constant(angles.iter().map(|a| a.cos()).collect(), &[t, rot]);
        let sin = constant(angles.iter().map(|a| a.sin()).collect(), &[t, rot]);
        let f: Box<Op> = Box::new(|ts: &[Tensor]| fused_rotary(&ts[0], &ts[1], &ts[2]));
        let c: Box<Op> = Box::new(|ts: &[Tensor]| composed_rotary(&ts[0], &ts[1], &ts[2]));
        let inputs = [input(&mut rng, &[b, h, t, d], 1.0), cos, sin];
        against_composed("rotary", &*f, &*c, &inputs, 18);
        let mut inputs = inputs;
        against_finite_differences("rotary", &*f, &mut inputs, 19);
    }
}

#[test]
fn embedding_matches_composed_and_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    // Repeated ids (their gradients add up), the first and last rows, and rows on both sides of
    // the backward's 256-row blocks.
    let ids: Vec<u32> = vec![5, 255, 256, 5, 599, 0, 300, 5, 255, 42, 599, 511, 512, 7];
    let ids = Tensor::from_vec(ids, (2, 7), &Device::Cpu).unwrap();
    let same = ids.clone();
    let f: Box<Op> = Box::new(move |ts: &[Tensor]| fused_embedding(&ts[0], &ids));
    let c: Box<Op> = Box::new(move |ts: &[Tensor]| composed_embedding(&ts[0], &same));
    let inputs = [input(&mut rng, &[600, 5], 1.0)];
    against_composed("embedding", &*f, &*c, &inputs, 24);
    let small = Tensor::from_vec(vec![3u32, 0, 260, 3, 299, 3], 6, &Device::Cpu).unwrap();
    let f: Box<Op> = Box::new(move |ts: &[Tensor]| fused_embedding(&ts[0], &small));
    let mut inputs = [input(&mut rng, &[300, 2], 1.0)];
    against_finite_differences("embedding", &*f, &mut inputs, 25);
}

#[test]
fn embedding_rejects_an_id_outside_the_table() {
    let table = Tensor::zeros((4, 3), DType::F32, &Device::Cpu).unwrap();
    let ids = Tensor::from_vec(vec![1u32, 4], 2, &Device::Cpu).unwrap();
    let err = fused_embedding(&table, &ids).unwrap_err().to_string();
    assert!(err.contains("id 4") && err.contains("4 rows"), "{err}");
}

#[test]
fn direct_parameter_gradients_match_candles_store() {
    let mut rng = ChaCha8Rng::seed_from_u64(26);
    let var = |rng: &mut ChaCha8Rng, shape: &[usize]| {
        let t = Tensor::from_vec(random(rng, shape, 0.5), shape, &Device::Cpu)
            .and_then(|t| t.to_dtype(DType::F32))
            .unwrap();
        Var::from_tensor(&t).unwrap()
    };
    let (table, w, b, gamma, beta) = (
        var(&mut rng, &[10, 6]),
        var(&mut rng, &[6, 6]),
        var(&mut rng, &[6]),
        var(&mut rng, &[6]),
        var(&mut rng, &[6]),
    );
    let ids = Tensor::from_vec(vec![1u32, 7, 1, 9, 0], 5, &Device::Cpu).unwrap();
    // W is used by two fused linears and once by a composed op; the table goes through the
    // embedding op and through a non-variable view (its transpose), which must reach candle.
    let loss = || -> Result<Tensor> {
        let x = fused_embedding(table.as_tensor(), &ids)?;
        let h = fused_linear(&x, w.as_tensor(), Some(b.as_tensor()), Act::GeluErf)?;
        let h = fused_layer_norm(&h, gamma.as_tensor(), beta.as_tensor(), 1e-5)?;
        let h = fused_linear(&h, w.as_tensor(), None, Act::Identity)?;
        let scores = h.matmul(&table.as_tensor().t()?)?;
        scores.sqr()?.sum_all()? + (w.as_tensor().sum_all()? * 0.3)?
    };
    let plain = loss().unwrap().backward().unwrap();
    let direct = w2s_kernels::backward(&loss().unwrap()).unwrap();
    for (name, v) in [
        ("table", &table),
        ("w", &w),
        ("b", &b),
        ("gamma", &gamma),
        ("beta", &beta),
    ] {
        let get = |g: &candle_core::backprop::GradStore| -> Vec<f64> {
            let t = g
                .get(v.as_tensor())
                .unwrap_or_else(|| panic!("{name}: no gradient"));
            t.to_dtype(DType::F64)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        let (p, d) = (get(&plain), get(&direct));
        assert!(p.iter().any(|&x| x != 0.0), "{name}: zero gradient");
        assert!(rel_diff(&p, &d) < 1e-6, "{name}: {}", rel_diff(&p, &d));
    }
    // Nothing is left behind for a plain backward afterwards.
    let again = loss().unwrap().backward().unwrap();
    assert!(again.get(b.as_tensor()).is_some() && again.get(gamma.as_tensor()).is_some());
}

#[test]
fn gated_product_with_each_activation_matches_composed_and_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(27);
    for (i, act) in [Act::Silu, Act::GeluTanh, Act::GeluErf, Act::Relu]
        .into_iter()
        .enumerate()
    {
        let f: Box<Op> = Box::new(move |ts: &[Tensor]| fused_gated(&ts[0], &ts[1], act));
        let c: Box<Op> = Box::new(move |ts: &[Tensor]| composed_gated(&ts[0], &ts[1], act));
        // More elements than one parallel task takes, and a ragged last task.
        let shape = [3, 41, 173];
        let inputs = [input(&mut rng, &shape, 2.0), input(&mut rng, &shape, 1.0)];
        against_composed(&format!("gated {act:?}"), &*f, &*c, &inputs, 28 + i as u64);
        if act != Act::Relu {
            let mut inputs = [
                input(&mut rng, &[2, 3, 5], 2.0),
                input(&mut rng, &[2, 3, 5], 1.0),
            ];
            against_finite_differences(&format!("gated {act:?}"), &*f, &mut inputs, 40 + i as u64);
        }
    }
}

/// A pre- and post-norm transformer layer made of every taped op: three projections, per-head
/// RmsNorm and rotary on q, attention with a trained bias (q split into heads, k and v read in
/// place), a residual + LayerNorm, a gated MLP and a second residual. `ts`: x, bias, then the
/// weights in the order [`taped_layer_inputs`] makes them.
fn taped_layer(xs: &[Tensor], ts: &[Tensor], rope: &(Tensor, Tensor)) -> Result<Tensor> {
    let (x, bias) = (&xs[0], &xs[1]);
    let (b, t, hd) = x.dims3()?;
    let (heads, d) = (2, hd / 2);
    let q = fused_linear(x, &ts[2], Some(&ts[3]), Act::Identity)?;
    let k = fused_linear(x, &ts[4], None, Act::Identity)?;
    let v = fused_linear(x, &ts[5], Some(&ts[6]), Act::Identity)?;
    let q = w2s_kernels::map(
        &q,
        |q| q.reshape((b, t, heads, d)),
        move |g| g.reshape((b, t, hd)),
    )?;
    let q = fused_rms_norm(&q, &ts[7], 1e-6, false)?;
    let q = w2s_kernels::map(
        &q,
        |q| q.transpose(1, 2)?.contiguous(),
        |g| g.transpose(1, 2)?.contiguous(),
    )?;
    let q = fused_rotary(&q, &rope.0, &rope.1)?;
    let shape = AttentionShape {
        heads,
        kv_heads: heads,
        scale: 0.5,
    };
    let ctx = fused_attention(&q, &k, &v, bias, shape)?;
    let o = fused_linear(&ctx, &ts[8], Some(&ts[9]), Act::Identity)?;
    let a = fused_layer_norm(&w2s_kernels::add(&o, x)?, &ts[10], &ts[11], 1e-5)?;
    let g = fused_linear(&a, &ts[12], None, Act::Identity)?;
    let u = fused_linear(&a, &ts[13], None, Act::GeluErf)?;
    let f = fused_linear(
        &fused_gated(&g, &u, Act::Silu)?,
        &ts[14],
        None,
        Act::Identity,
    )?;
    w2s_kernels::add(&f, &a)
}

/// x0, a relative-bias table, then the layer's weights (widths: hidden 8, 2 heads, MLP 12).
fn taped_layer_inputs(rng: &mut ChaCha8Rng, b: usize, t: usize) -> Vec<Input> {
    let (h, f) = (8, 12);
    let shapes: [&[usize]; 15] = [
        &[b, t, h],
        &[2, t, t],
        &[h, h],
        &[h],
        &[h, h],
        &[h, h],
        &[h],
        &[h / 2],
        &[h, h],
        &[h],
        &[h],
        &[h],
        &[f, h],
        &[f, h],
        &[h, f],
    ];
    shapes.iter().map(|s| input(rng, s, 0.6)).collect()
}

/// Runs two stacked layers (the second reusing the first's weights), taped or not, on
/// `x = x0·2` (an activation, not a variable) and a bias of the padding mask plus the table.
fn two_layers(ts: &[Tensor], pad: &Tensor, taped: bool) -> Result<Tensor> {
    let (b, t, _) = ts[0].dims3()?;
    let x = (&ts[0] * 2.0)?;
    let bias = pad.broadcast_add(&ts[1].unsqueeze(0)?)?;
    let positions: Vec<f32> = (0..t * 2).map(|i| (i as f32 * 0.37).sin()).collect();
    let cos = Tensor::from_vec(positions.clone(), (t, 2), &Device::Cpu)?;
    let sin = (cos.clone() * 0.5)?;
    let rope = (cos, sin);
    let layer = |x: &Tensor| -> Result<Tensor> {
        if taped {
            w2s_kernels::region(&[x, &bias], |xs| taped_layer(xs, ts, &rope))
        } else {
            taped_layer(&[x.clone(), bias.clone()], ts, &rope)
        }
    };
    let y = layer(&layer(&x)?)?;
    assert_eq!(y.dims(), &[b, t, 8]);
    Ok(y)
}

#[test]
fn taped_layers_match_candles_graph() {
    let mut rng = ChaCha8Rng::seed_from_u64(27);
    let (b, t) = (2, 5);
    let inputs = taped_layer_inputs(&mut rng, b, t);
    let pad = padding_bias(b, t, &[0, 2]).values;
    let pad = Tensor::from_vec(pad, (b, 1, 1, t), &Device::Cpu)
        .and_then(|p| p.to_dtype(DType::F32))
        .unwrap();
    let weights = random(&mut rng, &[b * t * 8], 1.0);
    let plain = {
        let pad = pad.clone();
        move |ts: &[Tensor]| two_layers(ts, &pad, false)
    };
    let taped = move |ts: &[Tensor]| two_layers(ts, &pad, true);
    let (y0, g0) = run(&plain, &inputs, &weights, DType::F32).unwrap();
    let (y1, g1) = run(&taped, &inputs, &weights, DType::F32).unwrap();
    assert!(rel_diff(&y1, &y0) < 1e-6, "output: {}", rel_diff(&y1, &y0));
    for (i, (a, c)) in g1.iter().zip(&g0).enumerate() {
        let (a, c) = (a.as_ref().unwrap(), c.as_ref().unwrap());
        assert!(c.iter().any(|&v| v != 0.0), "input {i}: zero gradient");
        assert!(rel_diff(a, c) < 1e-5, "input {i}: {}", rel_diff(a, c));
    }

    // A layer whose inputs are constants (the first trained layer above frozen ones) still
    // trains its weights.
    let mut frozen = taped_layer_inputs(&mut rng, b, t);
    frozen[0].trained = false;
    frozen[1].trained = false;
    let (_, g0) = run(&plain, &frozen, &weights, DType::F32).unwrap();
    let (_, g1) = run(&taped, &frozen, &weights, DType::F32).unwrap();
    for (i, (a, c)) in g1.iter().zip(&g0).enumerate().skip(2) {
        let (a, c) = (a.as_ref().unwrap(), c.as_ref().unwrap());
        assert!(
            rel_diff(a, c) < 1e-5,
            "frozen inputs, weight {i}: {}",
            rel_diff(a, c)
        );
    }
}

#[test]
fn a_taped_layer_refuses_what_it_cannot_follow() {
    let mut rng = ChaCha8Rng::seed_from_u64(28);
    let (ts, _vars) = tensors(&taped_layer_inputs(&mut rng, 1, 3), DType::F32).unwrap();
    let x = (&ts[0] * 1.0).unwrap();
    // A candle op on an activation inside the region: the tape cannot carry its gradient.
    let untaped = w2s_kernels::region(&[&x], |xs| {
        let doubled = (&xs[0] * 2.0)?;
        fused_linear(&doubled, &ts[2], None, Act::Identity)
    });
    let err = untaped.unwrap_err().to_string();
    assert!(err.contains("did not record"), "{err}");
    // Declared with bypass, the layer runs in candle's graph and trains as usual.
    let bypassed = w2s_kernels::region(&[&x], |xs| {
        w2s_kernels::tape::bypass("a candle op");
        let doubled = (&xs[0] * 2.0)?;
        fused_linear(&doubled, &ts[2], None, Act::Identity)
    })
    .unwrap();
    let grads = w2s_kernels::backward(&bypassed.sum_all().unwrap()).unwrap();
    assert!(grads.get(&ts[2]).is_some() && grads.get(&ts[0]).is_some());
    // Weights' gradients of a taped layer live in the sink: a plain backward says so.
    let taped = w2s_kernels::region(&[&x], |xs| fused_linear(&xs[0], &ts[2], None, Act::Silu));
    let err = taped.unwrap().sum_all().unwrap().backward().unwrap_err();
    assert!(err.to_string().contains("w2s_kernels::backward"), "{err}");
}
