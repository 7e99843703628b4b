#!/usr/bin/env python3
"""Small PyTorch-format checkpoints, valid and broken, for robovlm-weights' tests.

Writes `fixtures/hardening/pt/` (or `--out`). The files follow `torch.save`'s zip layout
(`<name>/data.pkl`, `<name>/byteorder`, `<name>/data/<key>`, `<name>/version`), with the pickle
emitted by Python's own pickler through stand-ins for `torch._utils._rebuild_tensor_v2` and the
storage classes — byte for byte the opcodes torch.save writes (protocol 2, `BINPERSID` storage
ids), without needing torch installed. Each file's expected outcome is in `expected.json`.

    python3 tools/pt_fixtures.py
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import pickle
import struct
import sys
import types
import zipfile
from pathlib import Path

# --- stand-ins so that pickle writes `torch._utils _rebuild_tensor_v2` and `torch FloatStorage` ---
torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")


def _rebuild_tensor_v2(*args):  # never called: only its name is pickled
    raise RuntimeError


def _rebuild_parameter(*args):
    raise RuntimeError


_rebuild_tensor_v2.__module__ = _rebuild_parameter.__module__ = "torch._utils"
torch_utils._rebuild_tensor_v2 = _rebuild_tensor_v2
torch_utils._rebuild_parameter = _rebuild_parameter
STORAGE_TYPES = {"f4": "FloatStorage", "f2": "HalfStorage", "i8": "LongStorage", "bf16": "BFloat16Storage"}
for name in STORAGE_TYPES.values():
    cls = type(name, (), {"__module__": "torch"})
    setattr(torch, name, cls)
torch._utils = torch_utils
sys.modules["torch"] = torch
sys.modules["torch._utils"] = torch_utils


class Storage:
    def __init__(self, key: str, kind: str, numel: int):
        self.key, self.kind, self.numel = key, kind, numel


class Tensor:
    def __init__(self, storage: Storage, offset: int, shape, stride, parameter: bool = False):
        self.storage, self.offset, self.shape, self.stride, self.parameter = storage, offset, shape, stride, parameter

    def __reduce__(self):
        rebuilt = (_rebuild_tensor_v2, (self.storage, self.offset, tuple(self.shape), tuple(self.stride), False,
                                        collections.OrderedDict()))
        if self.parameter:
            return (_rebuild_parameter, (_Inner(rebuilt), True, collections.OrderedDict()))
        return rebuilt


class _Inner:
    def __init__(self, reduced):
        self.reduced = reduced

    def __reduce__(self):
        return self.reduced


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", getattr(torch, STORAGE_TYPES[obj.kind]), obj.key, "cpu", obj.numel)
        return None


def checkpoint(obj, storages: dict[str, bytes], name: str = "archive", skip: tuple[str, ...] = ()) -> bytes:
    pkl = io.BytesIO()
    Pickler(pkl, protocol=2).dump(obj)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{name}/data.pkl", pkl.getvalue())
        z.writestr(f"{name}/byteorder", "little")
        for key, data in storages.items():
            if key not in skip:
                z.writestr(f"{name}/data/{key}", data)
        z.writestr(f"{name}/version", "3\n")
    return out.getvalue()


def f32(values) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "fixtures" / "hardening" / "pt")
    out = ap.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    six = Storage("0", "f4", 6)
    data = {"0": f32(range(6))}
    files: dict[str, tuple[bytes, dict]] = {}

    def add(name, obj, storages, expect, **kw):
        files[name] = (checkpoint(obj, storages, **kw), expect)

    # Valid: a plain [2, 3] tensor, a transposed view [3, 2] (strides (1, 3)), a slice with an
    # offset, an expanded row (stride 0), a Parameter, a Lightning {'state_dict': ...} file.
    plain = {"w": Tensor(six, 0, (2, 3), (3, 1))}
    add("plain.pt", plain, data, {"w": {"shape": [2, 3], "values": [0, 1, 2, 3, 4, 5]}})
    add("transposed_view.pt", {"w": Tensor(six, 0, (3, 2), (1, 3))}, data,
        {"w": {"shape": [3, 2], "values": [0, 3, 1, 4, 2, 5]}})
    add("slice_past_end.pt", {"w": Tensor(six, 2, (2, 2), (3, 1))}, data, {"error": "reaches past"})
    add("column_slice.pt", {"w": Tensor(six, 1, (2, 2), (3, 1))}, data, {"w": {"shape": [2, 2], "values": [1, 2, 4, 5]}})
    add("expanded_row.pt", {"w": Tensor(six, 3, (2, 3), (0, 1))}, data, {"w": {"shape": [2, 3], "values": [3, 4, 5, 3, 4, 5]}})
    add("parameter.pt", {"w": Tensor(six, 0, (6,), (1,), parameter=True)}, data,
        {"w": {"shape": [6], "values": [0, 1, 2, 3, 4, 5]}})
    add("lightning.ckpt", {"epoch": 3, "state_dict": collections.OrderedDict(plain), "hyper_parameters": {"lr": 1e-4}},
        data, {"w": {"shape": [2, 3], "values": [0, 1, 2, 3, 4, 5]}})
    shared = {"a": Tensor(six, 0, (6,), (1,)), "b": Tensor(six, 0, (6,), (1,))}
    add("shared_storage.pt", shared, data,
        {"a": {"shape": [6], "values": [0, 1, 2, 3, 4, 5]}, "b": {"shape": [6], "values": [0, 1, 2, 3, 4, 5]}})
    # Broken: storage entry missing, storage shorter than declared, offset past the end, a
    # 2^40-element shape, sizes/strides that disagree.
    add("missing_storage.pt", plain, data, {"error": "missing"}, skip=("0",))
    add("truncated_storage.pt", plain, {"0": f32(range(4))}, {"error": "truncated"})
    add("offset_past_end.pt", {"w": Tensor(six, 7, (1,), (1,))}, data, {"error": "past"})
    add("huge_shape.pt", {"w": Tensor(six, 0, (1 << 20, 1 << 20), (1 << 20, 1))}, data, {"error": "reaches past"})
    add("stride_mismatch.pt", {"w": Tensor(six, 0, (2, 3), (3,))}, data, {"error": "strides"})
    # An entry whose declared size runs past the end of the file (a zip64-style lie).
    good = checkpoint(plain, data)
    lie = bytearray(good)
    for at in range(len(good) - 46, 0, -1):  # central directory header of archive/data/0
        if good[at:at + 4] == b"PK\x01\x02" and good[at + 46:at + 46 + 14] == b"archive/data/0":
            struct.pack_into("<II", lie, at + 20, 1 << 31, 1 << 31)  # compressed, uncompressed sizes
            break
    files["declared_size_lie.pt"] = (bytes(lie), {"error": "past the end"})
    expected = {}
    for name, (blob, expect) in sorted(files.items()):
        (out / name).write_bytes(blob)
        expected[name] = expect
    (out / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    print(f"{len(files)} files in {out}")


if __name__ == "__main__":
    main()
