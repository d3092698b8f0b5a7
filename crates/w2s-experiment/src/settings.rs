//! The experiment's settings, declared once. Each [`Setting`] is a key of a sweep file's
//! `[experiment]` table (a path into [`ExperimentConfig`]'s serde form) and, under its `flag`
//! name, an option of `w2s run`, with one help text; [`ExperimentConfig::from_table`] turns
//! either into a config, over the defaults of its mode, and checks it.
//!
//! A new setting is a field of the config (with its default) and one line in [`SETTINGS`].
use crate::config::{ExperimentConfig, Mode};
use w2s_train::{Adapt, LossSchedule, TrainConfig};

/// One setting.
pub struct Setting {
    /// The `w2s run` option, without `--`.
    pub flag: &'static str,
    /// Its path in `[experiment]` (`train.epochs`): a sweep file's key.
    pub key: &'static str,
    /// The value's name in help (`N`); empty for a switch, which takes no value.
    pub value: &'static str,
    /// One help text for both.
    pub help: &'static str,
    /// The value a flag's text (a switch: `""`) sets at `key`.
    pub parse: fn(&str) -> Result<toml::Value, String>,
}

fn whole(text: &str) -> Result<toml::Value, String> {
    text.parse::<i64>()
        .ok()
        .filter(|v| *v >= 0)
        .map(toml::Value::Integer)
        .ok_or_else(|| format!("`{text}` is not a whole number ≥ 0"))
}

fn number(text: &str) -> Result<toml::Value, String> {
    text.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .map(toml::Value::Float)
        .ok_or_else(|| format!("`{text}` is not a number"))
}

fn one_of(text: &str, choices: &[&str]) -> Result<toml::Value, String> {
    if choices.contains(&text) {
        Ok(toml::Value::String(text.into()))
    } else {
        Err(format!("`{text}` is not one of {}", choices.join(", ")))
    }
}

fn serialized<T: serde::Serialize>(value: T) -> Result<toml::Value, String> {
    toml::Value::try_from(value).map_err(|e| e.to_string())
}

/// Every setting, in the order `w2s run --help` lists them.
pub const SETTINGS: &[Setting] = &[
    Setting {
        flag: "mode",
        key: "mode",
        value: "probe|finetune",
        help: "probe: frozen encoders, cached features, a linear head (fast). finetune: the encoder trains end to end with the head (slow on a CPU; the defaults then change to 2,000 rows, 3 epochs, batch 32, lr 5e-5)",
        parse: |t| one_of(t, &["probe", "finetune"]),
    },
    Setting {
        flag: "train-layers",
        key: "finetune.adapt",
        value: "K",
        help: "finetune: train only the top K transformer layers (and the head)",
        parse: |t| {
            let k = t.parse::<usize>().map_err(|_| format!("`{t}` is not a layer count"))?;
            serialized(Adapt::TopLayers(k))
        },
    },
    Setting {
        flag: "lora",
        key: "finetune.adapt",
        value: "R",
        help: "finetune: freeze the pretrained weights and train rank-R LoRA adapters (alpha = 2R) on the query, key, value, attention-output and feed-forward projections of every layer",
        parse: |t| match t.parse::<usize>() {
            Ok(rank) if rank > 0 => serialized(Adapt::Lora {
                rank,
                alpha: 2.0 * rank as f64,
            }),
            _ => Err(format!("`{t}`: a LoRA rank is a whole number ≥ 1")),
        },
    },
    Setting {
        flag: "dtype",
        key: "dtype",
        value: "f32|bf16|f16|int8",
        help: "Precision of frozen weights (probe features, frozen layers, LoRA's base) and of the forward pass; trained weights and optimizer state stay f32. bf16 on a CPU is faster only with AMX or a fast AVX512-BF16 (Zen 4, Zen 5); w2s warns where it measures it slower. int8: 8-bit integer products of frozen weights on the CPU (32-element blocks, exact for a GGUF's Q8_0/Q5_0/Q4_0 blocks; activations quantized per block), fast with AVX-512 VNNI",
        parse: |t| one_of(t, &w2s_models::WeightDtype::NAMES),
    },
    Setting {
        flag: "labels",
        key: "labels",
        value: "soft|hard",
        help: "Student targets: the weak model's probabilities (soft) or its argmax (hard)",
        parse: |t| one_of(t, &["soft", "hard"]),
    },
    Setting {
        flag: "logconf-oai",
        key: "loss_schedule",
        value: "",
        help: "Use the official code's logconf warm-up (0.05 for 10% of steps, then 0.5) instead of a linear ramp",
        parse: |_| serialized(LossSchedule::openai()),
    },
    Setting {
        flag: "max-rows",
        key: "max_rows",
        value: "N",
        help: "Rows kept per dataset after balancing (whole groups; 0 = all)",
        parse: whole,
    },
    Setting {
        flag: "no-balance",
        key: "balance",
        value: "",
        help: "Keep the datasets' own label balance instead of undersampling to 50/50",
        parse: |_| Ok(toml::Value::Boolean(false)),
    },
    Setting {
        flag: "max-len",
        key: "max_len",
        value: "N",
        help: "Maximum tokens per row; longer rows lose their beginning (the question and answer survive)",
        parse: whole,
    },
    Setting {
        flag: "epochs",
        key: "train.epochs",
        value: "N",
        help: "Training epochs of every model",
        parse: whole,
    },
    Setting {
        flag: "lr",
        key: "train.lr",
        value: "RATE",
        help: "Peak learning rate (AdamW, cosine decay)",
        parse: number,
    },
    Setting {
        flag: "warmup",
        key: "train.warmup_frac",
        value: "FRACTION",
        help: "Share of the optimizer steps over which the learning rate rises linearly from 0 before the cosine decay (e.g. 0.1)",
        parse: number,
    },
    Setting {
        flag: "batch-size",
        key: "train.batch_size",
        value: "N",
        help: "Rows per optimizer step",
        parse: whole,
    },
    Setting {
        flag: "minibatch",
        key: "train.minibatch_size",
        value: "N",
        help: "Rows per forward/backward pass: gradients of the minibatches of a batch are accumulated (only one minibatch's graph is kept). Per-batch statistics of logconf's threshold are then per minibatch (docs/experiment.md)",
        parse: whole,
    },
];

/// Sets `value` at the dotted `key` of `table`, making the tables on the way.
pub fn insert(table: &mut toml::Table, key: &str, value: toml::Value) {
    match key.split_once('.') {
        None => {
            table.insert(key.to_string(), value);
        }
        Some((head, rest)) => {
            let inner = table
                .entry(head.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !inner.is_table() {
                *inner = toml::Value::Table(toml::Table::new());
            }
            if let toml::Value::Table(t) = inner {
                insert(t, rest, value);
            }
        }
    }
}

/// The value at the dotted `key` of `table`.
fn lookup<'t>(table: &'t toml::Table, key: &str) -> Option<&'t toml::Value> {
    match key.split_once('.') {
        None => table.get(key),
        Some((head, rest)) => lookup(table.get(head)?.as_table()?, rest),
    }
}

/// Settings whose value is an enum (a table naming its variant): an override replaces them
/// whole, where other tables are merged key by key.
const WHOLE: &[&str] = &["loss_schedule", "finetune.adapt"];

/// Puts every key of `over` into `base`, recursing into tables (but for [`WHOLE`] values).
fn merge(base: &mut toml::Table, over: &toml::Table, path: &str) {
    for (k, v) in over {
        let key = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        match (base.get_mut(k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o))
                if !WHOLE.contains(&key.as_str()) =>
            {
                merge(b, o, &key)
            }
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

/// `[default: …]` for a setting's help: its value in probe mode, and in fine-tuning mode when
/// that differs. Empty for a switch.
pub fn default_text(setting: &Setting) -> String {
    if setting.value.is_empty() {
        return String::new();
    }
    let show = |cfg: ExperimentConfig| {
        toml::Table::try_from(cfg)
            .ok()
            .and_then(|t| lookup(&t, setting.key).cloned())
            .map(|v| match v {
                toml::Value::String(s) => s,
                toml::Value::Table(_) => "all layers".to_string(),
                other => other.to_string(),
            })
    };
    match (
        show(ExperimentConfig::default()),
        show(ExperimentConfig::finetune_defaults()),
    ) {
        (Some(p), Some(f)) if p != f && setting.key != "mode" => {
            format!("[default: {p}, finetune {f}]")
        }
        (Some(p), _) if !setting.key.starts_with("finetune.") => format!("[default: {p}]"),
        _ => String::new(),
    }
}

impl ExperimentConfig {
    /// The config a sweep file's `[experiment]` table (or `w2s run`'s flags, made into one)
    /// describes: its keys over the defaults of its mode (fine-tuning starts from fewer rows,
    /// fewer epochs, a smaller batch and rate), checked.
    pub fn from_table(over: &toml::Table) -> Result<ExperimentConfig, String> {
        let finetune = over.get("mode").and_then(|m| m.as_str()) == Some("finetune");
        let base = if finetune {
            ExperimentConfig::finetune_defaults()
        } else {
            ExperimentConfig::default()
        };
        let mut table = toml::Table::try_from(base).map_err(|e| e.to_string())?;
        merge(&mut table, over, "");
        let cfg: ExperimentConfig = table
            .try_into()
            .map_err(|e: toml::de::Error| e.to_string())?;
        cfg.check()?;
        Ok(cfg)
    }

    /// Settings that parse but cannot run.
    pub fn check(&self) -> Result<(), String> {
        let TrainConfig {
            warmup_frac,
            batch_size,
            epochs,
            ..
        } = self.train;
        if !(0.0..1.0).contains(&warmup_frac) {
            return Err(format!(
                "train.warmup_frac (--warmup) is a share of the training steps in [0, 1), got {warmup_frac}"
            ));
        }
        if batch_size == 0 || epochs == 0 {
            return Err("train.batch_size and train.epochs must be at least 1".into());
        }
        if self.mode != Mode::Finetune && self.finetune.adapt != Adapt::All {
            return Err(
                "finetune.adapt (--train-layers, --lora) needs mode = \"finetune\" (--mode finetune)"
                    .into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(pairs: &[(&str, &str)]) -> Result<ExperimentConfig, String> {
        let mut table = toml::Table::new();
        for (flag, text) in pairs {
            let s = SETTINGS.iter().find(|s| s.flag == *flag).unwrap();
            insert(&mut table, s.key, (s.parse)(text)?);
        }
        ExperimentConfig::from_table(&table)
    }

    /// A flag and the sweep file key it names set the same field.
    #[test]
    fn every_flag_and_its_key_set_the_same_config() {
        for (flag, text) in [
            ("epochs", "7"),
            ("lr", "0.01"),
            ("max-rows", "500"),
            ("max-len", "64"),
            ("warmup", "0.1"),
            ("batch-size", "16"),
            ("minibatch", "8"),
            ("labels", "hard"),
            ("dtype", "bf16"),
            ("no-balance", ""),
            ("logconf-oai", ""),
        ] {
            let by_flag = flags(&[(flag, text)]).unwrap();
            assert_ne!(
                by_flag,
                ExperimentConfig::default(),
                "--{flag} changes something"
            );
            let s = SETTINGS.iter().find(|s| s.flag == flag).unwrap();
            let file: toml::Table =
                toml::from_str(&format!("{} = {}", s.key, (s.parse)(text).unwrap())).unwrap();
            assert_eq!(
                ExperimentConfig::from_table(&file).unwrap(),
                by_flag,
                "{flag}"
            );
        }
        let cfg = flags(&[("epochs", "7"), ("lr", "0.01")]).unwrap();
        assert_eq!((cfg.train.epochs, cfg.train.lr), (7, 0.01));
    }

    #[test]
    fn finetune_starts_from_its_own_defaults_and_adapters_need_it() {
        let cfg = flags(&[("mode", "finetune"), ("lora", "4")]).unwrap();
        assert_eq!(
            cfg.train.epochs,
            ExperimentConfig::finetune_defaults().train.epochs
        );
        assert_eq!(
            cfg.finetune.adapt,
            Adapt::Lora {
                rank: 4,
                alpha: 8.0
            }
        );
        assert!(flags(&[("lora", "4")]).unwrap_err().contains("needs mode"));
        assert!(flags(&[("lora", "0")]).is_err());
        assert!(flags(&[("warmup", "1.5")]).unwrap_err().contains("[0, 1)"));
        assert!(flags(&[("epochs", "x")]).is_err());
        assert!(flags(&[("dtype", "f8")])
            .unwrap_err()
            .contains("f32, bf16, f16, int8"));
        let dtype = SETTINGS.iter().find(|s| s.flag == "dtype").unwrap();
        assert_eq!(dtype.value, w2s_models::WeightDtype::NAMES.join("|"));
    }

    #[test]
    fn help_shows_both_defaults_where_they_differ() {
        let of = |flag: &str| default_text(SETTINGS.iter().find(|s| s.flag == flag).unwrap());
        assert_eq!(of("epochs"), "[default: 20, finetune 3]");
        assert_eq!(of("max-len"), "[default: 128]");
        assert_eq!(of("mode"), "[default: probe]");
        assert_eq!(of("no-balance"), "");
        // Every key is a path of the config's serde form (a minibatch of 0 is left out of it).
        let mut cfg = ExperimentConfig::default();
        cfg.train.minibatch_size = 1;
        let table = toml::Table::try_from(cfg).unwrap();
        for s in SETTINGS {
            assert!(lookup(&table, s.key).is_some(), "{} names no field", s.key);
        }
    }
}
