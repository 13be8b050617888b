"""Test signals and the probe encoder: fixtures the tests and `rtmirror bench live` share.

The probe encoder (`write_probe_model`) is a real ONNX step graph with a manifest, run by the real
EncoderRuntime: gate = mean spectrogram energy above a threshold, pitch from the loudest channel
(NSL CF = 440 * 2**((k - 31)/24 + shift)), one state (the previous frame: lookahead 1). A latency
measured with it does not depend on how well a trained model plays. Building it needs `onnx`
(the [train] extra); running it needs only onnxruntime.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def write_probe_model(path: str | Path, *, lookahead: int = 1, gate_threshold: float = 0.01,
                      frontend: dict | None = None, control_space: dict | None = None,
                      n_graph_controls: int | None = None) -> Path:
    """Write `path` (.onnx) + sidecar manifest of an energy-gate probe encoder (opset 17).

    lookahead 0 or 1. frontend / control_space override the manifest's (defaults: the default
    FrontendConfig and the "live" set); n_graph_controls != len(space) makes a deliberately
    mismatched model (for fault tests).
    """
    import hashlib

    import onnx
    from onnx import TensorProto, helper

    from rtmirror.controls import ControlSpace
    from rtmirror.frontend.config import FrontendConfig
    from rtmirror.manifest import METADATA_KEY, dumps, embedded_part

    path = Path(path)
    space = control_space or ControlSpace.load("live").to_dict()
    fcfg = frontend or FrontendConfig().to_dict()
    K = len(space["controls"]) if n_graph_controls is None else n_graph_controls
    shift = int(fcfg.get("shift", -1))
    names = [c["name"] for c in space["controls"]]
    f = helper.make_tensor_value_info("frames", TensorProto.FLOAT, [1, 128, "T"])
    out = helper.make_tensor_value_info("controls", TensorProto.FLOAT, [1, K, "T"])
    nodes, inits = [], []

    def const(name, value, dtype=np.float32):
        inits.append(onnx.numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    inputs, outputs = [f], [out]
    if lookahead == 1:
        s_in = helper.make_tensor_value_info("state_0", TensorProto.FLOAT, [1, 128, 1])
        s_out = helper.make_tensor_value_info("new_state_0", TensorProto.FLOAT, [1, 128, 1])
        inputs.append(s_in)
        outputs.append(s_out)
        nodes += [
            helper.make_node("Concat", ["state_0", "frames"], ["x_all"], axis=2),
            helper.make_node("Slice", ["x_all", const("s0", [0], np.int64), const("sm1", [-1], np.int64),
                                       const("ax2", [2], np.int64)], ["x"]),
            helper.make_node("Slice", ["x_all", "sm1", const("big", [2**62], np.int64), "ax2"], ["new_state_0"]),
        ]
    elif lookahead == 0:
        nodes.append(helper.make_node("Identity", ["frames"], ["x"]))
    else:
        raise ValueError("probe lookahead must be 0 or 1")
    nodes += [
        helper.make_node("ReduceMean", ["x"], ["e"], axes=[1], keepdims=1),             # (1, 1, T)
        helper.make_node("Greater", ["e", const("thr", gate_threshold)], ["g_b"]),
        helper.make_node("Cast", ["g_b"], ["gate"], to=TensorProto.FLOAT),
        helper.make_node("ArgMax", ["x"], ["k"], axis=1, keepdims=1),                    # (1, 1, T)
        helper.make_node("Cast", ["k"], ["kf"], to=TensorProto.FLOAT),
        # MIDI note = 69 + 12 * ((k - 31) / 24 + shift); normalized for pitch lo=36, hi=96
        helper.make_node("Mul", ["kf", const("half", 0.5)], ["k2"]),
        helper.make_node("Add", ["k2", const("noff", 69 - 15.5 + 12 * shift)], ["note"]),
        helper.make_node("Sub", ["note", const("lo", 36.0)], ["n0"]),
        helper.make_node("Div", ["n0", const("span", 60.0)], ["pitch"]),
        helper.make_node("Mul", ["e", const("zero", 0.0)], ["z"]),
        helper.make_node("Mul", ["e", const("two", 2.0)], ["e2"]),
        helper.make_node("Min", ["e2", const("one", 1.0)], ["bright"]),
    ]
    cols = []
    fixed = {"velocity": 0.7, "OSC: Volume2": 0.8, "VCF1: Resonance": 0.2, "ENV1: Attack": 0.3,
             "ENV1: Decay": 0.4}
    for j in range(K):
        name = names[j] if j < len(names) else f"extra{j}"
        if name == "pitch":
            cols.append("pitch")
        elif name == "gate":
            cols.append("gate")
        elif name == "VCF1: Frequency":
            cols.append("bright")
        else:
            nodes.append(helper.make_node("Add", ["z", const(f"c{j}", fixed.get(name, 0.5))], [f"col{j}"]))
            cols.append(f"col{j}")
    nodes.append(helper.make_node("Concat", cols, ["controls"], axis=1))
    graph = helper.make_graph(nodes, "rtmirror_probe", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)

    n_state = 1 if lookahead == 1 else 0
    manifest = {
        "format_version": 1, "kind": "rtmirror.encoder", "rtmirror_version": "0.1.0", "opset": 17,
        "n_controls": len(space["controls"]), "lookahead": lookahead, "control_space": space,
        "frontend": fcfg, "synth": "builtin",
        "step": {"inputs": ["frames"] + [f"state_{i}" for i in range(n_state)],
                 "outputs": ["controls"] + [f"new_state_{i}" for i in range(n_state)],
                 "state_shapes": [[1, 128, 1]] * n_state, "frames_input": "frames",
                 "controls_output": "controls"},
        "training": {"config_name": "probe (energy gate, loudest-channel pitch; not trained)"},
    }
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, dumps(embedded_part(manifest))
    data = model.SerializeToString()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    manifest["sha256"] = hashlib.sha256(data).hexdigest()
    path.with_suffix(".json").write_text(dumps(manifest) + "\n")
    return path


def demo_audio(space, seconds: float, sr: int = 16000, seed: int = 1):
    """(audio at sr, Melody): a general melody played by the built-in voice."""
    from rtmirror.synth import make_synth
    from rtmirror.synth.melody import general_melody
    mel = general_melody(np.random.default_rng(seed), space, duration_s=seconds)
    return make_synth("builtin", space, sample_rate=sr).render(mel.events, mel.duration_s), mel



def melody_onsets(mel, sr: int, lead_s: float = 0.5, gap_s: float = 0.03):
    """(audio with lead_s of silence first, onset samples of the notes that follow a rest)."""
    onsets = [n[0] for n, prev in zip(mel.notes, [None] + mel.notes[:-1])
              if prev is None or n[0] - prev[1] >= gap_s]
    return (np.asarray(onsets) + lead_s) * sr


def tone_bursts(n: int, sr: int, on_s: float = 0.25, off_s: float = 0.35, f0: float = 220.0,
                spread_s: float = 0.0, seed: int = 0):
    """n saw-ish bursts separated by silence -> (audio, onset sample indices).

    spread_s > 0 lengthens each gap by a random 0..spread_s, so the onsets fall at every phase of
    the frame and period grids (spread_s = one frame: a median over the bursts measures the mean
    wait of the stages that depend on phase)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(on_s * sr)) / sr
    burst = (0.3 * np.sin(2 * np.pi * f0 * t) + 0.15 * np.sin(4 * np.pi * f0 * t)).astype(np.float32)
    lead = np.zeros(int(0.5 * sr), np.float32)           # let the AGC and the stream settle
    parts, onsets, pos = [lead], [], len(lead)
    for _ in range(n):
        gap = np.zeros(int(off_s * sr) + int(rng.uniform(0.0, spread_s) * sr), np.float32)
        onsets.append(pos)
        parts += [burst, gap]
        pos += len(burst) + len(gap)
    return np.concatenate(parts), np.asarray(onsets)
