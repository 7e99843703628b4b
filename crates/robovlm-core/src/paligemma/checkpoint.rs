//! THE checkpoint key table of PaliGemma: where each tower's tensors live.
//!
//! Two key layouts exist (fixtures README §3.1): transformers 4.47 writes
//! `vision_tower.vision_model.*`, `multi_modal_projector.*`, `language_model.model.*`;
//! transformers ≥ 4.52 nests them under `model.` (and moves `lm_head`). Modules mirror the
//! checkpoint below these prefixes, so each tower loads with one prefix.

use robovlm_weights::Checkpoint;

/// Key prefixes of one checkpoint layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLayout {
    /// SigLIP tower (`VisionTower` paths follow).
    pub vision: String,
    /// Projector (`Projector` paths follow).
    pub projector: String,
    /// Gemma decoder (`Decoder` paths follow).
    pub language: String,
    /// Untied LM head (`lm_head.weight`); tied models ignore it when present.
    pub lm_head: String,
}

impl KeyLayout {
    /// transformers 4.47 (`PaliGemmaForConditionalGeneration` without the `model.` wrapper),
    /// under `lead` (empty for an HF directory; `model.backbone.` inside a RoboVLMs checkpoint).
    pub fn v4_47(lead: &str) -> Self {
        Self {
            vision: format!("{lead}vision_tower.vision_model."),
            projector: format!("{lead}multi_modal_projector."),
            language: format!("{lead}language_model.model."),
            lm_head: format!("{lead}language_model.lm_head."),
        }
    }

    /// transformers ≥ 4.52 (`PaliGemmaModel` wrapper).
    pub fn v4_52() -> Self {
        Self {
            vision: "model.vision_tower.vision_model.".into(),
            projector: "model.multi_modal_projector.".into(),
            language: "model.language_model.".into(),
            lm_head: "lm_head.".into(),
        }
    }

    /// The layout of an HF PaliGemma checkpoint, detected from its tensor names.
    pub fn detect(checkpoint: &Checkpoint) -> Self {
        let new = Self::v4_52();
        let keys = checkpoint.keys();
        if keys.iter().any(|k| k.starts_with(&new.vision) || k.starts_with(&new.language)) {
            new
        } else {
            Self::v4_47("")
        }
    }
}
