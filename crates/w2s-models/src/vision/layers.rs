//! Convolutional blocks of the vision backbones, for frozen feature extraction (no autograd
//! concerns: these run in eval mode on fixed weights).
use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::VarBuilder;

/// A 2-D convolution with PyTorch's `nn.Conv2d` names (`weight [out, in/groups, k, k]`, `bias`).
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: usize,
    padding: usize,
    groups: usize,
}

/// The shape of a square convolution.
#[derive(Debug, Clone, Copy)]
pub struct ConvSpec {
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Kernel side.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
    /// Channel groups (`c_in` for a depthwise convolution).
    pub groups: usize,
    /// Whether it has a bias.
    pub bias: bool,
}

impl ConvSpec {
    /// A `kernel × kernel` convolution with stride `stride`, no padding, no groups, with bias.
    pub fn new(c_in: usize, c_out: usize, kernel: usize, stride: usize) -> ConvSpec {
        ConvSpec {
            c_in,
            c_out,
            kernel,
            stride,
            padding: 0,
            groups: 1,
            bias: true,
        }
    }
}

impl Conv2d {
    /// Loads `weight` (and `bias` when the spec has one).
    pub fn load(spec: ConvSpec, vb: VarBuilder) -> Result<Conv2d> {
        let weight = vb.get(
            (
                spec.c_out,
                spec.c_in / spec.groups,
                spec.kernel,
                spec.kernel,
            ),
            "weight",
        )?;
        let bias = if spec.bias {
            Some(vb.get(spec.c_out, "bias")?)
        } else {
            None
        };
        Ok(Conv2d {
            weight,
            bias,
            stride: spec.stride,
            padding: spec.padding,
            groups: spec.groups,
        })
    }
}

impl Conv2d {
    /// The convolution followed by `norm`, as one convolution: the scale multiplies each output
    /// channel's weights and the shift becomes (or adds to) the bias. Exact up to rounding.
    pub fn fold(&self, norm: &BatchNorm) -> Result<Conv2d> {
        let c_out = self.weight.dim(0)?;
        let scale = norm.scale.reshape((c_out, 1, 1, 1))?;
        let shift = norm.shift.reshape(c_out)?;
        let bias = match &self.bias {
            Some(b) => (b.broadcast_mul(&scale.reshape(c_out)?)? + shift)?,
            None => shift,
        };
        Ok(Conv2d {
            weight: self.weight.broadcast_mul(&scale)?,
            bias: Some(bias),
            ..self.clone()
        })
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (c_out, c_per_group, kh, kw) = self.weight.dims4()?;
        let y = if self.groups > 1 && self.groups == c_out && c_per_group == 1 {
            depthwise(x, &self.weight, self.stride, self.padding)?
        } else if (kh, kw, self.stride, self.padding, self.groups) == (1, 1, 1, 0, 1) {
            // A pointwise convolution is a product with the [c_out, c_in] weight, batch by
            // batch, on the NCHW layout as it is: no im2col copy.
            let (b, c, h, w) = x.dims4()?;
            let wt = self.weight.reshape((1, c_out, c))?;
            wt.broadcast_matmul(&x.reshape((b, c, h * w))?)?
                .reshape((b, c_out, h, w))?
        } else {
            x.conv2d(&self.weight, self.padding, self.stride, 1, self.groups)?
        };
        match &self.bias {
            Some(b) => y.broadcast_add(&b.reshape((1, c_out, 1, 1))?),
            None => Ok(y),
        }
    }
}

/// A depthwise convolution. candle runs a grouped convolution as one convolution per group,
/// which for ConvNeXt's and EfficientNet's depthwise layers means hundreds of tiny calls; on the
/// CPU in f32 this is a direct loop per channel (channels in parallel), elsewhere a sum of
/// shifted, per-channel-scaled copies of the input.
fn depthwise(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 && w.dtype() == DType::F32 {
        return depthwise_cpu(x, w, stride, padding);
    }
    depthwise_composed(x, w, stride, padding)
}

fn depthwise_cpu(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    use rayon::prelude::*;
    let (b, c, h, wd) = x.dims4()?;
    let k = w.dim(2)?;
    let oh = (h + 2 * padding - k) / stride + 1;
    let ow = (wd + 2 * padding - k) / stride + 1;
    let xs: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let ws: Vec<f32> = w.flatten_all()?.to_vec1()?;
    let mut out = vec![0f32; b * c * oh * ow];
    out.par_chunks_mut(oh * ow).enumerate().for_each(|(bc, o)| {
        let ch = bc % c;
        let src = &xs[bc * h * wd..(bc + 1) * h * wd];
        let ker = &ws[ch * k * k..(ch + 1) * k * k];
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = 0f32;
                for i in 0..k {
                    let y = (oy * stride + i) as isize - padding as isize;
                    if y < 0 || y >= h as isize {
                        continue;
                    }
                    let row = &src[y as usize * wd..(y as usize + 1) * wd];
                    for j in 0..k {
                        let xx = (ox * stride + j) as isize - padding as isize;
                        if xx >= 0 && xx < wd as isize {
                            acc += row[xx as usize] * ker[i * k + j];
                        }
                    }
                }
                o[oy * ow + ox] = acc;
            }
        }
    });
    Tensor::from_vec(out, (b, c, oh, ow), x.device())
}

fn depthwise_composed(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    let (b, c, h, wd) = x.dims4()?;
    let k = w.dim(2)?;
    let x = x
        .pad_with_zeros(2, padding, padding)?
        .pad_with_zeros(3, padding, padding)?;
    let oh = (h + 2 * padding - k) / stride + 1;
    let ow = (wd + 2 * padding - k) / stride + 1;
    let mut acc = Tensor::zeros((b, c, oh, ow), x.dtype(), x.device())?;
    for i in 0..k {
        for j in 0..k {
            let mut patch =
                x.narrow(2, i, (oh - 1) * stride + 1)?
                    .narrow(3, j, (ow - 1) * stride + 1)?;
            if stride > 1 {
                let rows: Vec<u32> = (0..oh).map(|r| (r * stride) as u32).collect();
                let cols: Vec<u32> = (0..ow).map(|r| (r * stride) as u32).collect();
                let dev = x.device();
                patch = patch
                    .contiguous()?
                    .index_select(&Tensor::new(rows.as_slice(), dev)?, 2)?
                    .contiguous()?
                    .index_select(&Tensor::new(cols.as_slice(), dev)?, 3)?;
            }
            let tap = w.narrow(2, i, 1)?.narrow(3, j, 1)?.reshape((1, c, 1, 1))?;
            acc = (acc + patch.broadcast_mul(&tap)?)?;
        }
    }
    Ok(acc)
}

/// `nn.BatchNorm2d` in eval mode, folded into a per-channel scale and shift.
#[derive(Debug, Clone)]
pub struct BatchNorm {
    scale: Tensor,
    shift: Tensor,
}

impl BatchNorm {
    /// Loads `weight`, `bias`, `running_mean`, `running_var` (eps 1e-5, PyTorch's default).
    pub fn load(channels: usize, vb: VarBuilder) -> Result<BatchNorm> {
        BatchNorm::load_eps(channels, 1e-5, vb)
    }

    /// The same with another epsilon (TensorFlow ports use 1e-3).
    pub fn load_eps(channels: usize, eps: f64, vb: VarBuilder) -> Result<BatchNorm> {
        let w = vb.get(channels, "weight")?.to_dtype(DType::F64)?;
        let b = vb.get(channels, "bias")?.to_dtype(DType::F64)?;
        let mean = vb.get(channels, "running_mean")?.to_dtype(DType::F64)?;
        let var = vb.get(channels, "running_var")?.to_dtype(DType::F64)?;
        let scale = w.broadcast_div(&(var + eps)?.sqrt()?)?;
        let shift = (b - mean.mul(&scale)?)?;
        let dtype = vb.dtype();
        Ok(BatchNorm {
            scale: scale.to_dtype(dtype)?.reshape((1, channels, 1, 1))?,
            shift: shift.to_dtype(dtype)?.reshape((1, channels, 1, 1))?,
        })
    }
}

impl Module for BatchNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.broadcast_mul(&self.scale)?.broadcast_add(&self.shift)
    }
}

/// `nn.MaxPool2d(kernel, stride, padding)`: padding counts as −∞, as in PyTorch.
pub fn max_pool_padded(x: &Tensor, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
    if padding == 0 {
        return x.max_pool2d_with_stride(kernel, stride);
    }
    let (b, c, h, w) = x.dims4()?;
    let neg = |hh: usize, ww: usize| {
        Tensor::full(f32::NEG_INFINITY, (b, c, hh, ww), x.device())?.to_dtype(x.dtype())
    };
    let x = Tensor::cat(&[&neg(padding, w)?, x, &neg(padding, w)?], 2)?;
    let hp = h + 2 * padding;
    let x = Tensor::cat(&[&neg(hp, padding)?, &x, &neg(hp, padding)?], 3)?;
    x.max_pool2d_with_stride(kernel, stride)
}

/// LayerNorm over the channels of a `[b, c, h, w]` tensor (ConvNeXt's `channels_first`).
pub fn layer_norm_channels_first(x: &Tensor, ln: &crate::nn::LayerNorm) -> Result<Tensor> {
    ln.forward(&x.permute((0, 2, 3, 1))?)?.permute((0, 3, 1, 2))
}

/// The mean over the spatial dimensions: `[b, c, h, w]` → `[b, c]`.
pub fn global_average(x: &Tensor) -> Result<Tensor> {
    x.mean(D::Minus1)?.mean(D::Minus1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn depthwise_matches_grouped_convolution() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (2, 4, 9, 7), &dev).unwrap();
        let w = Tensor::randn(0f32, 1.0, (4, 1, 3, 3), &dev).unwrap();
        for (stride, pad) in [(1, 1), (2, 1), (1, 0), (2, 0)] {
            let a = depthwise(&x, &w, stride, pad).unwrap();
            let b = x.conv2d(&w, pad, stride, 1, 4).unwrap();
            let d = (a - b).unwrap().abs().unwrap().max_all().unwrap();
            assert!(
                d.to_scalar::<f32>().unwrap() < 1e-5,
                "stride {stride} pad {pad}"
            );
        }
    }

    #[test]
    fn max_pool_pads_with_negative_infinity() {
        let dev = Device::Cpu;
        // All values negative: zero padding would win the border windows.
        let x = Tensor::new(
            &[[[[-3f32, -1.0, -2.0], [-4.0, -5.0, -6.0], [-7.0, -8.0, -9.0]]]],
            &dev,
        )
        .unwrap();
        let y = max_pool_padded(&x, 3, 2, 1).unwrap();
        // windows centred on (0,0), (0,2), (2,0), (2,2)
        let v: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(v, vec![-1.0, -1.0, -4.0, -5.0]);
    }
}

#[cfg(test)]
mod fold_tests {
    use super::*;
    use candle_core::Device;
    use candle_nn::VarBuilder;
    use std::collections::HashMap;

    /// A convolution then batch norm equals the folded convolution, for a pointwise and a 3×3
    /// one (the pointwise path is a matmul, the other candle's conv2d).
    #[test]
    fn folded_batch_norm_and_pointwise_products_match() {
        let dev = Device::Cpu;
        for (k, pad) in [(1, 0), (3, 1)] {
            let mut t = HashMap::new();
            t.insert(
                "c.weight".to_string(),
                Tensor::randn(0f32, 1.0, (5, 4, k, k), &dev).unwrap(),
            );
            t.insert(
                "n.weight".to_string(),
                Tensor::randn(1f32, 0.3, 5, &dev).unwrap(),
            );
            t.insert(
                "n.bias".to_string(),
                Tensor::randn(0f32, 1.0, 5, &dev).unwrap(),
            );
            t.insert(
                "n.running_mean".to_string(),
                Tensor::randn(0f32, 1.0, 5, &dev).unwrap(),
            );
            t.insert(
                "n.running_var".to_string(),
                (Tensor::rand(0f32, 1.0, 5, &dev).unwrap() + 0.5).unwrap(),
            );
            let vb = VarBuilder::from_tensors(t, DType::F32, &dev);
            let spec = ConvSpec {
                padding: pad,
                bias: false,
                ..ConvSpec::new(4, 5, k, 1)
            };
            let conv = Conv2d::load(spec, vb.pp("c")).unwrap();
            let norm = BatchNorm::load_eps(5, 1e-3, vb.pp("n")).unwrap();
            let x = Tensor::randn(0f32, 1.0, (2, 4, 6, 7), &dev).unwrap();
            let want = norm
                .forward(&x.conv2d(&conv.weight, pad, 1, 1, 1).unwrap())
                .unwrap();
            let got = conv.fold(&norm).unwrap().forward(&x).unwrap();
            let d = (want - got)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(d < 1e-4, "kernel {k}: {d}");
        }
    }
}
