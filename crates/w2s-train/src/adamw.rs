//! AdamW (Loshchilov & Hutter 2019) as one in-place pass per parameter on the CPU.
//!
//! candle's `AdamW` runs about ten whole-tensor ops per parameter per step, each allocating its
//! output (for MiniLM-L6's 22.7M parameters: ten 91 MB buffers, page-faulted afresh every step).
//! Here the moments are plain f32 buffers owned by the optimizer, and one loop reads the gradient
//! and updates the moments and the weight in place, element by element, through a candle
//! in-place op. The arithmetic is candle's, operation for operation in f32 (multiplications by
//! the f64 constants rounded to f32, as candle's `affine` does), so the two give bit-identical
//! weights; `tests` checks that. Other devices (CUDA) and dtypes keep candle's composed update.
use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, Layout, Result, Tensor, Var};
use candle_nn::{AdamW as ComposedAdamW, Optimizer, ParamsAdamW};
use rayon::prelude::*;
use std::sync::Mutex;

/// First and second moments of one parameter, flat, in its storage order.
struct Moments {
    m: Vec<f32>,
    v: Vec<f32>,
}

/// One step's constants, and the moments it updates.
struct Step<'a> {
    /// `1 - lr·λ` (decoupled weight decay), and lr.
    decay: f32,
    lr: f32,
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    scale_m: f32,
    scale_v: f32,
    eps: f32,
    moments: &'a Mutex<Moments>,
}

impl candle_core::InplaceOp2 for Step<'_> {
    fn name(&self) -> &'static str {
        "adamw-step"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let (theta, grad) = f32_pair(self.name(), s1, l1, s2, l2)?;
        let mut moments = self.moments.lock().expect("moments lock");
        let Moments { m, v } = &mut *moments;
        if theta.len() != grad.len() || m.len() != theta.len() {
            candle_core::bail!(
                "adamw-step: {} weights, {} gradients, {} moments",
                theta.len(),
                grad.len(),
                m.len()
            );
        }
        // Element-wise, so chunks run in parallel and the result is the same bit for bit.
        const CHUNK: usize = 1 << 15;
        theta
            .par_chunks_mut(CHUNK)
            .zip(grad.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .for_each(|(((theta, grad), m), v)| {
                for (((w, &g), m), v) in theta
                    .iter_mut()
                    .zip(grad)
                    .zip(m.iter_mut())
                    .zip(v.iter_mut())
                {
                    // candle: m·β₁ + g·(1-β₁); v·β₂ + g²·(1-β₂); each `x * c` is affine(c, 0).
                    let next_m = (*m * self.beta1 + 0.0) + (g * self.one_minus_beta1 + 0.0);
                    let next_v = (*v * self.beta2 + 0.0) + ((g * g) * self.one_minus_beta2 + 0.0);
                    let m_hat = next_m * self.scale_m + 0.0;
                    let v_hat = next_v * self.scale_v + 0.0;
                    let decayed = *w * self.decay + 0.0;
                    let adjusted = m_hat / (v_hat.sqrt() * 1.0 + self.eps);
                    *w = decayed - (adjusted * self.lr + 0.0);
                    *m = next_m;
                    *v = next_v;
                }
            });
        Ok(())
    }
}

/// AdamW over a set of variables: the fused in-place update for contiguous f32 CPU variables,
/// candle's composed update for the rest.
pub struct AdamW {
    params: ParamsAdamW,
    step_t: usize,
    fused: Vec<(Var, Mutex<Moments>)>,
    composed: Option<ComposedAdamW>,
}

impl AdamW {
    /// An optimizer of `vars` with `params`; every moment starts at zero.
    pub fn new(vars: Vec<Var>, params: ParamsAdamW) -> Result<Self> {
        let (fusable, rest): (Vec<Var>, Vec<Var>) = vars.into_iter().partition(|v| {
            v.device().is_cpu() && v.dtype() == DType::F32 && v.as_tensor().is_contiguous()
        });
        let fused = fusable
            .into_iter()
            .map(|var| {
                let n = var.elem_count();
                let moments = Moments {
                    m: vec![0.0; n],
                    v: vec![0.0; n],
                };
                (var, Mutex::new(moments))
            })
            .collect();
        let composed = if rest.is_empty() {
            None
        } else {
            Some(ComposedAdamW::new(rest, params.clone())?)
        };
        Ok(AdamW {
            params,
            step_t: 0,
            fused,
            composed,
        })
    }

    /// Sets the learning rate of the next steps.
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.params.lr = lr;
        if let Some(c) = &mut self.composed {
            c.set_learning_rate(lr);
        }
    }

    /// One update of every variable that has a gradient in `grads`.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step_t += 1;
        let p = &self.params;
        let t = self.step_t as i32;
        for (var, moments) in &self.fused {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let g: Tensor = if g.is_contiguous() && g.dtype() == DType::F32 {
                g.clone()
            } else {
                g.to_dtype(DType::F32)?.contiguous()?
            };
            let op = Step {
                decay: (1f64 - p.lr * p.weight_decay) as f32,
                lr: p.lr as f32,
                beta1: p.beta1 as f32,
                one_minus_beta1: (1.0 - p.beta1) as f32,
                beta2: p.beta2 as f32,
                one_minus_beta2: (1.0 - p.beta2) as f32,
                scale_m: (1f64 / (1f64 - p.beta1.powi(t))) as f32,
                scale_v: (1f64 / (1f64 - p.beta2.powi(t))) as f32,
                eps: p.eps as f32,
                moments,
            };
            var.as_tensor().inplace_op2(&g, &op)?;
        }
        if let Some(c) = &mut self.composed {
            c.step(grads)?;
        }
        Ok(())
    }
}

/// The contiguous f32 elements of an in-place op's target and operand, or an error naming `op`.
fn f32_pair<'a>(
    op: &str,
    s1: &'a mut CpuStorage,
    l1: &Layout,
    s2: &'a CpuStorage,
    l2: &Layout,
) -> Result<(&'a mut [f32], &'a [f32])> {
    let (CpuStorage::F32(a), CpuStorage::F32(b)) = (s1, s2) else {
        candle_core::bail!("{op}: f32 tensors only");
    };
    let (Some((a0, a1)), Some((b0, b1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
    else {
        candle_core::bail!("{op}: contiguous tensors only");
    };
    Ok((&mut a[a0..a1], &b[b0..b1]))
}

/// Adds gradient `g` into the accumulated gradient `acc` in place when both are contiguous f32
/// on the CPU (accumulation across minibatches without a fresh buffer per parameter); returns
/// `acc + g` as a new tensor otherwise. `acc` must be a gradient owned by the caller (a
/// `GradStore` entry backward made), never a tensor shared with the model.
pub fn accumulate(acc: Tensor, g: &Tensor) -> Result<Tensor> {
    let fits = acc.device().is_cpu()
        && acc.dtype() == DType::F32
        && g.dtype() == DType::F32
        && acc.shape() == g.shape()
        && acc.is_contiguous()
        && g.is_contiguous();
    if fits {
        w2s_kernels::tape::add_assign(&acc, g)?;
        Ok(acc)
    } else {
        acc + g
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Module};

    /// Weights after `steps` AdamW steps on a small regression, with either optimizer.
    fn train(fused: bool, steps: usize) -> Vec<Vec<f32>> {
        let dev = Device::Cpu;
        let w =
            Var::from_tensor(&Tensor::new(&[[0.3f32, -0.2, 0.5], [0.1, 0.4, -0.6]], &dev).unwrap())
                .unwrap();
        let b = Var::from_tensor(&Tensor::new(&[0.05f32, -0.1], &dev).unwrap()).unwrap();
        let x = Tensor::new(&[[1f32, 2., -1.], [0.5, -0.3, 2.], [-1.5, 0.2, 0.7]], &dev).unwrap();
        let y = Tensor::new(&[[1f32, 0.], [0., 1.], [0.5, 0.5]], &dev).unwrap();
        let params = ParamsAdamW {
            lr: 0.05,
            weight_decay: 0.01,
            ..ParamsAdamW::default()
        };
        let vars = vec![w.clone(), b.clone()];
        let mut fused_opt = AdamW::new(vars.clone(), params.clone()).unwrap();
        let mut composed_opt = ComposedAdamW::new(vars, params).unwrap();
        let lin = candle_nn::Linear::new(w.as_tensor().clone(), Some(b.as_tensor().clone()));
        for step in 0..steps {
            let pred = lin.forward(&x).unwrap();
            let loss = (pred - &y).unwrap().sqr().unwrap().mean_all().unwrap();
            let grads = loss.backward().unwrap();
            if fused {
                fused_opt.set_learning_rate(0.05 / (1 + step) as f64);
                fused_opt.step(&grads).unwrap();
            } else {
                composed_opt.set_learning_rate(0.05 / (1 + step) as f64);
                composed_opt.step(&grads).unwrap();
            }
        }
        [w, b]
            .iter()
            .map(|v| {
                v.as_tensor()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn fused_update_is_bit_identical_to_candles_adamw() {
        let fused = train(true, 7);
        let composed = train(false, 7);
        assert_eq!(fused, composed);
        // ... and it moved the weights (the comparison is not of two untouched copies).
        assert_ne!(fused, train(true, 0));
    }

    #[test]
    fn first_step_matches_the_hand_computed_update() {
        // One weight, gradient g: m̂ = g, v̂ = g², so the step is lr·g/(|g| + ε) ≈ lr·sign(g),
        // after the decay w·(1 - lr·λ).
        let dev = Device::Cpu;
        let w = Var::from_tensor(&Tensor::new(&[2.0f32], &dev).unwrap()).unwrap();
        let loss = (w.as_tensor() * 3.0).unwrap().sum_all().unwrap(); // g = 3
        let grads = loss.backward().unwrap();
        let params = ParamsAdamW {
            lr: 0.1,
            weight_decay: 0.5,
            ..ParamsAdamW::default()
        };
        let mut opt = AdamW::new(vec![w.clone()], params).unwrap();
        opt.step(&grads).unwrap();
        let got = w.as_tensor().to_vec1::<f32>().unwrap()[0];
        let want = 2.0 * (1.0 - 0.1 * 0.5) - 0.1 * 3.0 / (3.0 + 1e-8);
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }
}
