"""PESTO 2 (pesto-pitch 2.0.1, streaming mode) + the plain causal note segmenter
(models/eval/segmenter.py) on WAV files -> notes JSON. Not shipped: run by
`rtmirror eval --anchors` with /work/anchors/pesto/bin/python (tools/anchors/setup.sh).

    python pesto_notes.py --out notes.json a.wav b.wav ...
notes.json: {"anchor": ..., "notes": {wav path: [[onset s, offset s, MIDI note], ...]}}

Streaming: the audio (resampled to 16 kHz) is fed one 10 ms hop at a time to PESTO's model
built with streaming=True (cached CQT convolution; --mirror 0, PESTO's default: no look-ahead); the frame a hop
yields is stamped at the end of that hop, when a live player would have it. The segmenter's
decisions carry those stamps.
"""
import argparse
import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path

SR = 16000
STEP_MS = 10.0
HERE = Path(__file__).resolve().parent


def load_segmenter():
    path = HERE.parent.parent / "models" / "eval" / "segmenter.py"
    spec = importlib.util.spec_from_file_location("segmenter", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["segmenter"] = mod      # dataclasses look the module up by name
    spec.loader.exec_module(mod)
    return mod


def read_mono(path: str):
    import numpy as np
    import soundfile as sf
    import torch
    import torchaudio.functional as AF

    x, sr = sf.read(path, dtype="float32", always_2d=True)
    x = torch.from_numpy(np.ascontiguousarray(x.mean(axis=1)))
    return AF.resample(x, sr, SR) if sr != SR else x


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--mirror", type=float, default=0.0,
                   help="PESTO's streaming look-ahead stand-in (share of the CQT kernel zero-padded "
                        "instead of waited for; default 0: PESTO's default, fully causal)")
    p.add_argument("wavs", nargs="+")
    args = p.parse_args()
    import numpy as np
    import torch
    from pesto import load_model

    torch.set_num_threads(1)
    seg = load_segmenter()
    hop = int(round(SR * STEP_MS / 1000))
    out, tracks = {}, {}
    for i, wav in enumerate(args.wavs):
        x = read_mono(wav)
        # a fresh model per file: the streaming caches start empty, like a new take
        model = load_model("mir-1k_g7", step_size=STEP_MS, sampling_rate=SR, streaming=True, mirror=args.mirror)
        pitch, conf = [], []
        with torch.inference_mode():
            for start in range(0, len(x) - hop + 1, hop):
                f0, c, *_ = model(x[start:start + hop].unsqueeze(0), sr=SR, convert_to_freq=False,
                                  return_activations=False)
                pitch.append(float(f0.reshape(-1)[-1]))
                conf.append(float(c.reshape(-1)[-1]))
        times = (np.arange(len(pitch)) + 1) * hop / SR
        notes = seg.segment(times, np.asarray(pitch), np.asarray(conf))
        out[wav] = [[float(a), float(b), int(n)] for a, b, n in notes]
        tracks[wav] = {"pitch": [round(v, 3) for v in pitch], "confidence": [round(v, 3) for v in conf]}
        print(f"pesto {i + 1}/{len(args.wavs)}", file=sys.stderr, flush=True)
    anchor = (f"PESTO 2.0.1 mir-1k_g7 streaming ({STEP_MS:g} ms hop, mirror {args.mirror:g}) + causal segmenter "
              f"{seg.SegmenterConfig()}")
    tmp = tempfile.NamedTemporaryFile("w", dir=Path(args.out).parent, delete=False, suffix=".tmp")
    json.dump({"anchor": anchor, "notes": out, "step_s": hop / SR, "tracks": tracks}, tmp)
    tmp.close()
    os.replace(tmp.name, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
