"""Runs the public LSTM fixture episode through `robovlm serve` with openpi's own client.

Uses the PyPI `openpi-client` package's `WebsocketClientPolicy` unchanged (plus Pillow to read
the frames) and prints one line per step, formatted like `robovlm act`, so the two can be
compared by eye or with diff. Installs nothing; run by hand, not by CI:

    python -m venv /tmp/openpi && /tmp/openpi/bin/pip install openpi-client typing_extensions pillow
    cargo run --release -p robovlm-cli -- serve --policy fixtures/robovlms_lstm --port 8000 &
    /tmp/openpi/bin/python tools/openpi_client_check.py --port 8000
    cargo run --release -p robovlm-cli -- act --policy fixtures/robovlms_lstm \\
        --instruction "<the episode's instruction>" fixtures/robovlms_lstm/inputs/frame_e0_t*.png
"""

import argparse
import json
from pathlib import Path

import numpy as np
from openpi_client import websocket_client_policy
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key")
    p.add_argument("--case", default=str(ROOT / "fixtures" / "robovlms_lstm"))
    args = p.parse_args()

    case = Path(args.case)
    episode = json.loads((case / "inputs" / "case.json").read_text())["episodes"][0]
    policy = websocket_client_policy.WebsocketClientPolicy(host=args.host, port=args.port, api_key=args.api_key)
    meta = policy.get_server_metadata()
    print(f"server: {meta['policy']} ({meta['policy_kind']}), chunk {meta['action_chunk']}, "
          f"{meta['backend']} {meta['dtype']}, robovlm {meta['robovlm_version']}")
    print(f"instruction: {episode['instruction']}")
    for t, rel in enumerate(episode["frames"]):
        frame = np.asarray(Image.open(case / rel).convert("RGB"), dtype=np.uint8)
        out = policy.infer({"observation/image": frame, "prompt": episode["instruction"]})
        action = out["actions"][0]
        print(f"step {t}: [{', '.join(f'{v:+.5f}' for v in action)}]  "
              f"(infer {out['server_timing']['infer_ms']:.1f} ms)")


if __name__ == "__main__":
    main()
