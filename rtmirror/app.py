"""The assembly layer: user options -> a ready Engine. `rtmirror live`, `rtmirror demo`, the window
(rtmirror.gui) and `rtmirror bench live` all build their engines here, from one `LiveOptions`.

    LiveOptions            every option of a live run (the CLI flags, one field each)
    options_from_args      argparse Namespace of `rtmirror live`/`gui` -> LiveOptions
    build_engine           LiveOptions -> runtime, MIDI outputs, audio source, Engine (not started)
    performer_config       the note rules: the model's own (its manifest) unless options override
    level_gate_config      the input-level floor under the model's gate

The window receives the LiveOptions object itself (no argv round trip); its pickers replace only
the fields they show (input, port, channel, model), so every other flag reaches its engine.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class LiveOptions:
    input: str | None = None          # audio input: index, name (substring) or None = default device
    wav: str | None = None            # play this file through the engine instead of a device
    realtime: bool = True             # with wav: at real-time pace (False: as fast as possible)
    sample_rate: int | None = None    # device rate (None: the device's default; the engine resamples)
    input_channel: int | None = None  # 0-based input channel (None: mono downmix)
    port: str | None = None           # connect to this MIDI port (index / name / substring)
    virtual: str = "rtmirror"         # else open a virtual port with this name
    channel: int = 1                  # MIDI channel 1..16
    model: str | None = None          # encoder .onnx (None: shipped default)
    cc_map: str | None = None         # CC map TOML (None: shipped default)
    record: str | None = None         # also write what is sent to this MIDI file
    controls_csv: str | None = None   # also write frame-level controls here
    midi_api: str | None = None       # alsa | jack | coremidi | winmm (None: RTMIRROR_MIDI_API / auto)
    no_port: bool = False             # no rtmidi port at all (file / printer only)
    print_midi: bool = False          # print every message sent
    stop_on_port_loss: bool = False
    max_backlog_s: float | None = 0.064
    record_all: bool = False          # engine keeps events, messages and input audio (tests)
    pitch_bend: bool = False          # send pitch bend for glides/vibrato (range: the CC map's bend_range)
    legato: bool = False              # retrigger as note-on before the old note-off (mono legato)
    gate_floor_dbfs: float = -75.0    # input level (before the AGC) under which no note plays
    settle_frames: int | None = None  # note-on wait for a settled pitch (None: the model's rule)
    duration_s: float | None = None   # stop after this many seconds (None: until stopped)
    key: str | None = None            # scale lock tonic (C, F#, Bb ...) or "auto"; None: off
    scale: str = "major"              # the scale of the lock (rtmirror.scale.MODES)
    cc_in_silence: bool = False       # knob CCs also while no note sounds (MidiEncoder.cc_in_silence)

    def __post_init__(self) -> None:
        if not (1 <= self.channel <= 16):
            raise ValueError(f"MIDI channel must be 1..16, got {self.channel}")
        if self.settle_frames is not None and self.settle_frames < 0:
            raise ValueError(f"--settle-frames must be >= 0, got {self.settle_frames}")
        if self.input_channel is not None and self.input_channel < 0:
            raise ValueError(f"--input-channel must be >= 1, got {self.input_channel + 1}")
        if self.duration_s is not None and not (self.duration_s > 0 and math.isfinite(self.duration_s)):
            raise ValueError(f"--duration must be a positive number of seconds, got {self.duration_s}")
        scale_lock(self)                  # a bad --key / --scale is refused here
        if not math.isfinite(self.gate_floor_dbfs):
            raise ValueError(f"--gate-floor must be a finite level in dBFS, got {self.gate_floor_dbfs}")


def options_from_args(args, **override) -> LiveOptions:
    """`rtmirror live` (or `gui`) arguments -> LiveOptions; `override` sets fields directly."""
    ch = getattr(args, "input_channel", None)
    wav = getattr(args, "wav", None)
    opts = LiveOptions(
        max_backlog_s=0.5 if wav else LiveOptions.max_backlog_s,   # a file waits for nobody
        input=getattr(args, "input", None), wav=wav,
        sample_rate=getattr(args, "sample_rate", None), input_channel=None if ch is None else ch - 1,
        port=getattr(args, "port", None), virtual=getattr(args, "virtual", None) or "rtmirror",
        channel=getattr(args, "channel", 1), model=getattr(args, "model", None),
        cc_map=getattr(args, "cc_map", None), record=getattr(args, "record", None),
        controls_csv=getattr(args, "controls", None), midi_api=getattr(args, "midi_api", None),
        no_port=getattr(args, "no_midi", False),
        print_midi=getattr(args, "print_midi", False),
        stop_on_port_loss=getattr(args, "stop_on_port_loss", False),
        pitch_bend=getattr(args, "pitch_bend", False), legato=getattr(args, "legato", False),
        gate_floor_dbfs=getattr(args, "gate_floor", -75.0), settle_frames=getattr(args, "settle_frames", None),
        duration_s=getattr(args, "duration", None), key=getattr(args, "key", None),
        scale=getattr(args, "scale", None) or "major", cc_in_silence=getattr(args, "cc_in_silence", False))
    return replace(opts, **override) if override else opts


OPTION_NAMES = tuple(f.name for f in fields(LiveOptions))


def build_engine(opts: LiveOptions, on_message=None, snapshot=None):
    """Assemble runtime, MIDI outputs, audio source and Engine (not started).

    Raises ModelError / ValueError / LookupError / RuntimeError with a user-facing message.
    When no MIDI API is usable the engine still runs (file / printer outputs) and says so.
    """
    from rtmirror.engine import Engine, EngineConfig
    from rtmirror.midi import (ControlsCsv, MessagePrinter, MidiEncoder, MidiFileRecorder, MidiOut,
                               PortOutput, api_label, choose_api)
    from rtmirror.midi.ccmap import CCMap
    from rtmirror.runtime import EncoderRuntime

    say = on_message or (lambda m: print(m, file=sys.stderr))
    runtime = EncoderRuntime(opts.model)
    cc_map = CCMap.load(opts.cc_map)
    encoder = MidiEncoder(runtime.space, cc_map, opts.channel - 1, cc_in_silence=opts.cc_in_silence)
    perf_cfg, rules = performer_config(runtime, cc_map, pitch_bend=opts.pitch_bend, legato=opts.legato,
                                       settle_frames=opts.settle_frames)
    # The audio source first (device lookup, file read): an input that cannot be found opens
    # no MIDI port. Whatever fails after that closes everything opened so far.
    source = make_source(opts)
    outputs = []
    port_desc = "no MIDI port"
    midi_out_periods = 0.0
    try:
        if not opts.no_port:
            api = choose_api(opts.midi_api)
            if api is None:
                say("no MIDI API usable here (no ALSA sequencer at /dev/snd/seq, no JACK server running): "
                    "MIDI goes only to the file/printer")
            else:
                port = PortOutput(api, port=opts.port, virtual=None if opts.port else opts.virtual)
                outputs.append(port)
                midi_out_periods = MIDI_OUT_PERIODS.get(api_label(api), 0.0)
                kind = "connected to" if opts.port else "virtual port"
                port_desc = f"{kind} {port.name!r} ({api_label(api)})"
        if opts.print_midi:
            outputs.append(MessagePrinter(runtime.space, encoder.assignments))
        if opts.record:
            outputs.append(MidiFileRecorder(opts.record))
        midi = MidiOut(encoder, outputs)
        csv = ControlsCsv(opts.controls_csv, runtime.space.names) if opts.controls_csv else None
        cfg = EngineConfig(max_backlog_s=opts.max_backlog_s if opts.realtime else None,
                           stop_on_port_loss=opts.stop_on_port_loss, record=opts.record_all)
        engine = Engine(runtime, source, midi, cfg=cfg, csv=csv, snapshot=snapshot, on_message=say,
                        performer_cfg=perf_cfg, level_gate=level_gate_config(opts.gate_floor_dbfs),
                        scale_lock=scale_lock(opts, cc_map.bend_range), midi_out_periods=midi_out_periods)
    except BaseException:
        for o in outputs:          # nothing was sent; close the port, write no file
            if not isinstance(o, MidiFileRecorder):
                try:
                    o.close()
                except Exception:
                    pass
        try:
            source.stop()
        except Exception:
            pass
        raise
    engine.options = opts
    engine.performer_rules = rules
    engine.description = (f"{getattr(source, 'device_name', opts.wav)} @ {source.sample_rate} Hz -> "
                          f"{port_desc}, channel {opts.channel}, model {runtime.path.name} "
                          f"({len(runtime.space)} controls, lookahead {runtime.lookahead}); "
                          f"note rules: {rules}"
                          + (f"; scale lock {engine.pipeline.scale_lock.name}" if engine.pipeline.scale_lock else ""))
    return engine


# The MIDI system's mean wait before a sent message leaves, in audio periods: RtMidi's JACK port
# writes what was sent at the start of the server's next cycle (measured through a JACK dummy
# server, docs/bench/live.md); the ALSA sequencer delivers at once.
MIDI_OUT_PERIODS = {"jack": 0.5}


def performer_config(runtime, cc_map, *, pitch_bend: bool = False, legato: bool = False,
                     settle_frames: int | None = None):
    """The Performer's note rules for a model -> (PerformerConfig, a one-line account of them).

    A model is played with the rules it was trained with (its manifest's `performer`); a model
    exported before manifests carried them gets today's defaults, and the account says so. The
    flags override single rules: pitch bend and legato are the user's choice, the bend range is
    the CC map's (the synth's setting), and settle_frames is the note-on's longest wait for a
    settled pitch (0: play at once, the lowest latency, and the pitch counts as settled at once).
    """
    from rtmirror.performer import PerformerConfig

    trained = runtime.performer_rules          # dict or None
    base = PerformerConfig.from_dict(trained) if trained else PerformerConfig()
    changes = {"pitch_bend": bool(pitch_bend), "legato": bool(legato), "bend_range": float(cc_map.bend_range)}
    overridden = []
    if settle_frames is not None:
        if settle_frames < 0:
            raise ValueError(f"--settle-frames must be >= 0, got {settle_frames}")
        changes["onset_settle_frames"] = int(settle_frames)
        if settle_frames == 0:
            changes["pitch_stable_frames"] = 1
        overridden = [k for k in ("onset_settle_frames", "pitch_stable_frames")
                      if k in changes and changes[k] != getattr(base, k)]
    cfg = replace(base, **changes)
    if trained:
        rules = "the model's own" + (f", overridden by flags: {', '.join(overridden)}" if overridden else "")
    else:
        rules = "rtmirror's defaults (the model's manifest carries no Performer rules)"
    return cfg, rules


def scale_lock(opts, bend_range: float = 2.0):
    """The key/scale lock of these options (rtmirror.scale.ScaleLock), or None when off."""
    from rtmirror.scale import Scale, ScaleLock

    if opts.key is None:
        return None
    return ScaleLock("auto" if opts.key == "auto" else Scale.parse(opts.key, opts.scale), bend_range)


def level_gate_config(floor_dbfs: float):
    """The gate floor: opens above floor_dbfs (and 12 dB above the tracked noise floor), closes
    6 dB lower (rtmirror/level_gate.py)."""
    from rtmirror.level_gate import LevelGateConfig

    return LevelGateConfig(open_dbfs=floor_dbfs, close_dbfs=floor_dbfs - 6.0)


def make_source(opts: LiveOptions):
    from rtmirror.audio_io import FileInput, MicInput
    if opts.wav:
        return FileInput.from_file(opts.wav, opts.sample_rate, realtime=opts.realtime)
    return MicInput(opts.input, opts.sample_rate, opts.input_channel)
