"""The assembly layer (rtmirror.app): every `rtmirror live` flag reaches the engine, in the console
and through the window (no argv round trip), and a model is played with its own note rules."""
from __future__ import annotations

import argparse
import os
from dataclasses import fields, replace

import mido
import numpy as np
import pytest
import soundfile as sf

from rtmirror.app import LiveOptions, build_engine, options_from_args, performer_config
from rtmirror.cli import live as live_cli
from rtmirror.midi.ccmap import CCMap
from rtmirror.performer import PerformerConfig
from rtmirror.runtime import EncoderRuntime

# LiveOptions fields no `rtmirror live` flag sets: the engine's own (realtime pacing, backlog,
# test recording) and --no-midi, which only `rtmirror gui` has.
NOT_FLAGS = {"realtime", "max_backlog_s", "record_all", "no_port"}


@pytest.fixture
def every_flag(tmp_path):
    """argv setting every `rtmirror live` flag to a non-default value, and the options it must give."""
    wav = tmp_path / "in.wav"
    sf.write(wav, 0.1 * np.sin(2 * np.pi * 220 * np.arange(8000) / 16000).astype(np.float32), 16000)
    argv = ["--input", "3", "--wav", str(wav), "--sample-rate", "16000", "--input-channel", "2",
            "--virtual", "mine", "--channel", "5", "--model", "m.onnx", "--cc-map", "map.toml",
            "--record", str(tmp_path / "take.mid"), "--controls", str(tmp_path / "c.csv"),
            "--midi-api", "jack", "--pitch-bend", "--legato", "--settle-frames", "3",
            "--gate-floor", "-60", "--stop-on-port-loss", "--print-midi", "--duration", "1.5",
            "--key", "F#", "--scale", "dorian", "--cc-in-silence"]
    expected = LiveOptions(input="3", wav=str(wav), sample_rate=16000, input_channel=1, virtual="mine",
                           channel=5, model="m.onnx", cc_map="map.toml", record=str(tmp_path / "take.mid"),
                           controls_csv=str(tmp_path / "c.csv"), midi_api="jack", pitch_bend=True,
                           legato=True, settle_frames=3, gate_floor_dbfs=-60.0, stop_on_port_loss=True,
                           print_midi=True, duration_s=1.5, max_backlog_s=0.5, key="F#", scale="dorian",
                           cc_in_silence=True)
    return argv, expected


def parse_live(argv):
    p = argparse.ArgumentParser()
    live_cli.add_arguments(p)
    return p.parse_args(argv)


def test_every_option_has_a_flag_and_each_flag_changes_its_field(every_flag):
    argv, expected = every_flag
    default = LiveOptions()
    changed = {f.name for f in fields(LiveOptions) if getattr(expected, f.name) != getattr(default, f.name)}
    # --port and --virtual exclude each other: --port is checked on its own
    assert changed | NOT_FLAGS | {"port"} >= {f.name for f in fields(LiveOptions)}, "a LiveOptions field no flag sets"
    assert options_from_args(parse_live(argv)) == expected
    with_port = [a for a in argv if a not in ("--virtual", "mine")] + ["--port", "synth"]
    assert options_from_args(parse_live(with_port)) == replace(expected, port="synth", virtual="rtmirror")


@pytest.mark.parametrize("window", [False, True], ids=["console", "window"])
def test_every_live_flag_reaches_the_engine(monkeypatch, every_flag, window):
    argv, expected = every_flag
    seen = {}
    monkeypatch.setattr(live_cli, "gui_available", lambda: window)
    monkeypatch.setattr(live_cli, "run_console", lambda opts: seen.setdefault("console", opts) and 0)

    def fake_window(opts, **kw):
        seen["window"] = opts
        return 0
    monkeypatch.setattr(live_cli, "run_window", fake_window)
    assert live_cli.run(parse_live(argv + ["--no-gui"] * (not window))) == 0
    assert seen == {("window" if window else "console"): expected}


def test_window_engine_gets_the_options_it_was_opened_with(qapp_offscreen, every_flag, tmp_path):
    """The window's engine options are the LiveOptions it received, with only its pickers'
    choices (input, port, channel, model) in place; --record writes the take through the window."""
    from rtmirror.gui.window import GuiConfig, MainWindow

    _, expected = every_flag
    opts = replace(expected, model=None, cc_map=None, midi_api=None, no_port=True, input=None,
                   print_midi=False, controls_csv=None, sample_rate=None, input_channel=None)
    win = MainWindow(GuiConfig(live=opts, autostart=False))
    try:
        got = win._live_options()
        for f in fields(LiveOptions):
            if f.name == "model":
                assert got.model == str(win.runtime.path)
            elif f.name not in ("realtime", "no_port"):
                assert getattr(got, f.name) == getattr(opts, f.name), f.name
        engine = build_engine(got, on_message=lambda m: None)
        assert engine.options is got
        assert engine.midi.encoder.cc_in_silence is True    # --cc-in-silence reaches the MIDI encoder
        engine.midi.close(0.0)
        assert win.start()
        win.engine.join(15.0)
    finally:
        win.stop()
        win.close()
    assert os.path.isfile(opts.record), "--record wrote nothing through the window"
    assert mido.MidiFile(opts.record).length > 0


@pytest.fixture
def qapp_offscreen(monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    pytest.importorskip("PyQt6")
    from rtmirror.gui.app import make_app
    return make_app()


def test_model_is_played_with_its_own_rules_unless_a_flag_overrides():
    runtime = EncoderRuntime()
    rules = runtime.performer_rules
    assert rules is not None, "the shipped manifest carries no Performer rules"
    assert PerformerConfig.from_dict(rules) == PerformerConfig.from_dict(runtime.manifest["performer"])
    cfg, said = performer_config(runtime, CCMap.load(None))
    assert cfg.onset_settle_frames == rules["onset_settle_frames"]
    assert said.startswith("the model's own")
    cfg, said = performer_config(runtime, CCMap.load(None), settle_frames=rules["onset_settle_frames"] + 2)
    assert cfg.onset_settle_frames == rules["onset_settle_frames"] + 2 and "overridden" in said
    delay = runtime.manifest["delay"]
    assert delay["lookahead_frames"] == runtime.lookahead
    assert delay["total_ms"] == pytest.approx((runtime.lookahead + rules["onset_settle_frames"]) * 1000 / runtime.frame_rate)


def test_a_model_without_rules_gets_the_defaults_and_says_so(tmp_path):
    from rtmirror.testing.probe import write_probe_model

    runtime = EncoderRuntime(write_probe_model(tmp_path / "probe.onnx"))
    assert runtime.performer_rules is None
    cfg, said = performer_config(runtime, CCMap.load(None))
    assert cfg == replace(PerformerConfig(), bend_range=CCMap.load(None).bend_range)
    assert "defaults" in said


def test_manifest_rules_and_delay_are_validated():
    import json

    from rtmirror.manifest import ModelError, validate_manifest
    from rtmirror.runtime import default_model_path

    m = json.loads(default_model_path().with_suffix(".json").read_text())
    validate_manifest(m)
    for bad in ({"performer": {**m["performer"], "gate_onn": 0.5}},
                {"delay": {**m["delay"], "settle_frames": m["delay"]["settle_frames"] + 1}},
                {"delay": {**m["delay"], "total_ms": m["delay"]["total_ms"] + 8}},
                {"delay": {**m["delay"], "lookahead_frames": m["lookahead"] + 1}}):
        with pytest.raises(ModelError):
            validate_manifest({**m, **bad})


def test_update_manifest_changes_the_rules_not_the_graph(tmp_path):
    pytest.importorskip("onnx")
    import shutil

    from rtmirror.export.onnx_export import update_manifest
    from rtmirror.manifest import model_delay
    from rtmirror.runtime import default_model_path

    src = default_model_path()
    for name in (src.name, src.with_suffix(".json").name, src.name.replace(".onnx", ".full.onnx")):
        shutil.copy(src.parent / name, tmp_path / name)
    model = tmp_path / src.name
    rules = replace(PerformerConfig(), onset_settle_frames=3)
    update_manifest(model, {"performer": rules.to_dict(), "delay": model_delay(2, rules, 125.0)})
    a, b = EncoderRuntime(src), EncoderRuntime(model)
    assert b.performer_rules["onset_settle_frames"] == 3
    x = np.random.default_rng(0).random((5, 128)).astype(np.float32)
    np.testing.assert_array_equal(a.step(x), b.step(x))
    np.testing.assert_array_equal(a.run_full(x), b.run_full(x))
