//! Where a RoboVLMs checkpoint keeps each part (fixtures README §4.2).
//!
//! RoboVLMs' evaluation strips `module.` and prefixes `model.` when missing, so keys read
//! `model.backbone.<PaliGemma 4.47 key>`, `model.action_token`, `model.act_head.*`. Rather than
//! rewriting every key, the prefix in front of a known part is detected once from the file's
//! tensor names and handed to the loaders.

/// Finds the prefix ending in `part` (e.g. `"act_head."`) among checkpoint keys, accepting the
/// layouts RoboVLMs' key normalisation accepts: `model.act_head.`, `act_head.`,
/// `module.model.act_head.`, `module.act_head.`.
pub fn find_prefix<'k>(keys: impl IntoIterator<Item = &'k str>, part: &str) -> Option<String> {
    const LEADS: [&str; 4] = ["model.", "", "module.model.", "module."];
    let keys: Vec<&str> = keys.into_iter().collect();
    LEADS.iter().map(|lead| format!("{lead}{part}")).find(|prefix| keys.iter().any(|k| k.starts_with(prefix.as_str())))
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
