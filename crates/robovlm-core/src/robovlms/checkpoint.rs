//! A RoboVLMs policy on disk: its files, and where its checkpoint keeps each part
//! (fixtures README §4.2).
//!
//! RoboVLMs' evaluation strips `module.` and prefixes `model.` when missing, so keys read
//! `model.backbone.<PaliGemma 4.47 key>`, `model.action_token`, `model.act_head.*`. Rather than
//! rewriting every key, the prefix in front of each part is detected once from the tensor names.

use std::path::{Path, PathBuf};

use robovlm_weights::{Checkpoint, LoadError, LoadErrorKind};

use crate::error::{Error, Result};
use crate::paligemma::KeyLayout;

/// The files a policy is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFiles {
    /// The RoboVLMs config JSON.
    pub config: PathBuf,
    /// The checkpoint: safetensors, or a PyTorch/Lightning `.pt`/`.ckpt` (read without
    /// executing pickle code).
    pub checkpoint: PathBuf,
    /// The PaliGemma directory for config, tokenizer and processor (`None`: from the config's
    /// `vlm.pretrained_model_name_or_path`, relative to the config file).
    pub backbone: Option<PathBuf>,
}

impl PolicyFiles {
    /// A policy directory: `robovlm_config.json` plus `policy.safetensors` (preferred),
    /// `policy.pt` or `policy.ckpt`.
    pub fn in_dir(dir: &Path) -> Result<Self> {
        let config = dir.join("robovlm_config.json");
        if !config.is_file() {
            return Err(Error::io(
                &config,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no robovlm_config.json in the policy directory"),
            ));
        }
        let checkpoint = ["policy.safetensors", "policy.pt", "policy.ckpt"]
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                Error::io(
                    dir.join("policy.safetensors"),
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no policy.safetensors, policy.pt or policy.ckpt",
                    ),
                )
            })?;
        Ok(Self { config, checkpoint, backbone: None })
    }
}

/// Finds the prefix ending in `part` (e.g. `"act_head."`) among checkpoint keys, accepting the
/// layouts RoboVLMs' key normalisation accepts: `model.act_head.`, `act_head.`,
/// `module.model.act_head.`, `module.act_head.`.
pub fn find_prefix<'k>(keys: impl IntoIterator<Item = &'k str>, part: &str) -> Option<String> {
    const LEADS: [&str; 4] = ["model.", "", "module.model.", "module."];
    let keys: Vec<&str> = keys.into_iter().collect();
    LEADS.iter().map(|lead| format!("{lead}{part}")).find(|prefix| keys.iter().any(|k| k.starts_with(prefix.as_str())))
}

/// An opened policy checkpoint with the prefix of each part located.
#[derive(Debug)]
pub struct PolicyCheckpoint {
    /// The tensors.
    pub checkpoint: Checkpoint,
    /// Key layout of the PaliGemma backbone inside it (`model.backbone.` + 4.47 keys).
    pub backbone: KeyLayout,
    /// Prefix of the continuous head (`model.act_head.`), when the checkpoint has one.
    pub head: Option<String>,
    /// Key of the learned action token (`model.action_token`), when the checkpoint has one.
    pub action_token: Option<String>,
}

impl PolicyCheckpoint {
    /// Opens `path` and locates the backbone, head and action token; any tensor outside those
    /// parts is an error naming it (a checkpoint of another model must not half-load).
    pub fn open(path: &Path) -> Result<Self> {
        let checkpoint = Checkpoint::open(path)?;
        let keys = checkpoint.keys();
        let bad = |kind, reason: String| Error::from(LoadError { file: path.to_owned(), tensor: None, kind, reason });
        let lead = find_prefix(keys.iter().copied(), "backbone.")
            .ok_or_else(|| bad(LoadErrorKind::Missing, "no backbone.* tensors (not a RoboVLMs checkpoint?)".into()))?;
        let head = find_prefix(keys.iter().copied(), "act_head.");
        let action_token = find_prefix(keys.iter().copied(), "action_token").filter(|k| keys.contains(&k.as_str()));
        let known = |k: &&str| {
            k.starts_with(&lead)
                || head.as_deref().is_some_and(|h| k.starts_with(h))
                || action_token.as_deref() == Some(*k)
        };
        let unexpected: Vec<&str> = keys.iter().copied().filter(|k| !known(k)).collect();
        if !unexpected.is_empty() {
            return Err(bad(LoadErrorKind::Unexpected, format!("unexpected tensors: {unexpected:?}")));
        }
        Ok(Self { backbone: KeyLayout::v4_47(&lead), head, action_token, checkpoint })
    }

    /// An error about this checkpoint (and `tensor`, when one is at fault).
    pub(crate) fn error(&self, tensor: Option<&str>, kind: LoadErrorKind, reason: impl Into<String>) -> Error {
        let file = self.checkpoint.path().to_owned();
        Error::from(LoadError { file, tensor: tensor.map(str::to_owned), kind, reason: reason.into() })
    }
}

#[cfg(test)]
mod tests {
    use super::find_prefix;

    #[test]
    fn prefixes() {
        assert_eq!(
            find_prefix(["model.act_head.rnn.x", "model.action_token"], "act_head.").as_deref(),
            Some("model.act_head.")
        );
        assert_eq!(find_prefix(["act_head.mlp.0.weight"], "act_head.").as_deref(), Some("act_head."));
        assert_eq!(find_prefix(["module.act_head.mlp.0.weight"], "act_head.").as_deref(), Some("module.act_head."));
        assert_eq!(find_prefix(["x"], "act_head."), None);
    }
}
