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

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let c_out = self.weight.dim(0)?;
        let y = if self.groups > 1 && self.groups == c_out && self.weight.dim(1)? == 1 {
            depthwise(x, &self.weight, self.stride, self.padding)?
        } else {
            x.conv2d(&self.weight, self.padding, self.stride, 1, self.groups)?
        };
        match &self.bias {
            Some(b) => y.broadcast_add(&b.reshape((1, c_out, 1, 1))?),
            None => Ok(y),
        }
    }
}

/// A depthwise convolution as a sum of shifted, per-channel-scaled copies of the input: candle
/// runs a grouped convolution as one convolution per group, which for ConvNeXt's 7×7 depthwise
/// layers means hundreds of tiny calls.
fn depthwise(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
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
