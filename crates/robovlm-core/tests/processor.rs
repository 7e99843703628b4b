//! The processor on the repo's fixture model directory and on synthetic bad inputs.
//! (Bit-exact agreement with the Python references is checked by `robovlm parity fixtures`.)

use std::path::{Path, PathBuf};

use robovlm_core::robovlms::{discrete_prompt_text, instruction_batch};
use robovlm_core::{Error, ImageProcessor, PaliGemmaProcessor, TextTokenizer};

fn model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/paligemma_tiny/model")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("robovlm-core-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn prompt_layout_is_images_bos_prompt_newline() {
    let p = PaliGemmaProcessor::from_dir(&model_dir()).unwrap();
    assert_eq!(p.num_image_tokens(), 16);
    let b = p.encode_prompts(&["caption en"]).unwrap();
    let ids = &b.input_ids;
    assert!(ids[..16].iter().all(|&i| i == p.image_token_id()));
    assert_eq!(ids[16], p.tokenizer().special().bos);
    assert_eq!(*ids.last().unwrap(), p.tokenizer().token_id("\n").unwrap());
    assert!(b.attention_mask.iter().all(|&m| m == 1));
}

#[test]
fn batches_pad_left_and_training_labels_follow_token_types() {
    let p = PaliGemmaProcessor::from_dir(&model_dir()).unwrap();
    let b = p.encode_prompts(&["caption en", "answer en where is the cat sitting?"]).unwrap();
    assert_eq!(b.batch, 2);
    let row0 = &b.input_ids[..b.seq];
    let pads = b.seq - p.encode_prompts(&["caption en"]).unwrap().seq;
    assert!(pads > 0);
    assert!(row0[..pads].iter().all(|&i| i == p.tokenizer().special().pad));
    assert!(b.attention_mask[..pads].iter().all(|&m| m == 0));

    let t = p.prompts().training(&[("caption en", "a cat")]).unwrap();
    let (types, labels) = (t.token_type_ids.unwrap(), t.labels.unwrap());
    assert_eq!(*t.input_ids.last().unwrap(), p.tokenizer().special().eos);
    for ((&id, &ty), &label) in t.input_ids.iter().zip(&types).zip(&labels) {
        assert_eq!(label, if ty == 1 { i64::from(id) } else { -100 });
    }
    assert!(types.contains(&1) && types[0] == 0);
}

#[test]
fn robovlms_instructions_start_with_eos_and_pad_right() {
    let tok = TextTokenizer::from_file(&model_dir().join("tokenizer.json")).unwrap();
    let b = instruction_batch(&tok, &["  open the drawer ", "lift the red block from the table"]).unwrap();
    assert_eq!(b.input_ids[0], tok.special().eos);
    assert_eq!(b.input_ids[b.seq], tok.special().eos);
    let newline = tok.token_id("\n").unwrap();
    let len0 = b.attention_mask[..b.seq].iter().filter(|&&m| m == 1).count();
    assert_eq!(b.input_ids[len0 - 1], newline, "instruction is stripped and ends with a newline");
    assert!(b.input_ids[len0..b.seq].iter().all(|&i| i == tok.special().pad));
    assert!(discrete_prompt_text("open the drawer", 2, "<eos>").starts_with("Input: What 3 step actions"));
}

#[test]
fn missing_and_corrupt_files_are_named_errors() {
    let dir = scratch("bad");
    let err = PaliGemmaProcessor::from_dir(&dir.join("nope")).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");

    let bad_png = dir.join("bad.png");
    std::fs::write(&bad_png, b"\x89PNG\r\n\x1a\nthis is not a png").unwrap();
    let p = PaliGemmaProcessor::from_dir(&model_dir()).unwrap();
    let err = p.process_image(&bad_png).unwrap_err();
    assert!(matches!(err, Error::Image(_)) && err.to_string().contains("bad.png"), "{err}");
    let err = p.process_image(&dir.join("absent.png")).unwrap_err();
    assert!(
        matches!(err, Error::Image(robovlm_core::pixels::Error::File { .. })) && err.to_string().contains("absent.png"),
        "{err}"
    );

    let bad_tok = dir.join("tokenizer.json");
    std::fs::write(&bad_tok, "{\"not\": \"a tokenizer\"}").unwrap();
    let err = TextTokenizer::from_file(&bad_tok).unwrap_err();
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
}

#[test]
fn preprocessor_config_errors_name_the_field() {
    let dir = scratch("cfg");
    let path = dir.join("preprocessor_config.json");
    for (json, field) in [
        (r#"{"resample": 2}"#, "resample"),
        (r#"{"image_mean": [0.5, 0.5]}"#, "image_mean"),
        (r#"{"image_std": [0.5, 0.0, 0.5]}"#, "image_std"),
        (r#"{"size": {"height": 0, "width": 4}}"#, "size"),
    ] {
        std::fs::write(&path, json).unwrap();
        let err = ImageProcessor::from_file(&path).unwrap_err();
        assert!(err.to_string().contains(field), "{json}: {err}");
    }
    std::fs::write(&path, "{ truncated").unwrap();
    assert!(matches!(ImageProcessor::from_file(&path).unwrap_err(), Error::Json { .. }));
}

#[test]
fn clip_constants_and_sizes_come_from_the_file() {
    let dir = scratch("clip");
    let path = dir.join("preprocessor_config.json");
    std::fs::write(
        &path,
        r#"{"size": {"height": 3, "width": 2}, "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_std": [0.26862954, 0.26130258, 0.27577711]}"#,
    )
    .unwrap();
    let proc = ImageProcessor::from_file(&path).unwrap();
    let img = robovlm_core::RgbImage::new(2, 3, vec![255; 18]).unwrap();
    let out = proc.process(&img).unwrap();
    let expect = ((255f64 * (1.0 / 255.0)) as f32 - 0.48145466f32) / 0.26862954f32;
    assert_eq!(out.pixel_values[0], expect);
    assert_eq!(out.pixel_values.len(), 18);
}
