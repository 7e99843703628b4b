"""Writes a PaliGemma 2 parity case with a configuration the public fixtures do not have, from
transformers 4.47.1 itself, so `robovlm parity` can be checked on shapes it was not written for.

The public `paligemma2_tiny` case has query_pre_attn_scalar = head_dim, one KV head, head_dim =
hidden / heads, patch size 14, window 16 and a vocabulary equal to the tokenizer's. The variant
changes all of them: 2 KV heads of 4 query heads, head_dim 24 with hidden 48 (not 48 / 4),
query_pre_attn_scalar 20, soft-caps 7.5 / 4.0, window 8 (every prompt is longer, and generation
runs 20 tokens past it), rope_theta 5000, 4 layers, a vocabulary padded past the tokenizer,
SigLIP patch 10 (49 image tokens) with 3 layers. Weights are random (seeded) with non-zero norm
weights, so a dropped `1 +` or norm shows. Tokenizer, images and prompts are the public case's.

Usage (needs torch and transformers==4.47.1; writes OUT/paligemma2_variant):
    python tools/pg2_variant.py fixtures/paligemma2_tiny fixtures
    cargo run --release -p robovlm-cli -- parity fixtures/paligemma2_variant
"""

import json
import shutil
import sys
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import save_file
from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration, PaliGemmaProcessor

MAX_NEW_TOKENS = 20


def main(src: Path, out: Path):
    case = out / "paligemma2_variant"
    if case.exists():
        shutil.rmtree(case)
    (case / "model").mkdir(parents=True)
    shutil.copytree(src / "inputs", case / "inputs")
    for name in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"]:
        shutil.copy(src / "model" / name, case / "model" / name)

    base = json.loads((src / "model" / "config.json").read_text())
    patches = (70 // 10) ** 2
    text = dict(base["text_config"])
    text.update(
        hidden_size=48,
        intermediate_size=96,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=24,
        query_pre_attn_scalar=20,
        attn_logit_softcapping=7.5,
        final_logit_softcapping=4.0,
        sliding_window=8,
        rope_theta=5000.0,
        num_hidden_layers=4,
        vocab_size=1800,
        num_image_tokens=patches,
    )
    vision = dict(base["vision_config"])
    vision.update(hidden_size=40, intermediate_size=72, num_attention_heads=4, num_hidden_layers=3, patch_size=10,
                  projection_dim=48)
    config = dict(base, text_config=text, vision_config=vision, projection_dim=48)
    config.pop("_vocab_size", None)
    config.pop("hidden_size", None)  # as PaliGemma 2 conversions write it
    cfg = PaliGemmaConfig(**{k: v for k, v in config.items() if k not in ("architectures", "transformers_version")})
    cfg.text_config.vocab_size = 1800

    torch.manual_seed(7)
    model = PaliGemmaForConditionalGeneration(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                p.copy_(torch.randn_like(p) * 0.5)
            else:
                p.copy_(torch.randn_like(p) * 0.08)
    # Tied head: save only what transformers 4.47.1 writes.
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "language_model.lm_head.weight"}
    save_file(state, str(case / "model" / "model.safetensors"), metadata={"format": "pt"})
    saved = json.loads(cfg.to_json_string())
    saved["architectures"] = ["PaliGemmaForConditionalGeneration"]
    (case / "model" / "config.json").write_text(json.dumps(saved, indent=2))
    pre = json.loads((src / "model" / "preprocessor_config.json").read_text())
    pre["image_seq_length"] = patches
    (case / "model" / "preprocessor_config.json").write_text(json.dumps(pre, indent=2))

    processor = PaliGemmaProcessor.from_pretrained(case / "model")
    model = PaliGemmaForConditionalGeneration.from_pretrained(case / "model", torch_dtype=torch.float32).eval()
    assert model.config.text_config._attn_implementation == "eager", model.config.text_config._attn_implementation
    reference = json.loads((src / "reference.json").read_text())
    values = {k: v for k, v in reference["values"].items() if k.endswith(".prompt") or k in ("batch.prompts",)}
    tensors, meta = {}, {}

    def put(name, t):
        tensors[name] = t.detach().to(torch.float32 if t.is_floating_point() else torch.int64).contiguous()
        meta[name] = {"shape": list(t.shape), "dtype": "float32" if t.is_floating_point() else "int64"}

    def image(rel):
        return Image.open(case / rel).convert("RGB")

    def generate(inputs):
        g = model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, return_dict_in_generate=True,
                           output_logits=True)
        new = g.sequences[:, inputs["input_ids"].shape[1]:]
        return new, torch.stack(g.logits, 1)

    with torch.no_grad():
        for key in sorted(k[:-len(".prompt")] for k in values if k.startswith("p") and k.endswith(".prompt")):
            p = values[f"{key}.prompt"]
            inputs = processor(text=p["text"], images=image(p["image"]), return_tensors="pt")
            put(f"{key}.input_ids", inputs["input_ids"])
            put(f"{key}.logits", model(**inputs).logits)
            new, logits = generate(inputs)
            put(f"{key}.gen_new_ids", new[0])
            put(f"{key}.gen_step_logits", logits)
        rows = values["batch.prompts"]
        inputs = processor(text=[r["text"] for r in rows], images=[image(r["image"]) for r in rows],
                           return_tensors="pt", padding="longest")
        assert (inputs["attention_mask"][:, 0] == 0).any(), "the batch must be left-padded"
        put("batch.input_ids", inputs["input_ids"])
        new, logits = generate(inputs)
        put("batch.gen_new_ids", new)
        put("batch.gen_step_logits", logits)
        alone = []
        for r in rows:
            one = processor(text=r["text"], images=image(r["image"]), return_tensors="pt")
            ids, _ = generate(one)
            pad = torch.full((1, MAX_NEW_TOKENS - ids.shape[1]), processor.tokenizer.pad_token_id)
            alone.append(torch.cat([ids, pad], 1))
        put("batch.gen_new_ids_padding_correct", torch.cat(alone, 0))

    save_file(tensors, str(case / "reference.safetensors"))
    (case / "reference.json").write_text(json.dumps({
        "case": "paligemma2_variant",
        "kind": "paligemma",
        "model_dir": "model",
        "generated_by": "tools/pg2_variant.py",
        "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__},
        "tensors": meta,
        "values": values,
    }, indent=1))
    case_json = json.loads((case / "inputs" / "case.json").read_text())
    case_json["generation"]["max_new_tokens"] = MAX_NEW_TOKENS
    (case / "inputs" / "case.json").write_text(json.dumps(case_json, indent=1))
    changed = bool((tensors["batch.gen_new_ids"] != tensors["batch.gen_new_ids_padding_correct"]).any())
    print(f"wrote {case} ({len(tensors)} tensors; HybridCache quirk changes the padded batch ids: {changed})")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
