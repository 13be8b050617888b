"""MIDI out: Performer events -> note/CC/pitch-bend messages -> rtmidi port, MIDI file, printer.

`MidiEncoder` owns the MIDI state (sounding notes, last CC values) and turns events into raw
messages with their stream times; outputs (`PortOutput`, `MidiFileRecorder`, `MessagePrinter`)
only deliver them. `MidiOut` ties one encoder to any number of outputs and is what the engine
talks to. Rules the encoder keeps (issue 6):
  * every note-on gets its note-off: a note-on for a sounding note closes it first, a note-off
    for a silent note is dropped, and `close()` / `panic()` close whatever still sounds;
  * panic = note-offs for sounding notes + All Notes Off (CC 123);
  * CCs only on a change >= threshold, at most max_rate_hz per controller (the newest value
    wins: a held-back value goes out when the cap allows, and at the latest on close, before
    the note-offs); timing uses stream time, so a file
    and a port get the same messages;
  * latched (envelope) controls go out immediately, before the note-on they shape (the
    Performer emits them just before it; the rate cap does not delay them).
The CSV controls sink (frame-level values) lives here too.
"""
from __future__ import annotations

import csv
import math
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from rtmirror.midi.ccmap import CCMap
from rtmirror.controls import ControlSpace
from rtmirror.events import CONTROL, NOTE_OFF, NOTE_ON, PITCH_BEND, Event

NOTE_OFF_STATUS = 0x80
NOTE_ON_STATUS = 0x90
CC_STATUS = 0xB0
PITCH_BEND_STATUS = 0xE0
CC_ALL_NOTES_OFF = 123

Message = tuple[float, tuple[int, ...]]  # (stream time s, raw MIDI bytes)


# -- API choice -------------------------------------------------------------------------------
def _rtmidi():
    import rtmidi
    return rtmidi


def api_names() -> dict[str, int]:
    rt = _rtmidi()
    return {"alsa": rt.API_LINUX_ALSA, "jack": rt.API_UNIX_JACK,
            "coremidi": rt.API_MACOSX_CORE, "winmm": rt.API_WINDOWS_MM}


@contextmanager
def _quiet_stderr():
    """Silence C-level stderr (libjack prints several lines when no server runs)."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def _api_usable(api: int) -> bool:
    rt = _rtmidi()
    if api not in rt.get_compiled_api():
        return False
    try:
        with _quiet_stderr():
            out = rt.MidiOut(api, name="rtmirror-probe")
        del out
        return True
    except Exception:
        return False


def choose_api(name: str | None = None) -> int | None:
    """The rtmidi API to use: `name` ("alsa" | "jack" | "coremidi" | "winmm"), else the env var
    RTMIRROR_MIDI_API, else the platform default. On Linux that is ALSA where /dev/snd/seq
    exists, else JACK where a server runs (rtmidi's own default picks ALSA and fails on
    machines without it). Returns None when no MIDI API is usable; raises on an unknown or
    unusable explicit choice."""
    name = name or os.environ.get("RTMIRROR_MIDI_API") or None
    names = api_names()
    if name is not None:
        key = name.strip().lower()
        if key not in names:
            raise ValueError(f"unknown MIDI API {name!r}; choose from {', '.join(names)}")
        if not _api_usable(names[key]):
            hint = " (is a JACK server running?)" if key == "jack" else ""
            raise RuntimeError(f"MIDI API {key!r} is not usable on this machine{hint}")
        return names[key]
    if sys.platform.startswith("linux"):
        if os.path.exists("/dev/snd/seq") and _api_usable(names["alsa"]):
            return names["alsa"]
        if _api_usable(names["jack"]):
            return names["jack"]
        return None
    if sys.platform == "darwin":
        return names["coremidi"] if _api_usable(names["coremidi"]) else None
    if sys.platform.startswith("win"):
        return names["winmm"] if _api_usable(names["winmm"]) else None
    return None


def api_label(api: int | None) -> str:
    for k, v in api_names().items():
        if v == api:
            return k
    return "none"


def list_output_ports(api: int) -> list[str]:
    """Names of the MIDI input ports we could send to (rtmidi's output-side listing)."""
    out = _rtmidi().MidiOut(api, name="rtmirror-list")
    try:
        return list(out.get_ports())
    finally:
        del out


def find_port(ports: list[str], spec: str) -> int:
    """Index of a port: an integer index, an exact name, or a unique case-insensitive substring."""
    if spec.isdigit() and int(spec) < len(ports):
        return int(spec)
    if spec in ports:
        return ports.index(spec)
    hits = [i for i, p in enumerate(ports) if spec.lower() in p.lower()]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise LookupError(f"no MIDI port matches {spec!r}; ports: {ports or 'none'}")
    raise LookupError(f"MIDI port {spec!r} is ambiguous: {[ports[i] for i in hits]}")


# -- events -> messages ------------------------------------------------------------------------
class MidiEncoder:
    """Stateful Performer-events -> raw MIDI messages on one channel (0..15)."""

    def __init__(self, space: ControlSpace, cc_map: CCMap | None = None, channel: int = 0):
        if not (0 <= channel <= 15):
            raise ValueError(f"MIDI channel must be 0..15 (shown as 1..16), got {channel}")
        self.space = space
        self.cc_map = cc_map or CCMap.load()
        self.channel = channel
        self.assignments = self.cc_map.for_space(space)           # per control, model order
        self._index = {c.name: i for i, c in enumerate(space.controls)}
        self._latch = [c.latch for c in space.controls]
        k = len(space)
        self._last_value = np.full(k, np.nan)       # normalized value last sent
        self._last_wire = np.full(k, -1, np.int64)  # quantized value last sent
        self._last_time = np.full(k, -np.inf)       # stream time of the last send
        self._pending = np.full(k, np.nan)          # value held back by the rate cap
        self._last_bend = 8192
        self.sounding: dict[int, float] = {}        # note -> note-on time

    # one message each
    def _cc(self, i: int, value: float, t: float) -> list[Message]:
        a = self.assignments[i]
        wire = int(round(min(max(value, 0.0), 1.0) * a.steps))
        self._last_value[i], self._pending[i] = value, np.nan
        if wire == self._last_wire[i]:
            return []
        self._last_wire[i], self._last_time[i] = wire, t
        st = CC_STATUS | self.channel
        if a.hires:
            return [(t, (st, a.cc, wire >> 7)), (t, (st, a.lsb_cc, wire & 0x7F))]
        return [(t, (st, a.cc, wire))]

    def _note_off(self, note: int, t: float) -> list[Message]:
        self.sounding.pop(note, None)
        return [(t, (NOTE_OFF_STATUS | self.channel, note, 0))]

    def encode(self, events: list[Event]) -> list[Message]:
        """Events in time order (rtmirror.events.sorted_events) -> messages."""
        out: list[Message] = []
        for ev in events:
            t = float(ev.time)
            if ev.kind == NOTE_ON:
                note = int(min(max(ev.note, 0), 127))
                if note in self.sounding:          # retrigger: close the old one first
                    out += self._note_off(note, t)
                vel = int(min(max(ev.velocity, 1), 127))
                self.sounding[note] = t
                out.append((t, (NOTE_ON_STATUS | self.channel, note, vel)))
            elif ev.kind == NOTE_OFF:
                note = int(min(max(ev.note, 0), 127))
                if note in self.sounding:
                    out += self._note_off(note, t)
            elif ev.kind == CONTROL:
                i = self._index.get(ev.name)
                if i is None or self.assignments[i] is None or not math.isfinite(ev.value):
                    continue
                v = float(min(max(ev.value, 0.0), 1.0))
                a = self.assignments[i]
                if self._latch[i]:
                    out += self._cc(i, v, t)       # before the note-on; never rate-capped
                elif not (abs(v - self._last_value[i]) >= a.threshold or math.isnan(self._last_value[i])):
                    self._pending[i] = np.nan      # back within threshold of what the synth has
                elif t - self._last_time[i] >= 1.0 / a.max_rate_hz - 1e-9:
                    out += self._cc(i, v, t)
                else:
                    self._pending[i] = v           # newest value wins, sent by tick()
            elif ev.kind == PITCH_BEND:
                if not math.isfinite(ev.value):
                    continue
                x = ev.value / self.cc_map.bend_range
                wire = int(min(max(round(8192 + x * 8192), 0), 16383))
                if wire != self._last_bend:
                    self._last_bend = wire
                    out.append((t, (PITCH_BEND_STATUS | self.channel, wire & 0x7F, wire >> 7)))
        return out

    def tick(self, t: float) -> list[Message]:
        """Send values the rate cap held back, once their controller may send again."""
        out: list[Message] = []
        for i in np.flatnonzero(~np.isnan(self._pending)):
            a = self.assignments[i]
            if t - self._last_time[i] >= 1.0 / a.max_rate_hz - 1e-9:
                out += self._cc(int(i), float(self._pending[i]), t)
        return out

    def flush_pending(self, t: float) -> list[Message]:
        """Send every value the rate cap still holds back, now (stream is ending): the synth
        must end on the final control values, not on the last ones the cap let through."""
        out: list[Message] = []
        for i in np.flatnonzero(~np.isnan(self._pending)):
            out += self._cc(int(i), float(self._pending[i]), t)
        return out

    def close_notes(self, t: float) -> list[Message]:
        out: list[Message] = []
        for note in sorted(self.sounding):
            out += self._note_off(note, t)
        return out

    def panic(self, t: float) -> list[Message]:
        """Note-offs for every sounding note, then All Notes Off."""
        return self.close_notes(t) + [(t, (CC_STATUS | self.channel, CC_ALL_NOTES_OFF, 0))]


# -- outputs -----------------------------------------------------------------------------------
class PortOutput:
    """An rtmidi output: a virtual port others connect to, or a connection to an existing port.

    `check()` (called by the engine about twice a second) notices a connected port that vanished
    and reconnects when it comes back; `lost` tells the engine.
    """

    def __init__(self, api: int, port: str | None = None, virtual: str | None = None,
                 client_name: str = "rtmirror"):
        rt = _rtmidi()
        self.api = api
        self.target = port
        self._out = rt.MidiOut(api, name=client_name)
        self.lost = False
        if port is None:
            self.name = virtual or "rtmirror"
            self._out.open_virtual_port(self.name)
        else:
            ports = self._out.get_ports()
            i = find_port(ports, port)
            self.name = ports[i]
            self._out.open_port(i, "out")

    def send(self, t: float, msg: tuple[int, ...]) -> None:
        if not self.lost:
            self._out.send_message(msg)

    def check(self) -> str | None:
        """Returns a message when the connected port disappeared or came back, else None."""
        if self.target is None:
            return None
        try:
            ports = self._out.get_ports()
        except Exception as exc:  # the MIDI system itself went away
            if not self.lost:
                self.lost = True
                return f"MIDI system error: {exc}"
            return None
        present = self.name in ports
        if self.lost:
            # The port may come back under another client name (JACK appends -01): match the
            # user's original spec again.
            try:
                i = find_port(ports, self.target) if not present else ports.index(self.name)
                self._out.close_port()
                self._out.open_port(i, "out")
            except Exception:
                return None
            self.name, self.lost = ports[i], False
            return f"MIDI port {self.name!r} is back; reconnected"
        if not present:
            self.lost = True
            return f"MIDI port {self.name!r} disappeared"
        return None

    def close(self) -> None:
        # rtmidi's JACK backend hands messages to the next process cycle: closing the port at
        # once can lose or garble the last ones (the All Notes Off). Give it a few periods.
        time.sleep(0.05)
        try:
            self._out.close_port()
        finally:
            del self._out


class MidiFileRecorder:
    """Collects messages with their stream times; `close()` writes a type-0 standard MIDI file.

    Tempo 120 BPM (500000 us per beat, written as a set_tempo meta event) and 960 ticks per
    beat: one tick = 1/1920 s, so 8 ms frames land on whole ticks (15.36 ticks: within 0.3 ms).
    """

    def __init__(self, path: str | Path, ticks_per_beat: int = 960, tempo_us: int = 500_000):
        self.path = Path(path)
        self.ticks_per_beat = ticks_per_beat
        self.tempo_us = tempo_us
        self.messages: list[Message] = []

    def send(self, t: float, msg: tuple[int, ...]) -> None:
        self.messages.append((max(0.0, t), msg))

    def ticks(self, t: float) -> int:
        return int(round(t * 1e6 / self.tempo_us * self.ticks_per_beat))

    def close(self) -> None:
        import mido
        mid = mido.MidiFile(type=0, ticks_per_beat=self.ticks_per_beat)
        track = mido.MidiTrack()
        mid.tracks.append(track)
        track.append(mido.MetaMessage("set_tempo", tempo=self.tempo_us, time=0))
        track.append(mido.MetaMessage("track_name", name="rtmirror", time=0))
        now = 0
        # Stable sort on time only: messages of one instant keep their send order.
        for t, msg in sorted(self.messages, key=lambda m: m[0]):
            tick = self.ticks(t)
            track.append(mido.Message.from_bytes(list(msg), time=tick - now))
            now = tick
        track.append(mido.MetaMessage("end_of_track", time=0))
        _atomic_write(self.path, lambda f: mid.save(file=f))


class MessagePrinter:
    """Prints each message as a readable line (the demo shows what it sends)."""

    def __init__(self, space: ControlSpace, assignments, stream=None):
        self.stream = stream or sys.stdout
        self._cc_names = {}
        for a in assignments:
            if a is not None:
                self._cc_names[a.cc] = a.name
                if a.hires:
                    self._cc_names[a.lsb_cc] = a.name + " (LSB)"
        self._cc_names[CC_ALL_NOTES_OFF] = "All Notes Off"

    def send(self, t: float, msg: tuple[int, ...]) -> None:
        print(f"{t:8.3f}s  {describe(msg, self._cc_names)}", file=self.stream, flush=True)

    def close(self) -> None:
        pass


_NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def note_name(note: int) -> str:
    return f"{_NOTE_NAMES[note % 12]}{note // 12 - 1}"


def describe(msg: tuple[int, ...], cc_names: dict | None = None) -> str:
    status, ch = msg[0] & 0xF0, (msg[0] & 0x0F) + 1
    if status == NOTE_ON_STATUS and msg[2] > 0:
        return f"ch{ch} note-on  {note_name(msg[1]):4s} ({msg[1]}) vel {msg[2]}"
    if status in (NOTE_OFF_STATUS, NOTE_ON_STATUS):
        return f"ch{ch} note-off {note_name(msg[1]):4s} ({msg[1]})"
    if status == CC_STATUS:
        label = (cc_names or {}).get(msg[1], "")
        return f"ch{ch} CC {msg[1]:3d} = {msg[2]:3d}  {label}"
    if status == PITCH_BEND_STATUS:
        return f"ch{ch} pitch bend {(msg[2] << 7 | msg[1]) - 8192:+d}"
    return f"raw {list(msg)}"


class MidiOut:
    """The engine's MIDI sink: one encoder, many outputs, message counts.

    An output that raises is reported in `errors` and skipped from then on, so a broken port
    never stops the file recording (and never leaves the other outputs with a stuck note)."""

    def __init__(self, encoder: MidiEncoder, outputs: list):
        self.encoder = encoder
        self.outputs = list(outputs)
        self.sent = 0                 # messages delivered (to the first output that took them)
        self.errors: list[str] = []
        self._broken: set[int] = set()
        self._closed = False

    def _deliver(self, msgs: list[Message]) -> list[Message]:
        for j, o in enumerate(self.outputs):
            if j in self._broken:
                continue
            for t, m in msgs:
                try:
                    o.send(t, m)
                except Exception as exc:
                    self._broken.add(j)
                    self.errors.append(f"MIDI output {type(o).__name__} failed: {exc}")
                    break
        self.sent += len(msgs)
        return msgs

    def send(self, events: list[Event], t: float) -> list[Message]:
        """Encode and deliver the events of one frame/block, then due rate-capped CCs at t."""
        msgs = self.encoder.encode(events)
        msgs += self.encoder.tick(t)
        return self._deliver(msgs)

    def send_frames(self, events: list[Event], frame_times) -> list[Message]:
        """Events of a block (time order) and its frame times: encode frame by frame and tick the
        rate cap at every frame, so the messages do not depend on how audio was blocked."""
        enc, msgs, j = self.encoder, [], 0
        for t in frame_times:
            k = j
            while k < len(events) and events[k].time <= t + 1e-9:
                k += 1
            msgs += enc.encode(events[j:k])
            msgs += enc.tick(float(t))
            j = k
        msgs += enc.encode(events[j:])
        return self._deliver(msgs)

    def panic(self, t: float) -> list[Message]:
        return self._deliver(self.encoder.panic(t))

    def close(self, t: float) -> list[Message]:
        """Held-back CC values, then sounding notes closed + All Notes Off, then close every
        output (writes files)."""
        if self._closed:
            return []
        self._closed = True
        msgs = self._deliver(self.encoder.flush_pending(t)) + self.panic(t)
        for o in self.outputs:
            try:
                o.close()
            except Exception as exc:
                self.errors.append(f"closing {type(o).__name__} failed: {exc}")
        return msgs


# -- frame-level controls CSV -----------------------------------------------------------------
class ControlsCsv:
    """time + one column per control (normalized [0, 1]), one row per frame; atomic on close."""

    def __init__(self, path: str | Path, names: list[str]):
        self.path = Path(path)
        self.names = list(names)
        self._rows: list[np.ndarray] = []
        self._times: list[np.ndarray] = []

    def write(self, times: np.ndarray, frames: np.ndarray) -> None:
        """times (n,), frames (n, K)."""
        if len(frames):
            self._times.append(np.asarray(times, np.float64).copy())
            self._rows.append(np.asarray(frames, np.float32).copy())

    def close(self) -> None:
        times = np.concatenate(self._times) if self._times else np.zeros(0)
        rows = np.concatenate(self._rows) if self._rows else np.zeros((0, len(self.names)), np.float32)

        def write(f):
            w = csv.writer(f)
            w.writerow(["time_s"] + self.names)
            for t, r in zip(times, rows):
                w.writerow([f"{t:.4f}"] + [f"{x:.5f}" for x in r])

        _atomic_write(self.path, write, text=True)


def _atomic_write(path: Path, write, text: bool = False) -> None:
    """write(file) into a temp file next to path, then os.replace: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w" if text else "wb", **({"newline": ""} if text else {})) as f:
            write(f)
        os.chmod(tmp, 0o644)          # mkstemp makes 0600; output files are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
