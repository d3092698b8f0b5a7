//! Rotary position embeddings (Su et al. 2021) in Hugging Face's "rotate half" layout, with the
//! frequency rescalings real checkpoints use (`linear`, `llama3`) and partial rotation (Pythia).
//!
//! Configs spell the same thing several ways across transformers versions: `rope_parameters`
//! (transformers 5, possibly one dict per layer type), `rope_scaling` + `rope_theta` (4.x),
//! `rotary_emb_base` + `rotary_pct` (GPT-NeoX). [`RopeSpec::from_config`] reads all of them.
use candle_core::{DType, Device, Result, Tensor};
use serde_json::Value;

/// How the inverse frequencies are rescaled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RopeScaling {
    /// Plain `θ^(-2i/d)`.
    Default,
    /// Every frequency divided by `factor` (position interpolation).
    Linear {
        /// Divisor.
        factor: f64,
    },
    /// Llama 3.1's wavelength-dependent rescaling.
    Llama3 {
        /// Divisor of long wavelengths.
        factor: f64,
        /// Long-wavelength threshold divisor.
        low_freq_factor: f64,
        /// Short-wavelength threshold divisor.
        high_freq_factor: f64,
        /// Context length of pre-training.
        original_max_position_embeddings: f64,
    },
}

/// Everything that decides a rotary table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RopeSpec {
    /// Base θ.
    pub theta: f64,
    /// Frequency rescaling.
    pub scaling: RopeScaling,
    /// `int(head_dim × partial_rotary_factor)`: the denominator of the frequency exponents.
    /// The first `2·⌈rotary_dim/2⌉` dimensions of a head rotate (as in transformers, which makes
    /// one pair per frequency even when this is odd); the rest pass through.
    pub rotary_dim: usize,
}

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

impl RopeSpec {
    /// The rotary settings of `layer_type` (`full_attention`, `sliding_attention`, or `None` for
    /// models with one kind of layer) from a config's JSON, for heads of width `head_dim`.
    /// `default_theta` applies when the config names no base.
    pub fn from_config(
        cfg: &Value,
        layer_type: Option<&str>,
        head_dim: usize,
        default_theta: f64,
    ) -> std::result::Result<RopeSpec, String> {
        let params = cfg.get("rope_parameters").filter(|v| v.is_object());
        // transformers 5 nests one dict per layer type when they differ (Gemma3).
        let params = match (params, layer_type) {
            (Some(p), Some(lt)) if p.get(lt).is_some_and(Value::is_object) => p.get(lt),
            (Some(p), _) if p.get("full_attention").is_some_and(Value::is_object) => {
                p.get("full_attention")
            }
            (p, _) => p,
        };
        let scaling_dict = params.or_else(|| cfg.get("rope_scaling").filter(|v| v.is_object()));
        let old_local = (layer_type == Some("sliding_attention"))
            .then(|| num(cfg, "rope_local_base_freq"))
            .flatten();
        let theta = params
            .and_then(|p| num(p, "rope_theta"))
            .or(old_local)
            .or_else(|| num(cfg, "rope_theta"))
            .or_else(|| num(cfg, "rotary_emb_base"))
            .unwrap_or(default_theta);
        let partial = params
            .and_then(|p| num(p, "partial_rotary_factor"))
            .or_else(|| num(cfg, "partial_rotary_factor"))
            .or_else(|| num(cfg, "rotary_pct"))
            .unwrap_or(1.0);
        // Old Gemma3 configs apply rope_scaling to the global layers only.
        let scaling_dict = if old_local.is_some() && params.is_none() {
            None
        } else {
            scaling_dict
        };
        let kind = scaling_dict
            .and_then(|d| d.get("rope_type").or_else(|| d.get("type")))
            .and_then(Value::as_str)
            .unwrap_or("default");
        let need = |key: &str| -> std::result::Result<f64, String> {
            scaling_dict
                .and_then(|d| num(d, key))
                .ok_or_else(|| format!("rope type {kind:?} needs {key:?}"))
        };
        let scaling = match kind {
            "default" => RopeScaling::Default,
            "linear" => RopeScaling::Linear {
                factor: need("factor")?,
            },
            "llama3" => RopeScaling::Llama3 {
                factor: need("factor")?,
                low_freq_factor: need("low_freq_factor")?,
                high_freq_factor: need("high_freq_factor")?,
                original_max_position_embeddings: need("original_max_position_embeddings")
                    .or_else(|_| {
                        num(cfg, "max_position_embeddings")
                            .ok_or("llama3 rope needs original_max_position_embeddings".to_string())
                    })?,
            },
            other => {
                return Err(format!(
                    "unsupported rope type {other:?}; supported: default, linear, llama3"
                ))
            }
        };
        let rotary_dim = (head_dim as f64 * partial) as usize;
        if rotary_dim.div_ceil(2) * 2 > head_dim || rotary_dim == 0 {
            return Err(format!(
                "rotary dimension {rotary_dim} (head_dim {head_dim} × {partial}) does not fit the head"
            ));
        }
        Ok(RopeSpec {
            theta,
            scaling,
            rotary_dim,
        })
    }

    /// The inverse frequency of each rotated pair, after rescaling, computed in f32 step by step
    /// as transformers does (`1 / θ^(arange(0, d, 2).float() / d)`), so tables agree to the ulp.
    pub fn inv_freq(&self) -> Vec<f32> {
        let d = self.rotary_dim;
        (0..d.div_ceil(2))
            .map(|i| {
                let inv = 1.0f32 / (self.theta as f32).powf((2 * i) as f32 / d as f32);
                match self.scaling {
                    RopeScaling::Default => inv,
                    RopeScaling::Linear { factor } => inv / factor as f32,
                    RopeScaling::Llama3 {
                        factor,
                        low_freq_factor,
                        high_freq_factor,
                        original_max_position_embeddings: old,
                    } => {
                        let (factor, lo, hi) = (
                            factor as f32,
                            low_freq_factor as f32,
                            high_freq_factor as f32,
                        );
                        let old = old as f32;
                        let wavelen = 2.0 * std::f32::consts::PI / inv;
                        if wavelen < old / hi {
                            inv
                        } else if wavelen > old / lo {
                            inv / factor
                        } else {
                            let smooth = (old / wavelen - lo) / (hi - lo);
                            (1.0 - smooth) * inv / factor + smooth * inv
                        }
                    }
                }
            })
            .collect()
    }

    /// `(cos, sin)` tables `[t, 2·⌈rotary_dim/2⌉]` in `dtype` (computed in f32, as transformers
    /// does).
    pub fn tables(&self, t: usize, dtype: DType, device: &Device) -> Result<(Tensor, Tensor)> {
        let inv = self.inv_freq();
        let width = 2 * inv.len();
        let mut angles = Vec::with_capacity(t * width);
        for pos in 0..t {
            for _ in 0..2 {
                angles.extend(inv.iter().map(|f| pos as f32 * f));
            }
        }
        let angles = Tensor::from_vec(angles, (t, width), device)?;
        Ok((
            angles.cos()?.to_dtype(dtype)?,
            angles.sin()?.to_dtype(dtype)?,
        ))
    }
}

/// Applies rotary tables from [`RopeSpec::tables`] to `x [b, heads, t, d]`: the first
/// `rotary_dim` dimensions rotate (frequency i pairs dimension i with i + rotary_dim/2), the rest
/// pass through unchanged.
pub fn apply_rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    w2s_kernels::rotary(x, cos, sin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rope_rotates_pairs_half_apart() {
        let dev = Device::Cpu;
        let plain = RopeSpec {
            theta: 10_000.0,
            scaling: RopeScaling::Default,
            rotary_dim: 4,
        };
        let (cos, sin) = plain.tables(2, DType::F32, &dev).unwrap();
        // x = e0 at position 1: frequency 0 is 1 rad, so (cos 1, 0, sin 1, 0).
        let x = Tensor::new(&[[[[1f32, 0., 0., 0.], [1., 0., 0., 0.]]]], &dev).unwrap();
        let y = apply_rope(&x, &cos, &sin)
            .unwrap()
            .reshape((2, 4))
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(y[0], [1.0, 0.0, 0.0, 0.0]);
        assert!((y[1][0] - 1f32.cos()).abs() < 1e-6 && (y[1][2] - 1f32.sin()).abs() < 1e-6);
        assert_eq!(y[1][1], 0.0);
    }

    #[test]
    fn partial_rotation_passes_the_rest_through() {
        let dev = Device::Cpu;
        let spec = RopeSpec::from_config(&json!({"rotary_pct": 0.5}), None, 4, 10_000.0).unwrap();
        assert_eq!(spec.rotary_dim, 2);
        let (cos, sin) = spec.tables(2, DType::F32, &dev).unwrap();
        let x = Tensor::new(&[[[[1f32, 0., 5., 6.], [1., 0., 5., 6.]]]], &dev).unwrap();
        let y = apply_rope(&x, &cos, &sin)
            .unwrap()
            .reshape((2, 4))
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        // Rotated pair (0, 1) at position 1 by 1 rad; dimensions 2 and 3 untouched.
        assert!((y[1][0] - 1f32.cos()).abs() < 1e-6 && (y[1][1] - 1f32.sin()).abs() < 1e-6);
        assert_eq!(&y[1][2..], &[5.0, 6.0]);
    }

    #[test]
    fn configs_of_every_vintage() {
        // transformers 5
        let s = RopeSpec::from_config(
            &json!({"rope_parameters": {"rope_type": "default", "rope_theta": 500.0, "partial_rotary_factor": 0.25}}),
            None, 16, 10_000.0).unwrap();
        assert_eq!((s.theta, s.rotary_dim), (500.0, 4));
        // 4.x Llama 3 with rope_scaling
        let s = RopeSpec::from_config(
            &json!({"rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", "factor": 8.0,
                "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}),
            None, 64, 10_000.0).unwrap();
        assert_eq!(s.theta, 500000.0);
        assert!(matches!(s.scaling, RopeScaling::Llama3 { factor, .. } if factor == 8.0));
        // GPT-NeoX
        let s = RopeSpec::from_config(
            &json!({"rotary_emb_base": 10000, "rotary_pct": 0.25}),
            None,
            64,
            1.0,
        )
        .unwrap();
        assert_eq!((s.theta, s.rotary_dim), (10000.0, 16));
        // Gemma3, both vintages
        let new = json!({"rope_parameters": {"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
            "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0}}});
        let old = json!({"rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
            "rope_scaling": {"rope_type": "linear", "factor": 8.0}});
        for cfg in [new, old] {
            let local = RopeSpec::from_config(&cfg, Some("sliding_attention"), 8, 1.0).unwrap();
            let global = RopeSpec::from_config(&cfg, Some("full_attention"), 8, 1.0).unwrap();
            assert_eq!(
                (local.theta, local.scaling),
                (10000.0, RopeScaling::Default)
            );
            assert_eq!(
                (global.theta, global.scaling),
                (1e6, RopeScaling::Linear { factor: 8.0 })
            );
        }
        let err = RopeSpec::from_config(
            &json!({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}),
            None,
            8,
            1.0,
        )
        .unwrap_err();
        assert!(err.contains("yarn"), "{err}");
    }

    #[test]
    fn llama3_rescaling_matches_hand_values() {
        // theta 10000, d = 4: inv = [1, 0.01]; wavelengths 2π and 200π. With old = 100,
        // low = 100, high = 25: 2π < 25 stays; 200π > 100 is divided by the factor 8.
        let s = RopeSpec {
            theta: 10_000.0,
            scaling: RopeScaling::Llama3 {
                factor: 8.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 100.0,
            },
            rotary_dim: 4,
        };
        let inv = s.inv_freq();
        assert!(
            (inv[0] - 1.0).abs() < 1e-7 && (inv[1] - 0.01 / 8.0).abs() < 1e-9,
            "{inv:?}"
        );
        // With old = 1000 the second wavelength (628) is medium: smooth = (1000/628.3 - 1) / 3.
        let s = RopeSpec {
            scaling: RopeScaling::Llama3 {
                factor: 8.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 1000.0,
            },
            ..s
        };
        let smooth = (1000.0 / (200.0 * std::f64::consts::PI) - 1.0) / 3.0;
        let want = (1.0 - smooth) * 0.01 / 8.0 + smooth * 0.01;
        assert!((s.inv_freq()[1] as f64 - want).abs() < 1e-9);
    }
}
