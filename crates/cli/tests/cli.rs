//! The `robovlm` binary end to end: the parity report contract on the repo's fixtures and clean
//! one-line errors (never a panic) on bad input.

mod common;

use std::path::Path;

use common::{assert_clean_error, robovlm, scratch, text};

#[test]
fn parity_report_on_fixtures() {
    let o = robovlm(&["parity", "fixtures"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    let case_lines: Vec<&str> = out.lines().filter(|l| l.contains(": PASS") || l.contains(": FAIL")).collect();
    let cases = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures"))
        .unwrap()
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().join("reference.json").is_file()))
        .count();
    assert!(cases >= 10, "the public fixtures hold at least 10 cases");
    assert_eq!(case_lines.len(), cases, "{out}");
    for l in &case_lines {
        assert!(l.contains(": PASS  checked ") && l.contains(" tensors  worst "), "{l}");
    }
    assert!(out.lines().any(|l| l.starts_with("checked ") && l.ends_with(" tensors")), "{out}");
}

#[test]
fn only_filters_and_require_all_fails_on_unchecked() {
    let o = robovlm(&["parity", "--only", "tok*_ids", "fixtures/paligemma_tiny"]);
    let (out, _) = text(&o);
    assert!(o.status.success());
    assert!(out.contains("paligemma_tiny: PASS  checked 8 of 8 tensors"), "{out}");
    let o = robovlm(&["parity", "--require-all", "--only", "*.logits", "fixtures/paligemma_tiny"]);
    assert!(o.status.success(), "every logits tensor of the main case is computed");
    // A tensor no provider knows stays unchecked: --require-all must fail, plain runs pass.
    let dir = scratch("unknown");
    let case = dir.join("case");
    std::fs::create_dir_all(&case).unwrap();
    std::fs::write(
        case.join("reference.json"),
        r#"{"case": "synthetic", "kind": "other", "tensors": {"x.mystery": {"shape": [2], "dtype": "float32"}}}"#,
    )
    .unwrap();
    let data: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2], &data).unwrap();
    safetensors::serialize_to_file([("x.mystery", view)], None, &case.join("reference.safetensors")).unwrap();
    let o = robovlm(&["parity", case.to_str().unwrap()]);
    let (out, _) = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("synthetic: PASS  checked 0 of 1 tensors"), "{out}");
    let o = robovlm(&["parity", "--require-all", case.to_str().unwrap()]);
    assert!(!o.status.success(), "--require-all must fail with an unchecked tensor");
}

#[test]
fn a_wrong_reference_fails() {
    // Copy the main case, then swap two of its tokenizer strings: the ids no longer match.
    let dir = scratch("wrong");
    let case = dir.join("case");
    std::fs::create_dir_all(&case).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/paligemma_tiny");
    {
        let f = "reference.safetensors";
        std::fs::copy(src.join(f), case.join(f)).unwrap();
    }
    let json = std::fs::read_to_string(src.join("reference.json")).unwrap();
    let json = json.replacen("\"string\": \"caption en\"", "\"string\": \"caption fr\"", 1);
    std::fs::write(case.join("reference.json"), json).unwrap();
    let json = std::fs::read_to_string(case.join("reference.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["model_dir"] = serde_json::Value::String(src.join("model").to_string_lossy().into_owned());
    std::fs::write(case.join("reference.json"), v.to_string()).unwrap();
    let o = robovlm(&["parity", "--only", "tok0_ids", case.to_str().unwrap()]);
    let (out, _) = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("FAIL tok0_ids"), "{out}");
}

#[test]
fn unreadable_cases_fail_with_a_reason() {
    let dir = scratch("unreadable");
    let case = dir.join("broken");
    std::fs::create_dir_all(&case).unwrap();
    std::fs::write(case.join("reference.json"), r#"{"case": "broken", "tensors": {}}"#).unwrap();
    std::fs::write(case.join("reference.safetensors"), b"\x10\x00\x00\x00\x00\x00\x00\x00{truncated").unwrap();
    let o = robovlm(&["parity", dir.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert!(!o.status.success());
    assert!(out.contains("FAIL  unreadable case") && out.contains("reference.safetensors"), "{out}");
    assert!(!err.contains("panicked"), "{err}");

    assert_clean_error(&robovlm(&["parity", "no/such/dir"]), "no/such/dir");
    assert_clean_error(&robovlm(&["parity", dir.join("broken/..").join("empty-none").to_str().unwrap()]), "empty-none");
}

#[test]
fn process_rejects_bad_input_cleanly() {
    let model = "fixtures/paligemma_tiny/model";
    let image = "fixtures/paligemma_tiny/inputs/img1_97x61.png";
    let o = robovlm(&["process", "--model", model, "--image", image, "--prompt", "caption en", "--json"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["pixel_values_shape"], serde_json::json!([1, 3, 56, 56]));
    assert_eq!(v["input_ids"].as_array().unwrap().len(), 20);

    assert_clean_error(&robovlm(&["process", "--model", model, "--image", "nope.png", "--prompt", "x"]), "nope.png");
    assert_clean_error(&robovlm(&["process", "--model", "no-model", "--image", image, "--prompt", "x"]), "no-model");
    assert_clean_error(&robovlm(&["process", "--model", model, "--image", image, "--prompt", "  "]), "--prompt");
    let dir = scratch("process");
    let txt = dir.join("notes.png");
    std::fs::write(&txt, "plain text").unwrap();
    assert_clean_error(
        &robovlm(&["process", "--model", model, "--image", txt.to_str().unwrap(), "--prompt", "x"]),
        "notes.png",
    );
}

#[test]
fn unavailable_backends_are_errors() {
    // cuda is never compiled into the default test build, or has no driver here.
    let o = robovlm(&["parity", "--backend", "cuda", "fixtures/paligemma_tiny"]);
    if !o.status.success() {
        assert_clean_error(&o, "cuda");
    }
}

/// A reference tensor of a fixture case, as f64 values.
fn reference(case: &str, name: &str) -> Vec<f64> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures").join(case).join("reference.safetensors");
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap();
    match t.dtype() {
        safetensors::Dtype::F32 => {
            t.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64).collect()
        }
        safetensors::Dtype::I64 => {
            t.data().chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f64).collect()
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn generate_prints_the_reference_ids() {
    // PaliGemma (Gemma 1) and PaliGemma 2 (Gemma 2: soft-caps, sliding window, HybridCache).
    for case in ["paligemma_tiny", "paligemma2_tiny"] {
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(format!("../../fixtures/{case}/reference.json")).unwrap())
                .unwrap();
        let prompt = &json["values"]["p0.prompt"];
        let want = reference(case, "p0.gen_new_ids");
        let (model, image) =
            (format!("fixtures/{case}/model"), format!("fixtures/{case}/{}", prompt["image"].as_str().unwrap()));
        let steps = want.len().to_string();
        let o = robovlm(&[
            "generate",
            "--model",
            &model,
            "--image",
            &image,
            "--prompt",
            prompt["text"].as_str().unwrap(),
            "--max-new-tokens",
            &steps,
            "--json",
        ]);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{case}: {err}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        let ids: Vec<f64> = v["generated_ids"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        assert_eq!(ids, want, "{case}");
        let input: Vec<f64> = v["input_ids"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        assert_eq!(input, reference(case, "p0.input_ids"), "{case}");
        assert_eq!(v["text"], json["values"]["p0.gen_text"], "{case}");
    }
}

#[test]
fn act_prints_the_reference_actions() {
    for case in ["robovlms_lstm", "robovlms_gpt", "robovlms_fc", "robovlms_lstm_pg2"] {
        let inputs: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(format!("../../fixtures/{case}/inputs/case.json")).unwrap())
                .unwrap();
        let episode = &inputs["episodes"][0];
        let frames: Vec<String> = episode["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| format!("fixtures/{case}/{}", f.as_str().unwrap()))
            .collect();
        let mut args = vec!["act", "--json", "--policy"];
        let policy = format!("fixtures/{case}");
        args.push(&policy);
        args.extend(["--instruction", episode["instruction"].as_str().unwrap()]);
        args.extend(frames.iter().map(String::as_str));
        let o = robovlm(&args);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{case}: {err}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        let steps = v["steps"].as_array().unwrap();
        assert_eq!(steps.len(), frames.len());
        for (t, s) in steps.iter().enumerate() {
            let ours: Vec<f64> = s["action"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            let want = reference(case, &format!("rollout.e0.t{t}.action_emitted"));
            assert_eq!(ours[6], want[6], "{case} step {t}: gripper");
            for (a, b) in ours[..6].iter().zip(&want[..6]) {
                assert!((a - b).abs() <= 1e-4, "{case} step {t}: {ours:?} vs {want:?}");
            }
            assert_eq!(s["arm"].as_array().unwrap().len(), 3, "chunk of 3");
        }
    }
}

#[test]
fn act_and_generate_reject_bad_input_cleanly() {
    let frame = "fixtures/robovlms_lstm/inputs/frame_e0_t0.png";
    assert_clean_error(&robovlm(&["act", "--policy", "no/such/policy", "--instruction", "x", frame]), "no/such/policy");
    assert_clean_error(
        &robovlm(&["act", "--policy", "fixtures/robovlms_lstm", "--instruction", " ", frame]),
        "--instruction",
    );
    assert_clean_error(
        &robovlm(&["act", "--policy", "fixtures/robovlms_lstm", "--instruction", "x", "missing.png"]),
        "missing.png",
    );
    let o = robovlm(&["act", "--policy", "fixtures/robovlms_lstm", "--instruction", "x"]);
    assert!(!o.status.success(), "frames are required");

    // A policy directory copy with a truncated checkpoint, then with an unknown head type.
    let dir = scratch("policy");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/robovlms_lstm");
    let config = std::fs::read_to_string(src.join("robovlm_config.json")).unwrap();
    let backbone = src.join("../paligemma_tiny/model").canonicalize().unwrap();
    let config = config.replace("\"../paligemma_tiny/model\"", &format!("{:?}", backbone.to_str().unwrap()));
    std::fs::write(dir.join("robovlm_config.json"), &config).unwrap();
    let bytes = std::fs::read(src.join("policy.safetensors")).unwrap();
    std::fs::write(dir.join("policy.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let d = dir.to_str().unwrap();
    assert_clean_error(&robovlm(&["act", "--policy", d, "--instruction", "x", frame]), "policy.safetensors");
    std::fs::write(dir.join("policy.safetensors"), &bytes).unwrap();
    assert!(robovlm(&["act", "--policy", d, "--instruction", "x", frame]).status.success());
    std::fs::write(dir.join("robovlm_config.json"), config.replace("LSTMDecoder", "TransformerXL")).unwrap();
    assert_clean_error(&robovlm(&["act", "--policy", d, "--instruction", "x", frame]), "act_head.type");

    let model = "fixtures/paligemma_tiny/model";
    let image = "fixtures/paligemma_tiny/inputs/img0_56x56.png";
    assert_clean_error(
        &robovlm(&["generate", "--model", "nobody/nothing", "--image", image, "--prompt", "x"]),
        "nobody/nothing",
    );
    assert_clean_error(&robovlm(&["generate", "--model", model, "--image", image, "--prompt", ""]), "--prompt");
    assert_clean_error(
        &robovlm(&["generate", "--model", model, "--image", image, "--prompt", "x", "--dtype", "f64"]),
        "--dtype",
    );
    assert_clean_error(&robovlm(&["generate", "--model", model, "--image", "nope.jpg", "--prompt", "x"]), "nope.jpg");
    let long = "word ".repeat(9000);
    assert_clean_error(
        &robovlm(&["generate", "--model", model, "--image", image, "--prompt", &long]),
        "max_position_embeddings",
    );
}

#[test]
fn discrete_act_from_pt_and_safetensors() {
    let inputs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("../../fixtures/robovlms_discrete/inputs/case.json").unwrap())
            .unwrap();
    let dir = scratch("discrete-pt");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/robovlms_discrete");
    for (i, item) in inputs["inference"].as_array().unwrap().iter().enumerate() {
        let frame = format!("fixtures/robovlms_discrete/{}", item["frame"].as_str().unwrap());
        let instruction = item["instruction"].as_str().unwrap();
        let want_ids = reference("robovlms_discrete", &format!("infer{i}.generated_ids"));
        let want_action = reference("robovlms_discrete", &format!("infer{i}.action"));
        for checkpoint in ["policy.safetensors", "policy.pt"] {
            let ckpt = src.join(checkpoint);
            let o = robovlm(&[
                "act",
                "--json",
                "--policy",
                "fixtures/robovlms_discrete",
                "--checkpoint",
                ckpt.to_str().unwrap(),
                "--instruction",
                instruction,
                &frame,
            ]);
            let (out, err) = text(&o);
            assert!(o.status.success(), "{checkpoint}: {err}");
            let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
            let step = &v["steps"][0];
            let ids: Vec<f64> = step["action_ids"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            assert_eq!(ids, want_ids, "{checkpoint}");
            let action: Vec<f64> = step["action"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            for (a, b) in action.iter().zip(&want_action) {
                assert!((a - b).abs() <= 1e-6, "{checkpoint}: {action:?} vs {want_action:?}");
            }
        }
    }
    // A corrupt .pt is a clean error.
    let bad = dir.join("policy.pt");
    std::fs::write(&bad, b"PK\x03\x04 not really a zip").unwrap();
    let frame = "fixtures/robovlms_discrete/inputs/infer_0.png";
    let o = robovlm(&[
        "act",
        "--policy",
        "fixtures/robovlms_discrete",
        "--checkpoint",
        bad.to_str().unwrap(),
        "--instruction",
        "x",
        frame,
    ]);
    assert_clean_error(&o, "policy.pt");
}

#[test]
fn dump_writes_fixture_named_tensors() {
    for (case, image) in [("paligemma_tiny", "img0_56x56.png"), ("paligemma2_tiny", "img0_70x70.png")] {
        let dir = scratch(&format!("dump-{case}"));
        let out = dir.join("p0.safetensors");
        let (model, image) = (format!("fixtures/{case}/model"), format!("fixtures/{case}/inputs/{image}"));
        let o = robovlm(&[
            "dump",
            "--model",
            &model,
            "--image",
            &image,
            "--prompt",
            "caption en",
            "--out",
            out.to_str().unwrap(),
        ]);
        let (_, err) = text(&o);
        assert!(o.status.success(), "{case}: {err}");
        let bytes = std::fs::read(&out).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let logits = st.tensor("logits").unwrap();
        let ours: Vec<f64> =
            logits.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64).collect();
        let want = reference(case, "p0.logits");
        assert_eq!(ours.len(), want.len(), "{case}");
        assert!(ours.iter().zip(&want).all(|(a, b)| (a - b).abs() <= 1e-4 + 1e-4 * b.abs()), "{case}");
        assert!(st.tensor("text_hidden_states").is_ok() && st.tensor("input_ids").is_ok());
    }
}

/// `robovlm bench --json` prints exactly the contract's keys; on a model directory every timing
/// and the load are measured. (The numbers themselves are benchmarks, not test assertions.)
#[test]
fn bench_json_contract_and_bad_flags() {
    for model in ["fixtures/paligemma_tiny/model", "fixtures/paligemma2_tiny/model"] {
        let o = robovlm(&[
            "bench",
            "--model",
            model,
            "--iters",
            "1",
            "--warmup",
            "0",
            "--decode-tokens",
            "2",
            "--instruction-tokens",
            "4",
            "--json",
        ]);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{model}: {out}\n{err}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want =
            vec!["control_step_ms", "decode_tokens_per_s", "image_encode_ms", "load_ms", "peak_rss_mb", "prefill_ms"];
        want.sort_unstable();
        let mut got = keys.clone();
        got.sort_unstable();
        assert_eq!(got, want);
        for k in want {
            assert!(v[k].as_f64().is_some_and(|x| x.is_finite() && x > 0.0), "{model} {k}: {}", v[k]);
        }
    }
    // --iters 0 measures loading only.
    let o = robovlm(&["bench", "--model", "fixtures/paligemma_tiny/model", "--iters", "0", "--json"]);
    let v: serde_json::Value = serde_json::from_str(text(&o).0.trim()).expect("JSON");
    assert!(v["load_ms"].as_f64().is_some() && v["prefill_ms"].is_null());

    assert_clean_error(&robovlm(&["bench"]), "--preset");
    assert_clean_error(
        &robovlm(&["bench", "--preset", "paligemma-3b-224", "--model", "fixtures/paligemma_tiny/model"]),
        "cannot be used with",
    );
    assert_clean_error(&robovlm(&["bench", "--preset", "paligemma-3b-224", "--vision-layers", "0"]), "at least 1");
    assert_clean_error(
        &robovlm(&["bench", "--model", "fixtures/paligemma_tiny/model", "--text-layers", "1"]),
        "only apply to --preset",
    );
    assert_clean_error(&robovlm(&["bench", "--model", "fixtures/no_such_model"]), "no_such_model");
    assert_clean_error(&robovlm(&["bench", "--preset", "paligemma-3b-224", "--dtype", "f8"]), "--dtype");
}

/// Half precision end to end on the default backend: greedy ids identical to the f32
/// reference, arm actions within 1e-2 and identical gripper decisions (the backends-and-precision
/// issue's bar); precisions a backend lacks are refused by name.
#[test]
fn half_precision_generate_and_act() {
    let (model, image) = ("fixtures/paligemma_tiny/model", "fixtures/paligemma_tiny/inputs/img0_56x56.png");
    let args = ["--model", model, "--image", image, "--prompt", "caption en", "--max-new-tokens", "12", "--json"];
    let o = robovlm(&[&["generate", "--dtype", "f16"][..], &args].concat());
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let ids: Vec<f64> = v["generated_ids"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert_eq!(ids, reference("paligemma_tiny", "p0.gen_new_ids"));

    let case = "robovlms_lstm";
    let inputs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("../../fixtures/{case}/inputs/case.json")).unwrap())
            .unwrap();
    let frames: Vec<String> = inputs["episodes"][0]["frames"].as_array().unwrap()[..3]
        .iter()
        .map(|f| format!("fixtures/{case}/{}", f.as_str().unwrap()))
        .collect();
    let policy = format!("fixtures/{case}");
    let mut act = vec!["act", "--json", "--dtype", "f16", "--policy", &policy, "--instruction"];
    act.push(inputs["episodes"][0]["instruction"].as_str().unwrap());
    act.extend(frames.iter().map(String::as_str));
    let o = robovlm(&act);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    for (t, s) in v["steps"].as_array().unwrap().iter().enumerate() {
        let ours: Vec<f64> = s["action"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        let want = reference(case, &format!("rollout.e0.t{t}.action_emitted"));
        assert_eq!(ours[6], want[6], "step {t}: gripper");
        assert!(ours[..6].iter().zip(&want[..6]).all(|(a, b)| (a - b).abs() <= 1e-2), "step {t}: {ours:?} vs {want:?}");
    }

    // ndarray has no half-precision kernels; whether or not it is compiled in, the error names it.
    let o = robovlm(&[&["generate", "--backend", "ndarray", "--dtype", "f16"][..], &args].concat());
    assert_clean_error(&o, "ndarray");
}

/// `robovlm serve` as a process: it says where it listens, answers `/healthz`, and SIGTERM
/// stops it cleanly (exit 0). The protocol itself is tested in `crates/serve`.
#[test]
fn serve_listens_answers_health_checks_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_robovlm"))
        .args(["serve", "--policy", "fixtures/robovlms_lstm", "--port", "0"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "serve exited before listening");
        if let Some(rest) = line.split("on ws://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let kill = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(status.success() && rest.contains("stopped"), "{status:?}: {rest}");
}

/// `act --execute`: replan prints chunk row 0 (the default action), open-loop:2 walks a chunk.
#[test]
fn act_execute_strategies() {
    let frames: Vec<String> = (0..5).map(|t| format!("fixtures/robovlms_lstm/inputs/frame_e0_t{t}.png")).collect();
    let run = |execute: Option<&str>| {
        let mut args = vec!["act", "--json", "--policy", "fixtures/robovlms_lstm", "--instruction", "open the drawer"];
        if let Some(e) = execute {
            args.extend(["--execute", e]);
        }
        args.extend(frames.iter().map(String::as_str));
        let o = robovlm(&args);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{err}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        v["steps"].as_array().unwrap().clone()
    };
    let plain = run(None);
    let replan = run(Some("replan"));
    for (p, r) in plain.iter().zip(&replan) {
        assert_eq!(p["action"], r["action"]);
        assert_eq!(p["action"], p["chunk"][0]);
    }
    let open = run(Some("open-loop:2"));
    assert_eq!(open[0]["action"], plain[0]["chunk"][0]);
    assert_eq!(open[1]["action"], plain[0]["chunk"][1]);
    assert_eq!(open[2]["action"], plain[2]["chunk"][0]);
    assert_eq!(open[3]["action"], plain[2]["chunk"][1]);
    let ensemble = run(Some("ensemble:0.5"));
    assert_eq!(ensemble[0]["action"], plain[0]["chunk"][0]);
    assert_clean_error(
        &robovlm(&[
            "act",
            "--policy",
            "fixtures/robovlms_lstm",
            "--instruction",
            "x",
            &frames[0],
            "--execute",
            "open-loop:0",
        ]),
        "open-loop",
    );
}
