"""Write the shipped default model's note rules and delay into its manifest (a one-off, kept so the
change can be re-made and checked): `python tools/stamp_default_rules.py`.

The shipped default (models/checkpoints/default, trained 2026-11-25) went through the Performer of
that day in its mirror rounds: a note-on at once, no pitch settling, a note-off at the first frame
below gate_off. Its checkpoint records the rules of that day, which lack the three fields added
since (they then behaved as the values below). After training, the rules were retuned on its
validation set (tools/tune_performer.py: note F1 0.678 -> 0.865): one frame of onset settling, a
pitch steady for 2 frames, a note-off after 2 frames below. The model is played with those; the
manifest records both, so the engine plays it as intended and says which rules it uses.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "rtmirror" / "resources" / "default.onnx"
CHECKPOINT = ROOT / "models" / "checkpoints" / "default" / "config.json"
# What the fields added after training behaved as in the Performer the model was trained with.
LEGACY = {"gate_off_frames": 1, "pitch_stable_frames": 1, "pitch_stable_tol": 0.25, "onset_settle_frames": 0}


def main() -> int:
    from rtmirror.export.onnx_export import update_manifest
    from rtmirror.frontend.config import FrontendConfig
    from rtmirror.manifest import model_delay
    from rtmirror.performer import PerformerConfig

    trained = {**LEGACY, **json.loads(CHECKPOINT.read_text())["performer"]}
    play = PerformerConfig()                       # the retuned rules (rtmirror/performer.py defaults)
    manifest = json.loads(MODEL.with_suffix(".json").read_text())
    frame_rate = FrontendConfig.from_dict(manifest["frontend"]).frame_rate
    out = update_manifest(MODEL, {
        "performer": play.to_dict(),
        "performer_trained": PerformerConfig.from_dict(trained).to_dict(),
        "delay": model_delay(manifest["lookahead"], play, frame_rate),
    })
    print(f"{MODEL}: performer rules and delay {out['delay']} written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
