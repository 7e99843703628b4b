#!/usr/bin/env python3
"""PyTorch + transformers side of `robovlm bench`: the same measurements, shapes and median
method, printing the same JSON keys. `cargo xtask bench` runs both and prints the ratios.

Needs: torch, transformers (CPU is enough). Random weights: nothing is downloaded.

    python tools/bench_reference.py --preset paligemma-3b-224 --vision-layers 4 --text-layers 2 --json

--dtype bf16 runs everything in bfloat16 as RoboVLMs does (`precision: bf16`: backbone, LSTM and
heads; pixels and the action token too) — PyTorch's fastest CPU mode where the CPU has bf16
dot products (AVX-512 BF16 / AMX, through oneDNN). --dtype f32 (default) is float32.

What each key measures (medians over --iters after --warmup untimed runs):
- image_encode_ms: pixel values [1,3,224,224] -> image features [1,256,2048]
  (`get_image_features`: SigLIP tower, projector, / sqrt(hidden)).
- control_step_ms: one RoboPaligemma step as RoboVLMs runs it: embed the instruction ids,
  splice [first token, image features, rest, action token, last token], Gemma forward
  (bidirectional mask, no logits), action-token hidden state -> LSTM (4 layers, hidden 1024)
  over the full history window of 8 from a zero state ("post" rule) -> arm (tanh MLP) and
  gripper MLPs -> numpy.
- prefill_ms: 256 image tokens + P text tokens (image features precomputed) -> Gemma forward
  with the KV cache -> logits of the last position -> argmax.
- decode_tokens_per_s: D greedy steps with the KV cache after the prefill.
- load_ms: `from_pretrained` of --model (in --dtype).
- peak_rss_mb: peak resident set size of the process (ru_maxrss).
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--preset", choices=["paligemma-3b-224", "paligemma2-3b-224"])
    src.add_argument("--model", help="a PaliGemma directory (times the load too)")
    p.add_argument("--vision-layers", type=int)
    p.add_argument("--text-layers", type=int)
    p.add_argument("--instruction-tokens", type=int, default=16)
    p.add_argument("--decode-tokens", type=int, default=32)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    p.add_argument("--dtype", choices=["f32", "bf16"], default="f32", help="precision of the whole run")
    p.add_argument("--json", action="store_true")
    return p.parse_args()


def median_ms(warmup, iters, fn):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times) if times else None


def preset_config(args):
    from transformers import Gemma2Config, GemmaConfig, PaliGemmaConfig, SiglipVisionConfig

    pg2 = args.preset == "paligemma2-3b-224"
    hidden = 2304 if pg2 else 2048
    vision = SiglipVisionConfig(
        hidden_size=1152,
        intermediate_size=4304,
        num_hidden_layers=args.vision_layers or 27,
        num_attention_heads=16,
        image_size=224,
        patch_size=14,
        projection_dim=hidden,
        vision_use_head=False,
    )
    if pg2:
        # Gemma2Config's defaults are PaliGemma 2 3B's decoder (window 4096, soft-caps 50/30).
        text = Gemma2Config(
            vocab_size=257216,
            num_hidden_layers=args.text_layers or 26,
            hidden_activation="gelu_pytorch_tanh",
        )
    else:
        text = GemmaConfig(
            vocab_size=257216,
            hidden_size=2048,
            intermediate_size=16384,
            num_hidden_layers=args.text_layers or 18,
            num_attention_heads=8,
            num_key_value_heads=1,
            head_dim=256,
            max_position_embeddings=8192,
            hidden_activation="gelu_pytorch_tanh",
        )
    return PaliGemmaConfig(
        vision_config=vision.to_dict(),
        text_config=text.to_dict(),
        projection_dim=hidden,
        hidden_size=hidden,
        image_token_index=257152,
        vocab_size=257216,
    )


def image_features(model, pixels):
    out = model.get_image_features(pixels)
    # transformers >= 5 may wrap the features in an output object.
    if hasattr(out, "pooler_output") and out.pooler_output is not None:
        out = out.pooler_output
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out


def main():
    args = parse_args()
    import torch
    from transformers import PaliGemmaForConditionalGeneration

    torch.set_num_threads(args.threads)
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    torch.manual_seed(0)
    report = dict.fromkeys(
        ["image_encode_ms", "control_step_ms", "prefill_ms", "decode_tokens_per_s", "load_ms", "peak_rss_mb"]
    )
    if args.model:
        start = time.perf_counter()
        model = PaliGemmaForConditionalGeneration.from_pretrained(args.model, torch_dtype=dtype)
        report["load_ms"] = (time.perf_counter() - start) * 1e3
    else:
        model = PaliGemmaForConditionalGeneration(preset_config(args)).to(dtype)
    model.eval()
    cfg = model.config
    text_cfg = cfg.text_config
    d = text_cfg.hidden_size
    vocab = text_cfg.vocab_size
    size = cfg.vision_config.image_size
    n_image = (size // cfg.vision_config.patch_size) ** 2
    decoder = model.get_decoder()
    lm_head = model.get_output_embeddings()
    embed = model.get_input_embeddings()

    def ids(n, salt):
        return torch.tensor([[2 + (i * 7919 + salt * 104729) % (min(vocab, 200000) - 2) for i in range(n)]])

    if args.iters > 0:
        with torch.inference_mode():
            # One preprocessed frame, drawn once: drawing random pixels is not the work measured
            # (robovlm bench does the same).
            frame = (torch.rand(1, 3, size, size) * 2 - 1).to(dtype)
            pixels = lambda: frame  # noqa: E731
            report["image_encode_ms"] = median_ms(args.warmup, args.iters, lambda: image_features(model, pixels()))

            # Control step.
            l = max(args.instruction_tokens, 2)
            text = ids(l, 1)
            action_token = torch.randn(d, dtype=dtype)
            lstm = torch.nn.LSTM(d, 1024, num_layers=4, batch_first=True).to(dtype)

            def mlp(out, tanh):
                layers = [torch.nn.Linear(1024, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 512), torch.nn.ReLU()]
                layers += [torch.nn.Linear(512, 256), torch.nn.ReLU(), torch.nn.Linear(256, out)]
                return torch.nn.Sequential(*layers, *([torch.nn.Tanh()] if tanh else [])).to(dtype)

            arm_head, gripper_head = mlp(6, True), mlp(1, False)
            history = [torch.randn(1, 1, d, dtype=dtype) for _ in range(8)]
            seq = l + n_image + 1
            full_mask = torch.zeros(1, 1, seq, seq, dtype=dtype)

            def control_step():
                emb = embed(text)
                image = image_features(model, pixels())
                x = torch.cat([emb[:, :1], image, emb[:, 1 : l - 1], action_token.view(1, 1, d), emb[:, l - 1 :]], 1)
                hidden = decoder(inputs_embeds=x, attention_mask=full_mask, use_cache=False).last_hidden_state
                history.append(hidden[:, seq - 2 : seq - 1])
                del history[:-8]
                out, _ = lstm(torch.cat(history, 1))
                last = out[:, -1:]
                return arm_head(last).float().numpy(), gripper_head(last).float().numpy()

            report["control_step_ms"] = median_ms(args.warmup, args.iters, control_step)

            # Prefill and decode.
            features = image_features(model, pixels())
            prompt = torch.cat([torch.full((1, n_image), cfg.image_token_index), ids(args.instruction_tokens, 2)], 1)
            prompt[prompt == cfg.image_token_index] = 2
            prompt[:, :n_image] = cfg.image_token_index

            def prefill():
                x = embed(prompt)
                x[:, :n_image] = features
                out = decoder(inputs_embeds=x, use_cache=True)
                nxt = lm_head(out.last_hidden_state[:, -1:]).argmax(-1)
                return out.past_key_values, nxt

            report["prefill_ms"] = median_ms(args.warmup, args.iters, prefill)

            if args.decode_tokens > 0:

                def decode():
                    cache, nxt = prefill()
                    start = time.perf_counter()
                    for _ in range(args.decode_tokens):
                        out = decoder(inputs_embeds=embed(nxt), past_key_values=cache, use_cache=True)
                        cache = out.past_key_values
                        nxt = lm_head(out.last_hidden_state[:, -1:]).argmax(-1)
                    return time.perf_counter() - start

                for _ in range(args.warmup):
                    decode()
                rates = [args.decode_tokens / decode() for _ in range(args.iters)]
                report["decode_tokens_per_s"] = statistics.median(rates)

    report["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.json:
        print(json.dumps(report))
    else:
        for k, v in report.items():
            print(f"{k:<20} {'-' if v is None else f'{v:.2f}'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
