//! RoboVLMs' config JSON (the file a policy was trained with): `parent` inheritance, the
//! top-level `window_size`/`fwd_pred_next_n` that win over `act_head`'s copies, the head, the
//! action normalisation and the backbone/tokenizer paths (fixtures README §4.1).
//!
//! Unknown keys are tolerated (the schema is large and grows); the keys robovlm uses are typed
//! here, and an unsupported combination is an error naming the key.

use std::path::{Path, PathBuf};

use action_heads::{DownSample, HeadKind};
use serde_json::Value;

use crate::error::{Error, Result, read_json};

/// What kind of action space the policy has.
#[derive(Debug, Clone, PartialEq)]
pub enum HeadSpec {
    /// A continuous head (LSTM / FC / GPT) reading the learned action token.
    Continuous {
        /// Decoder type.
        kind: HeadKind,
        /// `act_head.hidden_size` (RoboVLMs default 1024).
        hidden_size: usize,
        /// `act_head.num_layers` (LSTM; default 4).
        num_layers: usize,
        /// GPT blocks (`act_head.n_layer`, default 8 as RoboVLMs' `get_gpt_model`).
        gpt_layers: usize,
        /// GPT heads (`act_head.n_head`, default 8).
        gpt_heads: usize,
    },
    /// `DiscreteDecoder`: actions as tokens of the language model.
    Discrete {
        /// `act_head.n_bin`.
        n_bin: usize,
        /// `act_head.min_action`.
        min_action: f64,
        /// `act_head.max_action`.
        max_action: f64,
    },
}

/// The typed part of a RoboVLMs config.
#[derive(Debug, Clone, PartialEq)]
pub struct RoboVlmsConfig {
    /// The config file.
    pub path: PathBuf,
    /// The merged JSON (after `parent` inheritance).
    pub raw: Value,
    /// History window (top-level `window_size`).
    pub window_size: usize,
    /// Chunk length (top-level `fwd_pred_next_n`).
    pub fwd_pred_next_n: usize,
    /// The head.
    pub head: HeadSpec,
    /// `act_head.action_dim` (7).
    pub action_dim: usize,
    /// `act_head.latent` (1).
    pub latent: usize,
    /// `act_head.down_sample`.
    pub down_sample: DownSample,
    /// `(norm_min, norm_max)` per action dim when `norm_action` is true.
    pub normalization: Option<(Vec<f64>, Vec<f64>)>,
    /// `arm_gripper_loss_ratio` (default 0.01).
    pub arm_gripper_loss_ratio: f64,
    /// `vlm.pretrained_model_name_or_path` as written.
    pub backbone: Option<String>,
}

/// A JSON value for an error message: numbers and short strings as written, anything else by
/// type (never a whole object or a long string from the file).
fn brief(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => robovlm_weights::redact_quotes(&format!("{s:?}")),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// Deep merge: objects merge key by key (child wins), anything else is replaced.
fn merge(base: &mut Value, child: Value) {
    match (base, child) {
        (Value::Object(b), Value::Object(c)) => {
            for (k, v) in c {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Loads a config and its `parent` chain (paths relative to each file's folder).
fn load_merged(path: &Path, depth: usize) -> Result<Value> {
    if depth > 16 {
        return Err(Error::config(path, "parent", "inheritance deeper than 16 levels (a cycle?)"));
    }
    let mut child: Value = read_json(path)?;
    if !child.is_object() {
        return Err(Error::config(path, "<root>", "expected a JSON object"));
    }
    let parent = child.get("parent").cloned();
    match parent {
        Some(Value::String(p)) if !p.is_empty() => {
            let parent_path = path.parent().unwrap_or(Path::new(".")).join(&p);
            if !parent_path.is_file() {
                return Err(Error::config(path, "parent", format!("{} does not exist", parent_path.display())));
            }
            let mut base = load_merged(&parent_path, depth + 1)?;
            if let Some(obj) = child.as_object_mut() {
                obj.remove("parent");
            }
            merge(&mut base, child);
            Ok(base)
        }
        Some(Value::Null) | None => Ok(child),
        Some(Value::String(_)) => Ok(child),
        Some(_) => Err(Error::config(path, "parent", "must be a path string or null")),
    }
}

impl RoboVlmsConfig {
    /// Reads a RoboVLMs config JSON (with `parent` inheritance).
    pub fn from_file(path: &Path) -> Result<Self> {
        let raw = load_merged(path, 0)?;
        let bad = |field: &str, m: &str| Error::config(path, field, m.to_owned());
        // Every size is bounded (far above any RoboVLMs policy) before a module is built from it.
        let uint = |v: Option<&Value>, field: &str, default: Option<usize>| -> Result<usize> {
            const MAX: u64 = 1 << 16;
            match v {
                None | Some(Value::Null) => default.ok_or_else(|| bad(field, "is required")),
                Some(v) => v
                    .as_u64()
                    .filter(|&n| (1..=MAX).contains(&n))
                    .map(|n| n as usize)
                    .ok_or_else(|| bad(field, &format!("must be an integer in 1..={MAX}, found {}", brief(v)))),
            }
        };
        let act = raw.get("act_head").filter(|v| v.is_object()).ok_or_else(|| bad("act_head", "is required"))?;
        // The top-level copies win; RoboVLMs overwrites act_head's with them.
        let window_size = uint(raw.get("window_size").or(act.get("window_size")), "window_size", None)?;
        let fwd_pred_next_n = uint(raw.get("fwd_pred_next_n").or(act.get("fwd_pred_next_n")), "fwd_pred_next_n", None)?;
        let kind = act.get("type").and_then(Value::as_str).ok_or_else(|| bad("act_head.type", "is required"))?;
        let space = act.get("action_space").and_then(Value::as_str).unwrap_or("continuous");
        let head = match kind {
            "DiscreteDecoder" => HeadSpec::Discrete {
                n_bin: uint(act.get("n_bin"), "act_head.n_bin", Some(256))?,
                min_action: act.get("min_action").and_then(Value::as_f64).unwrap_or(-1.0),
                max_action: act.get("max_action").and_then(Value::as_f64).unwrap_or(1.0),
            },
            "LSTMDecoder" | "FCDecoder" | "GPTDecoder" => HeadSpec::Continuous {
                kind: match kind {
                    "LSTMDecoder" => HeadKind::Lstm,
                    "FCDecoder" => HeadKind::Fc,
                    _ => HeadKind::Gpt,
                },
                hidden_size: uint(act.get("hidden_size"), "act_head.hidden_size", Some(1024))?,
                num_layers: uint(act.get("num_layers"), "act_head.num_layers", Some(4))?,
                gpt_layers: uint(act.get("n_layer"), "act_head.n_layer", Some(8))?,
                gpt_heads: uint(act.get("n_head"), "act_head.n_head", Some(8))?,
            },
            other => {
                return Err(bad(
                    "act_head.type",
                    &format!("unknown head type {other:?} (LSTMDecoder, FCDecoder, GPTDecoder, DiscreteDecoder)"),
                ));
            }
        };
        match (&head, space) {
            (HeadSpec::Discrete { n_bin, min_action, max_action }, "discrete") => {
                if *n_bin < 2 || min_action >= max_action {
                    return Err(bad("act_head.n_bin", "need n_bin >= 2 and min_action < max_action"));
                }
            }
            (HeadSpec::Continuous { .. }, "continuous") => {}
            _ => return Err(bad("act_head.action_space", &format!("{space:?} does not fit head type {kind}"))),
        }
        let history = act.get("history_type").and_then(Value::as_str).unwrap_or("post");
        if history != "post" {
            return Err(bad("act_head.history_type", &format!("{history:?} is not supported (only \"post\")")));
        }
        let down_sample = match act.get("down_sample").and_then(Value::as_str).unwrap_or("none") {
            "none" => DownSample::None,
            "pooling" => DownSample::Pooling,
            other => return Err(bad("act_head.down_sample", &format!("{other:?} is not supported (none, pooling)"))),
        };
        let action_dim = uint(act.get("action_dim"), "act_head.action_dim", Some(7))?;
        if action_dim < 2 {
            return Err(bad("act_head.action_dim", "must be at least 2 (arm + gripper)"));
        }
        let normalization = if raw.get("norm_action").and_then(Value::as_bool).unwrap_or(false) {
            let vector = |field: &str| -> Result<Vec<f64>> {
                match raw.get(field) {
                    Some(Value::Number(n)) => Ok(vec![n.as_f64().unwrap_or(0.0); action_dim]),
                    Some(Value::Array(a)) if a.len() == action_dim => {
                        a.iter().map(|v| v.as_f64().ok_or_else(|| bad(field, "must hold numbers"))).collect()
                    }
                    _ => Err(bad(field, &format!("norm_action is true: need a number or {action_dim} numbers"))),
                }
            };
            Some((vector("norm_min")?, vector("norm_max")?))
        } else {
            None
        };
        Ok(Self {
            path: path.to_owned(),
            window_size,
            fwd_pred_next_n,
            head,
            action_dim,
            latent: uint(act.get("latent"), "act_head.latent", Some(1))?,
            down_sample,
            normalization,
            arm_gripper_loss_ratio: raw.get("arm_gripper_loss_ratio").and_then(Value::as_f64).unwrap_or(0.01),
            backbone: raw
                .get("vlm")
                .and_then(|v| v.get("pretrained_model_name_or_path"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            raw,
        })
    }

    /// The backbone directory: `vlm.pretrained_model_name_or_path` relative to the config's
    /// folder, unless `override_dir` is given.
    pub fn backbone_dir(&self, override_dir: Option<&Path>) -> Result<PathBuf> {
        if let Some(d) = override_dir {
            return Ok(d.to_owned());
        }
        let rel = self.backbone.as_deref().ok_or_else(|| {
            Error::config(&self.path, "vlm.pretrained_model_name_or_path", "is required (or pass --backbone)")
        })?;
        Ok(self.path.parent().unwrap_or(Path::new(".")).join(rel))
    }

    /// The continuous head's architecture, given the backbone's text width.
    pub fn head_config(&self, in_features: usize) -> Option<action_heads::HeadConfig> {
        let HeadSpec::Continuous { kind, hidden_size, num_layers, gpt_layers, gpt_heads } = self.head else {
            return None;
        };
        let mut c =
            action_heads::HeadConfig::new(kind, in_features, hidden_size, self.fwd_pred_next_n, self.window_size);
        c.action_dim = self.action_dim;
        c.latent = self.latent;
        c.down_sample = self.down_sample;
        c.num_layers = num_layers;
        c.gpt_layers = gpt_layers;
        c.gpt_heads = gpt_heads;
        Some(c)
    }
}
