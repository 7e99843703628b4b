//! What travels over the socket: the metadata map sent on connect, observations in, action maps
//! out (openpi's conventions, `WebsocketClientPolicy` unchanged).

use robovlm_core::RgbImage;

use crate::msgpack::Value;
use crate::ndarray;
use crate::options::ServeOptions;

/// What the server tells a client on connect (and logs at start).
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyInfo {
    /// `robovlm_name` of the config (e.g. `RoboPaligemma`) and the policy directory's name.
    pub name: String,
    /// `continuous` (LSTM / FC / GPT head) or `discrete`.
    pub kind: String,
    /// Values per action (7: 6 arm + gripper).
    pub action_dim: usize,
    /// Actions per predicted chunk (`fwd_pred_next_n`; 1 for discrete policies).
    pub chunk: usize,
    /// History window of the head.
    pub window_size: usize,
    /// Backend and precision the model runs on.
    pub backend: String,
    /// `f32`, `f16` or `bf16`.
    pub dtype: String,
}

/// The map sent first on every connection.
pub fn metadata(info: &PolicyInfo, options: &ServeOptions) -> Value {
    let strings = |v: &[String]| Value::Array(v.iter().map(|s| Value::Str(s.clone())).collect());
    Value::map([
        ("policy", Value::Str(info.name.clone())),
        ("policy_kind", Value::Str(info.kind.clone())),
        ("action_dim", Value::Int(info.action_dim as i64)),
        ("action_chunk", Value::Int(info.chunk as i64)),
        ("window_size", Value::Int(info.window_size as i64)),
        ("image_keys", strings(&options.image_keys)),
        ("prompt_key", Value::Str(options.prompt_key.clone())),
        ("execution", Value::Str(options.execution.to_string())),
        ("new_episode_on_prompt_change", Value::Bool(options.new_episode_on_prompt_change)),
        ("backend", Value::Str(info.backend.clone())),
        ("dtype", Value::Str(info.dtype.clone())),
        ("robovlm_version", Value::Str(env!("CARGO_PKG_VERSION").into())),
    ])
}

/// One decoded observation.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The main camera frame.
    pub frame: RgbImage,
    /// The instruction.
    pub prompt: String,
    /// `"reset": true` was sent: start a new episode before this step.
    pub reset: bool,
    /// Other image keys that were present but are not used by the policy (reported once).
    pub unused_images: Vec<String>,
}

/// Looks `key` up as a flat key (`"observation/image"`, as openpi's examples send) or as a
/// path into nested maps (`{"observation": {"image": …}}`).
fn lookup<'a>(obs: &'a Value, key: &str) -> Option<&'a Value> {
    obs.get(key).or_else(|| key.split('/').try_fold(obs, |v, part| v.get(part)))
}

/// Reads an observation map.
///
/// # Errors
/// A one-line message naming the key at fault (sent to the client as a text frame).
pub fn observation(obs: &Value, options: &ServeOptions) -> Result<Observation, String> {
    if !matches!(obs, Value::Map(_)) {
        return Err(format!("an observation must be a map, got {}", obs.kind()));
    }
    let (main, others) = options.image_keys.split_first().expect("options validated: at least one image key");
    let image = lookup(obs, main).ok_or_else(|| format!("observation has no image under `{main}`"))?;
    let frame = image_from(image, main)?;
    let prompt = match lookup(obs, &options.prompt_key) {
        Some(Value::Str(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::Str(_)) => return Err(format!("`{}` is empty", options.prompt_key)),
        Some(v) => return Err(format!("`{}` must be a string, got {}", options.prompt_key, v.kind())),
        None => return Err(format!("observation has no instruction under `{}`", options.prompt_key)),
    };
    let reset = match obs.get("reset") {
        None | Some(Value::Nil) => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => return Err(format!("`reset` must be a boolean, got {}", v.kind())),
    };
    let unused_images = others.iter().filter(|k| lookup(obs, k).is_some()).cloned().collect();
    Ok(Observation { frame, prompt, reset, unused_images })
}

/// A uint8 `[H, W, 3]` array as an image, validated before anything is copied (its bytes are
/// already in memory, bounded by `--max-message-bytes`).
fn image_from(value: &Value, key: &str) -> Result<RgbImage, String> {
    let a = ndarray::read(value, key)?;
    if a.dtype != "|u1" && a.dtype != "u1" && a.dtype != "uint8" {
        return Err(format!("`{key}` must be uint8 (|u1), got {}", a.dtype.chars().take(12).collect::<String>()));
    }
    let [h, w, c] = a.shape[..] else {
        return Err(format!("`{key}` must be [height, width, 3], got shape {:?}", a.shape));
    };
    if c != 3 || h == 0 || w == 0 {
        return Err(format!("`{key}` must be [height, width, 3] with a non-empty image, got shape {:?}", a.shape));
    }
    RgbImage::from_hwc(&[h, w, 3], a.data.to_vec()).map_err(|e| format!("`{key}`: {e}"))
}

/// The answer to one observation.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReply {
    /// Post-processed chunk `[chunk][action_dim]`: arm un-normalised, gripper ±1 — row 0 is what
    /// `robovlm act` prints for this frame.
    pub actions: Vec<Vec<f32>>,
    /// The action to execute now under the server's execution strategy.
    pub action: Vec<f32>,
    /// Raw head outputs (continuous policies): arm `[chunk][arm_dim]` (tanh) and gripper logits.
    pub arm: Option<Vec<Vec<f32>>>,
    /// Gripper logits `[chunk]`.
    pub gripper_logits: Option<Vec<f32>>,
    /// Generated action token ids (discrete policies).
    pub action_ids: Option<Vec<u32>>,
    /// Step index within the episode (0 after a reset).
    pub episode_step: usize,
    /// Whether this step started a new episode.
    pub new_episode: bool,
    /// Time the model took, ms.
    pub infer_ms: f64,
}

fn rows(values: &[Vec<f32>]) -> Value {
    let width = values.first().map_or(0, Vec::len);
    ndarray::f32_array(&[values.len(), width], &values.concat())
}

/// The response map (`server_timing` as openpi's server reports it).
pub fn response(reply: &StepReply, prev_total_ms: Option<f64>) -> Value {
    let mut entries = vec![
        ("actions", rows(&reply.actions)),
        ("action", ndarray::f32_array(&[reply.action.len()], &reply.action)),
        ("episode_step", Value::Int(reply.episode_step as i64)),
        ("new_episode", Value::Bool(reply.new_episode)),
    ];
    if let Some(arm) = &reply.arm {
        entries.push(("arm", rows(arm)));
    }
    if let Some(g) = &reply.gripper_logits {
        entries.push(("gripper_logits", ndarray::f32_array(&[g.len()], g)));
    }
    if let Some(ids) = &reply.action_ids {
        let ids: Vec<i64> = ids.iter().map(|&i| i64::from(i)).collect();
        entries.push(("action_ids", ndarray::i64_array(&[ids.len()], &ids)));
    }
    let mut timing = vec![("infer_ms", Value::F64(reply.infer_ms))];
    if let Some(t) = prev_total_ms {
        timing.push(("prev_total_ms", Value::F64(t)));
    }
    entries.push(("server_timing", Value::map(timing)));
    Value::map(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(entries: Vec<(&str, Value)>) -> Value {
        Value::map(entries)
    }

    /// Bytes written by openpi-client's own `msgpack_numpy.packb` (the fuzz corpus seeds).
    #[test]
    fn reads_what_openpi_client_sends() {
        let flat = crate::msgpack::decode(include_bytes!("../../fuzz/corpus/observation/flat.msgpack")).unwrap();
        let o = observation(&flat, &ServeOptions::default()).unwrap();
        assert_eq!((o.frame.width(), o.frame.height(), o.prompt.as_str()), (8, 6, "open the drawer"));
        let nested =
            crate::msgpack::decode(include_bytes!("../../fuzz/corpus/observation/nested_reset.msgpack")).unwrap();
        let o = observation(&nested, &ServeOptions::default()).unwrap();
        assert!(o.reset && o.prompt == "pick");
    }

    #[test]
    fn reads_flat_and_nested_keys_and_names_what_is_wrong() {
        let options = ServeOptions::default();
        let img = || ndarray::u8_array(&[2, 3, 3], (0..18).collect());
        let o = observation(&obs(vec![("observation/image", img()), ("prompt", Value::Str("go".into()))]), &options)
            .unwrap();
        assert_eq!((o.frame.width(), o.frame.height(), o.prompt.as_str(), o.reset), (3, 2, "go", false));
        let nested = obs(vec![
            ("observation", Value::map([("image", img()), ("wrist_image", img())])),
            ("prompt", Value::Str("go".into())),
            ("reset", Value::Bool(true)),
        ]);
        let options2 = ServeOptions {
            image_keys: vec!["observation/image".into(), "observation/wrist_image".into()],
            ..ServeOptions::default()
        };
        let o = observation(&nested, &options2).unwrap();
        assert!(o.reset);
        assert_eq!(o.unused_images, ["observation/wrist_image"]);

        for (bad, what) in [
            (obs(vec![("prompt", Value::Str("go".into()))]), "no image under `observation/image`"),
            (obs(vec![("observation/image", img())]), "no instruction"),
            (obs(vec![("observation/image", img()), ("prompt", Value::Int(3))]), "must be a string"),
            (
                obs(vec![
                    ("observation/image", ndarray::u8_array(&[2, 3], vec![0; 6])),
                    ("prompt", Value::Str("go".into())),
                ]),
                "[height, width, 3]",
            ),
            (
                obs(vec![
                    ("observation/image", ndarray::f32_array(&[1, 1, 3], &[0.0; 3])),
                    ("prompt", Value::Str("go".into())),
                ]),
                "uint8",
            ),
            (Value::Array(vec![]), "must be a map"),
        ] {
            let err = observation(&bad, &options).unwrap_err();
            assert!(err.contains(what), "{err}");
        }
    }
}
