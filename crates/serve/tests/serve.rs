//! The server against `robovlm act`'s numbers, and against clients that misbehave.

mod common;

use common::{episode, f32s, load_policy, observation, start};
use robovlm_serve::msgpack::{self, Value};
use robovlm_serve::{Client, ClientError, ServeOptions};
use robovlm_test_utils::reference;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_reproduces_act_and_the_references() {
    let server = start(ServeOptions::default()).await;
    let (prompt, frames) = episode();
    // What `robovlm act` computes: the same policy stepped in process.
    let mut solo = load_policy();
    solo.reset();
    let want: Vec<_> = frames.iter().map(|f| solo.step(f, &prompt).unwrap()).collect();

    let mut robot = Client::connect(&server.url, None).await.unwrap();
    let meta = robot.metadata();
    assert_eq!(meta.get("policy").and_then(Value::as_str), Some(common::POLICY));
    assert_eq!(meta.get("action_dim").and_then(Value::as_u64), Some(7));
    assert_eq!(meta.get("action_chunk").and_then(Value::as_u64), Some(3));
    assert_eq!(meta.get("execution").and_then(Value::as_str), Some("replan"));
    for (t, (frame, w)) in frames.iter().zip(&want).enumerate() {
        let reply = robot.infer(&observation(frame, &prompt)).await.unwrap();
        let (shape, actions) = f32s(&reply, "actions");
        assert_eq!(shape, [3, 7]);
        assert_eq!(actions[..7], w.action[..], "step {t}: actions[0] is act's action");
        assert_eq!(actions, w.chunk.concat(), "step {t}: the whole post-processed chunk");
        assert_eq!(f32s(&reply, "action").1, w.action, "replan executes actions[0]");
        let r = reference(common::POLICY, &format!("rollout.e0.t{t}.action_emitted")).1;
        assert_eq!(actions[6], r[6], "step {t}: gripper");
        assert!(actions[..6].iter().zip(&r).all(|(a, b)| (a - b).abs() <= 1e-4), "step {t}: {actions:?} vs {r:?}");
        assert_eq!(reply.get("episode_step").and_then(Value::as_u64), Some(t as u64));
        let timing = reply.get("server_timing").unwrap();
        assert!(timing.get("infer_ms").and_then(Value::as_f64).is_some_and(|ms| ms > 0.0));
        assert_eq!(timing.get("prev_total_ms").is_some(), t > 0, "openpi reports the previous total from step 1");
        assert_eq!(f32s(&reply, "arm").0, [3, 6]);
        assert_eq!(f32s(&reply, "gripper_logits").0, [3]);
    }
    // `reset` starts over: the first frame again gives step 0's actions.
    let mut obs = observation(&frames[0], &prompt);
    if let Value::Map(e) = &mut obs {
        e.push((Value::Str("reset".into()), Value::Bool(true)));
    }
    let reply = robot.infer(&obs).await.unwrap();
    assert_eq!(reply.get("new_episode").and_then(Value::as_bool), Some(true));
    assert_eq!(f32s(&reply, "actions").1, want[0].chunk.concat());
    // A new prompt starts a new episode too (history of the old one is not carried over).
    let reply = robot.infer(&observation(&frames[1], "close the drawer")).await.unwrap();
    assert_eq!(reply.get("episode_step").and_then(Value::as_u64), Some(0));
    robot.close().await;
    server.shutdown().await;
}

async fn expect_closed(client: &mut Client, code: u16, what: &str) {
    // The error line first (openpi clients raise it), then the close.
    match client.receive().await {
        Err(ClientError::Server(line)) => assert!(line.contains(what), "{line}"),
        Err(ClientError::Closed { code: c, reason }) => {
            assert_eq!(c, code, "{reason}");
            return;
        }
        other => panic!("expected an error line about {what}, got {other:?}"),
    }
    match client.receive().await {
        Err(ClientError::Closed { code: c, reason }) => assert_eq!(c, code, "{reason}"),
        other => panic!("expected close {code}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_clients_leave_the_server_serving_the_others() {
    let options = ServeOptions {
        api_key: Some("s3cret".into()),
        max_message_bytes: 64 << 10,
        max_sessions: 3,
        ..ServeOptions::default()
    };
    let server = start(options).await;
    let (prompt, frames) = episode();
    let mut good = Client::connect(&server.url, Some("s3cret")).await.unwrap();
    let mut good_steps = 0;
    let mut check_good = async |good: &mut Client| {
        let reply = good.infer(&observation(&frames[good_steps % frames.len()], &prompt)).await.unwrap();
        assert_eq!(reply.get("episode_step").and_then(Value::as_u64), Some(good_steps as u64));
        good_steps += 1;
    };
    check_good(&mut good).await;

    // Wrong or missing API key: refused at the handshake (HTTP 401).
    for key in [Some("wrong"), None] {
        let err = Client::connect(&server.url, key).await.unwrap_err().to_string();
        assert!(err.contains("401"), "{err}");
    }
    check_good(&mut good).await;

    // Malformed msgpack, a hostile length, a non-map, a wrong array: error line + close 1007.
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![0xc1, 0x00], "malformed msgpack"),
        (vec![0xdd, 0xff, 0xff, 0xff, 0xff], "declares"),
        (msgpack::encode(&Value::Array(vec![])), "must be a map"),
        (
            msgpack::encode(&Value::map([
                ("observation/image", robovlm_serve::ndarray::u8_array(&[100_000, 100_000, 3], vec![0; 30])),
                ("prompt", Value::Str("x".into())),
            ])),
            "shape",
        ),
    ];
    for (bytes, what) in cases {
        let mut bad = Client::connect(&server.url, Some("s3cret")).await.unwrap();
        bad.send_raw(Message::binary(bytes)).await.unwrap();
        expect_closed(&mut bad, 1007, what).await;
        check_good(&mut good).await;
    }

    // Larger than --max-message-bytes: refused before it is buffered, close 1009.
    let mut big = Client::connect(&server.url, Some("s3cret")).await.unwrap();
    big.send_raw(Message::binary(vec![0u8; 200 << 10])).await.ok();
    expect_closed(&mut big, 1009, "too large").await;
    check_good(&mut good).await;

    // A text frame instead of msgpack.
    let mut text = Client::connect(&server.url, Some("s3cret")).await.unwrap();
    text.send_raw(Message::text("hello")).await.unwrap();
    expect_closed(&mut text, 1003, "binary").await;

    // A client killed mid-request: its connection drops while the step runs.
    let mut killed = Client::connect(&server.url, Some("s3cret")).await.unwrap();
    killed.send_raw(Message::binary(msgpack::encode(&observation(&frames[0], &prompt)))).await.unwrap();
    drop(killed);
    check_good(&mut good).await;

    // --max-sessions 3: with `good` and two more open, a fourth is refused with code 1013.
    // (The killed client's session ends when the server notices the dropped socket: retry.)
    drop(text);
    let connect = async || {
        for _ in 0..100 {
            if let Ok(c) = Client::connect(&server.url, Some("s3cret")).await {
                return c;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the server did not free the sessions of closed connections");
    };
    let a = connect().await;
    let b = connect().await;
    match Client::connect(&server.url, Some("s3cret")).await {
        Err(ClientError::Closed { code, reason }) => {
            assert!(code == 1013 && reason.contains("busy"), "{code} {reason}")
        }
        other => panic!("expected 'server busy', got {other:?}"),
    }
    a.close().await;
    b.close().await;
    check_good(&mut good).await;

    // /healthz on the same port, plain HTTP.
    let addr = server.url.trim_start_matches("ws://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("OK\n"), "{answer}");

    check_good(&mut good).await;
    good.close().await;
    server.shutdown().await;
}

/// Shutdown answers the request in flight, then closes the session with 1001.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_in_flight_requests() {
    let server = start(ServeOptions::default()).await;
    let (prompt, frames) = episode();
    let mut robot = Client::connect(&server.url, None).await.unwrap();
    robot.send_raw(Message::binary(msgpack::encode(&observation(&frames[0], &prompt)))).await.unwrap();
    // Let the server read it (it is then in flight), then stop.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let stopping = tokio::spawn(server.shutdown());
    let reply = robot.receive().await.expect("the in-flight request is answered");
    assert!(reply.get("actions").is_some());
    match robot.receive().await {
        Err(ClientError::Closed { code, .. }) => assert_eq!(code, 1001),
        other => panic!("expected close 1001, got {other:?}"),
    }
    stopping.await.unwrap();
}
