//! A server on a loopback port with the public LSTM fixture policy, and helpers to drive it.

#![allow(dead_code)]

use std::path::PathBuf;

use robovlm_core::{PolicyFiles, RgbImage, RoboPolicy};
use robovlm_serve::msgpack::Value;
use robovlm_serve::{Loaded, ServeOptions, Server, ndarray};
use robovlm_test_utils::{TestBackend, fixtures_dir};
use tokio::sync::oneshot;

pub const POLICY: &str = "robovlms_lstm";

pub fn policy_dir() -> PathBuf {
    fixtures_dir().join(POLICY)
}

pub fn load_policy() -> RoboPolicy<TestBackend> {
    RoboPolicy::load(&PolicyFiles::in_dir(&policy_dir()).unwrap(), &Default::default()).unwrap()
}

/// The fixture's episode 0: instruction and frames.
pub fn episode() -> (String, Vec<RgbImage>) {
    let case: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(policy_dir().join("inputs/case.json")).unwrap()).unwrap();
    let e = &case["episodes"][0];
    let frames = e["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| RgbImage::open(&policy_dir().join(f.as_str().unwrap())).unwrap());
    (e["instruction"].as_str().unwrap().to_owned(), frames.collect())
}

pub fn observation(frame: &RgbImage, prompt: &str) -> Value {
    let image = ndarray::u8_array(&[frame.height(), frame.width(), 3], frame.as_bytes().to_vec());
    Value::map([("observation/image", image), ("prompt", Value::Str(prompt.into()))])
}

pub fn f32s(reply: &Value, key: &str) -> (Vec<usize>, Vec<f32>) {
    let a = ndarray::read(reply.get(key).unwrap_or_else(|| panic!("no `{key}` in {reply:?}")), key).unwrap();
    (a.shape.clone(), ndarray::f32_values(&a).unwrap())
}

/// A running server; dropping the handle's sender shuts it down.
pub struct Running {
    pub url: String,
    pub stop: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<Result<(), robovlm_serve::Error>>,
}

impl Running {
    pub async fn shutdown(mut self) {
        self.stop.take().unwrap().send(()).ok();
        self.task.await.unwrap().unwrap();
    }
}

pub async fn start(options: ServeOptions) -> Running {
    let options = ServeOptions { addr: "127.0.0.1:0".parse().unwrap(), ..options };
    let server = Server::bind(options, || {
        Ok(Loaded { policy: load_policy(), name: POLICY.into(), backend: "test".into(), dtype: "f32".into() })
    })
    .await
    .unwrap();
    let url = format!("ws://{}", server.local_addr());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        stopped.await.ok();
    }));
    Running { url, stop: Some(stop), task }
}
