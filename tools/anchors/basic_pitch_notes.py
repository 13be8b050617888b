"""basic-pitch 0.4.0 (offline, its ONNX model) on WAV files -> notes JSON. Not shipped: run by
`rtmirror eval --anchors` with /work/anchors/basic-pitch/bin/python (tools/anchors/setup.sh).

    python basic_pitch_notes.py --out notes.json a.wav b.wav ...
notes.json: {"anchor": ..., "notes": {wav path: [[onset s, offset s, MIDI note], ...]}}
basic-pitch's defaults (onset 0.5, frame 0.3, min note 127.7 ms, melodia trick); its stamps are
offline (it sees the whole file).
"""
import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("wavs", nargs="+")
    args = p.parse_args()
    import basic_pitch
    from basic_pitch import ICASSP_2022_MODEL_PATH
    from basic_pitch.inference import Model, predict

    onnx_path = Path(ICASSP_2022_MODEL_PATH).with_suffix(".onnx")
    model = Model(onnx_path)
    out = {}
    for i, wav in enumerate(args.wavs):
        _, _, events = predict(wav, model)
        out[wav] = sorted([float(on), float(off), int(pitch)] for on, off, pitch, *_ in events)
        print(f"basic-pitch {i + 1}/{len(args.wavs)}", file=sys.stderr, flush=True)
    anchor = f"basic-pitch {getattr(basic_pitch, '__version__', '0.4.0')} ({onnx_path.name}, onnxruntime)"
    tmp = tempfile.NamedTemporaryFile("w", dir=Path(args.out).parent, delete=False, suffix=".tmp")
    json.dump({"anchor": anchor, "notes": out}, tmp)
    tmp.close()
    os.replace(tmp.name, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
