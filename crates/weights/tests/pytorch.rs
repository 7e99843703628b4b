//! PyTorch checkpoints: the real fixture against its safetensors twin, and the small valid and
//! broken files of `fixtures/hardening/pt` (written by `tools/pt_fixtures.py`).

use robovlm_test_utils::fixtures_dir;
use robovlm_weights::{Checkpoint, LoadErrorKind};

#[test]
fn a_torch_save_checkpoint_equals_its_safetensors_twin() {
    let dir = fixtures_dir().join("robovlms_discrete");
    let pt = Checkpoint::open(&dir.join("policy.pt")).unwrap();
    let st = Checkpoint::open(&dir.join("policy.safetensors")).unwrap();
    assert_eq!(pt.keys(), st.keys());
    for key in st.keys() {
        let (a, b) = (pt.read(key).unwrap(), st.read(key).unwrap());
        assert_eq!((a.shape.clone(), a.dtype), (b.shape.clone(), b.dtype), "{key}");
        assert_eq!(a.as_bytes(), b.as_bytes(), "{key}");
    }
}

#[test]
fn views_load_through_their_strides_and_broken_files_are_refused() {
    let dir = fixtures_dir().join("hardening/pt");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let mut checked = 0;
    for (file, expect) in expected.as_object().unwrap() {
        let opened = Checkpoint::open(&dir.join(file));
        if let Some(needle) = expect.get("error").and_then(|e| e.as_str()) {
            let e = opened.expect_err(file);
            assert_eq!(e.kind, LoadErrorKind::Format, "{file}: {e}");
            assert!(e.to_string().contains(needle), "{file}: {e}");
        } else {
            let ckpt = opened.unwrap_or_else(|e| panic!("{file}: {e}"));
            for (key, want) in expect.as_object().unwrap() {
                let data = ckpt.read(key).unwrap_or_else(|e| panic!("{file}: {e}"));
                let shape: Vec<usize> = serde_json::from_value(want["shape"].clone()).unwrap();
                let values: Vec<f32> = serde_json::from_value(want["values"].clone()).unwrap();
                assert_eq!(data.shape.to_vec(), shape, "{file} {key}");
                assert_eq!(data.to_vec::<f32>().unwrap(), values, "{file} {key}");
            }
        }
        checked += 1;
    }
    assert!(checked >= 14, "{checked} files");
}
