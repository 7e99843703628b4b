//! Server settings (the `robovlm serve` flags).

use std::net::SocketAddr;

use robovlm_core::robovlms::Execution;

/// How the server listens and what it accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeOptions {
    /// Address to bind; the default is loopback only — exposing the server is explicit.
    pub addr: SocketAddr,
    /// Required `Authorization: Api-Key <key>` (openpi clients send it when given `api_key`).
    pub api_key: Option<String>,
    /// Connections served at once; more are closed with code 1013 and a reason.
    pub max_sessions: usize,
    /// Largest WebSocket message accepted, in bytes (larger ones close the connection with
    /// code 1009 before their payload is buffered).
    pub max_message_bytes: usize,
    /// Observation keys of camera images; the first is the policy's camera, the others are
    /// accepted and reported as unused (a wrist camera until a policy reads one).
    pub image_keys: Vec<String>,
    /// Observation key of the instruction.
    pub prompt_key: String,
    /// Which action of the chunks the `action` response key carries.
    pub execution: Execution,
    /// A prompt different from the previous step's starts a new episode.
    pub new_episode_on_prompt_change: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8000)),
            api_key: None,
            max_sessions: 16,
            max_message_bytes: 16 << 20,
            image_keys: vec!["observation/image".into()],
            prompt_key: "prompt".into(),
            execution: Execution::Replan,
            new_episode_on_prompt_change: true,
        }
    }
}

impl ServeOptions {
    /// Checks the settings are usable.
    ///
    /// # Errors
    /// A message naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.image_keys.is_empty() || self.image_keys.iter().any(|k| k.trim().is_empty()) {
            return Err("--image-key: at least one non-empty key".into());
        }
        if self.prompt_key.trim().is_empty() {
            return Err("--prompt-key must not be empty".into());
        }
        if self.max_sessions == 0 {
            return Err("--max-sessions must be at least 1".into());
        }
        if self.max_message_bytes < 1024 {
            return Err("--max-message-bytes must be at least 1024".into());
        }
        if self.api_key.as_deref().is_some_and(|k| k.is_empty() || k.chars().any(|c| c.is_control() || c == ' ')) {
            return Err("--api-key must be non-empty without spaces or control characters".into());
        }
        Ok(())
    }
}
