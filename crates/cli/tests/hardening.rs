//! Hostile and careless input through the binary, one test per class of the hardening issue:
//! paths that try to escape, sizes that would exhaust memory, loaders that must refuse,
//! arithmetic that would overflow, inputs that used to panic, and NaN actions. Each must end in
//! one clear error line (or, for a closed stdout, quietly), never a panic or an abort.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{assert_clean_error, copy_dir, repo, robovlm, robovlm_env, scratch, text};

const IMAGE: &str = "fixtures/paligemma_tiny/inputs/img0_56x56.png";
const FRAME: &str = "fixtures/robovlms_lstm/inputs/frame_e0_t0.png";

/// A copy of the tiny PaliGemma model directory to tamper with.
fn model_copy(name: &str) -> std::path::PathBuf {
    let dir = scratch(name).join("model");
    copy_dir(&repo().join("fixtures/paligemma_tiny/model"), &dir);
    dir
}

/// Edits a JSON file in place.
fn edit_json(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(path, v.to_string()).unwrap();
}

fn generate(model: &Path) -> std::process::Output {
    robovlm(&["generate", "--model", model.to_str().unwrap(), "--image", IMAGE, "--prompt", "caption en"])
}

#[test]
fn paths_never_escape_their_root() {
    // A revision with `../` neither reads nor writes outside the cache, online or offline.
    let cache = scratch("cache-escape").join("hub");
    std::fs::create_dir_all(&cache).unwrap();
    for offline in ["1", "0"] {
        let envs = [
            ("HF_HUB_CACHE", cache.to_str().unwrap()),
            ("HF_HUB_OFFLINE", offline),
            ("HF_ENDPOINT", "http://127.0.0.1:9"),
        ];
        let o = robovlm_env(
            &["generate", "--model", "acme/tiny@../../../../robovlm-escape", "--image", IMAGE, "--prompt", "x"],
            &envs,
        );
        assert_clean_error(&o, "not a valid branch, tag or commit");
    }
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 0, "nothing written in the cache");
    assert!(!cache.parent().unwrap().join("robovlm-escape").exists());

    // A shard index naming a file outside the model directory is refused, not opened.
    let model = scratch("index-escape").join("model");
    copy_dir(&repo().join("fixtures/paligemma_tiny_sharded/model"), &model);
    for f in ["tokenizer.json", "preprocessor_config.json", "special_tokens_map.json"] {
        std::fs::copy(repo().join("fixtures/paligemma_tiny/model").join(f), model.join(f)).unwrap();
    }
    for escape in ["../outside.safetensors", "/etc/passwd"] {
        edit_json(&model.join("model.safetensors.index.json"), |v| {
            let first = v["weight_map"].as_object().unwrap().keys().next().unwrap().clone();
            v["weight_map"][first] = serde_json::json!(escape);
        });
        assert_clean_error(&generate(&model), "not a file inside the model directory");
    }

    // An error about a file never echoes its contents.
    let model = model_copy("echo");
    let secret = "root:x:0:0:root:/root:/bin/bash\nsecret-token-7f3a9c:x:1000:1000::/home/secret:/bin/sh\n";
    std::fs::write(model.join("tokenizer.json"), secret).unwrap();
    let o = generate(&model);
    assert_clean_error(&o, "tokenizer.json");
    assert!(!text(&o).1.contains("secret-token"), "{}", text(&o).1);
    std::fs::copy(repo().join("fixtures/paligemma_tiny/model/tokenizer.json"), model.join("tokenizer.json")).unwrap();
    std::fs::write(model.join("config.json"), format!("{{\"text_config\": \"{}\"}}", "secret-token-7f3a9c".repeat(20)))
        .unwrap();
    let o = generate(&model);
    assert_clean_error(&o, "config.json");
    assert!(text(&o).1.matches("secret-token").count() <= 1, "{}", text(&o).1);

    // A `.pt` checkpoint is read in place: no temporary file is created (the old conversion wrote
    // a predictable `$TMPDIR/robovlm-<pid>-…` path and followed a symlink planted there).
    let tmp = scratch("tmpdir");
    let o = robovlm_env(
        &[
            "act",
            "--policy",
            "fixtures/robovlms_discrete",
            "--checkpoint",
            "fixtures/robovlms_discrete/policy.pt",
            "--instruction",
            "open the drawer",
            FRAME,
        ],
        &[("TMPDIR", tmp.to_str().unwrap())],
    );
    assert!(o.status.success(), "{}", text(&o).1);
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "files created in TMPDIR");
}

#[test]
fn sizes_are_validated_before_anything_is_allocated() {
    // A config declaring 10^9 layers, or a 10^12-wide head.
    let model = model_copy("layers");
    edit_json(&model.join("config.json"), |v| {
        v["text_config"]["num_hidden_layers"] = serde_json::json!(1_000_000_000u64)
    });
    assert_clean_error(&generate(&model), "num_hidden_layers");
    let policy = scratch("head-width");
    copy_dir(&repo().join("fixtures/robovlms_lstm"), &policy);
    edit_json(&policy.join("robovlm_config.json"), |v| {
        v["act_head"]["hidden_size"] = serde_json::json!(1_000_000_000_000u64)
    });
    let backbone = repo().join("fixtures/paligemma_tiny/model");
    let act = |policy: &Path, instruction: &str, frame: &str| {
        robovlm(&[
            "act",
            "--policy",
            policy.to_str().unwrap(),
            "--backbone",
            backbone.to_str().unwrap(),
            "--instruction",
            instruction,
            frame,
        ])
    };
    assert_clean_error(&act(&policy, "open the drawer", FRAME), "act_head.hidden_size");

    // A 105,000-character instruction (its attention mask alone would be 19.6 GB).
    let long = "pick ".repeat(21_000);
    assert_clean_error(&act(&repo().join("fixtures/robovlms_lstm"), &long, FRAME), "max_position_embeddings");

    // A preprocessor size of 200,000.
    let model = model_copy("preprocessor");
    edit_json(&model.join("preprocessor_config.json"), |v| {
        v["size"] = serde_json::json!({"height": 200000, "width": 200000})
    });
    assert_clean_error(&generate(&model), "size");

    // `/dev/zero` as an image, and a PNG declaring 20000x20000 pixels (Pillow's bomb rule).
    let o = robovlm(&["generate", "--model", "fixtures/paligemma_tiny/model", "--image", "/dev/zero", "--prompt", "x"]);
    assert_clean_error(&o, "not a regular file");
    let bomb = scratch("bomb").join("bomb.png");
    std::fs::write(&bomb, png_header(20_000, 20_000)).unwrap();
    let o = robovlm(&[
        "generate",
        "--model",
        "fixtures/paligemma_tiny/model",
        "--image",
        bomb.to_str().unwrap(),
        "--prompt",
        "x",
    ]);
    assert_clean_error(&o, "decompression bomb");
}

#[test]
fn loaders_refuse_what_the_reference_libraries_refuse() {
    // Two tensors whose bytes overlap (the reference safetensors library refuses this file).
    let model = model_copy("overlap");
    let path = model.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let names: Vec<String> = header.as_object().unwrap().keys().filter(|k| *k != "__metadata__").cloned().collect();
    let (a, b) = (&names[0], &names[1]);
    let len = header[b]["data_offsets"][1].as_u64().unwrap() - header[b]["data_offsets"][0].as_u64().unwrap();
    let start = header[a]["data_offsets"][0].as_u64().unwrap();
    // `b` claims `a`'s first bytes (same length, same dtype): offsets overlap.
    header[b]["data_offsets"] = serde_json::json!([start, start + len]);
    let text_header = header.to_string();
    let mut out = (text_header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(text_header.as_bytes());
    out.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(&path, out).unwrap();
    assert_clean_error(&generate(&model), "overlaps");

    // A `.pt` whose storage is shorter than the tensor needs (loaded as padding before).
    let policy = scratch("pt-truncated");
    copy_dir(&repo().join("fixtures/robovlms_discrete"), &policy);
    std::fs::remove_file(policy.join("policy.safetensors")).unwrap();
    std::fs::copy(repo().join("fixtures/hardening/pt/truncated_storage.pt"), policy.join("policy.pt")).unwrap();
    let o = robovlm(&["act", "--policy", policy.to_str().unwrap(), "--instruction", "open the drawer", FRAME]);
    assert_clean_error(&o, "truncated");
}

#[test]
fn arithmetic_never_wraps() {
    let o = robovlm(&[
        "generate",
        "--model",
        "fixtures/paligemma_tiny/model",
        "--image",
        IMAGE,
        "--prompt",
        "caption en",
        "--max-new-tokens",
        "18446744073709551615",
    ]);
    assert_clean_error(&o, "max_position_embeddings");
}

#[test]
fn former_panics_are_errors() {
    // A vocabulary smaller than the tokenizer's ids (the embedding gather went out of bounds).
    let model = model_copy("vocab");
    edit_json(&model.join("config.json"), |v| v["text_config"]["vocab_size"] = serde_json::json!(100));
    assert_clean_error(&generate(&model), "vocab_size");
    // A preprocessor size that does not match the vision tower (an assertion in SigLIP).
    let model = model_copy("mismatch");
    edit_json(&model.join("preprocessor_config.json"), |v| {
        v["size"] = serde_json::json!({"height": 224, "width": 224})
    });
    assert_clean_error(&generate(&model), "vision tower takes 56x56");

    // `robovlm … | head`: the reader goes away; robovlm stops quietly with SIGPIPE's status.
    let mut child = Command::new(env!("CARGO_BIN_EXE_robovlm"))
        .args(["parity", "fixtures"])
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(141), "{err}");
    assert!(!err.contains("panicked") && !err.contains("internal error"), "{err}");
    // A full disk is a clear error.
    let full = std::fs::File::create("/dev/full").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_robovlm"))
        .args(["parity", "fixtures"])
        .current_dir(repo())
        .stdout(full)
        .output()
        .unwrap();
    assert_clean_error(&o, "No space left on device");
}

#[test]
fn non_finite_actions_never_reach_the_robot() {
    // The LSTM policy with one head weight set to NaN.
    let policy = scratch("nan");
    copy_dir(&repo().join("fixtures/robovlms_lstm"), &policy);
    let path = policy.join("policy.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let entry = &header["model.act_head.actions.mlp.6.bias"]; // the last layer: no ReLU after it
    let nan: &[u8] = match entry["dtype"].as_str().unwrap() {
        "F32" => &[0x00, 0x00, 0xc0, 0x7f],
        "BF16" => &[0xc0, 0x7f],
        "F16" => &[0x00, 0x7e],
        other => panic!("head stored as {other}"),
    };
    let start = 8 + n + entry["data_offsets"][0].as_u64().unwrap() as usize;
    bytes[start..start + nan.len()].copy_from_slice(nan);
    std::fs::write(&path, bytes).unwrap();
    let backbone = repo().join("fixtures/paligemma_tiny/model");
    let o = robovlm(&[
        "act",
        "--policy",
        policy.to_str().unwrap(),
        "--backbone",
        backbone.to_str().unwrap(),
        "--instruction",
        "open the drawer",
        FRAME,
    ]);
    assert_clean_error(&o, "refusing to emit a non-finite action at step 0");
    assert!(!text(&o).0.contains("NaN"), "no action printed: {}", text(&o).0);
}

/// A PNG of `w × h` grey pixels whose data is a single empty zlib stream: its header is valid,
/// its pixels would take `w · h` bytes.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        !bytes.iter().fold(!0u32, |c, &b| {
            (0..8).fold(c ^ u32::from(b), |c, _| if c & 1 == 1 { (c >> 1) ^ 0xEDB8_8320 } else { c >> 1 })
        })
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], body: &[u8]| {
        let typed = [kind, body].concat();
        png.extend_from_slice(&(body.len() as u32).to_be_bytes());
        png.extend_from_slice(&typed);
        png.extend_from_slice(&crc32(&typed).to_be_bytes());
    };
    chunk(b"IHDR", &[&w.to_be_bytes()[..], &h.to_be_bytes(), &[8, 0, 0, 0, 0]].concat());
    chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    chunk(b"IEND", &[]);
    png
}
