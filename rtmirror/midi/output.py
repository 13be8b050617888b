"""MIDI out: Performer events -> note/CC/pitch-bend messages -> rtmidi port, MIDI file, printer.

`MidiEncoder` owns the MIDI state (sounding notes, last CC values) and turns events into raw
messages with their stream times; outputs (`PortOutput`, `MidiFileRecorder`, `MessagePrinter`)
only deliver them. `MidiOut` ties one encoder to any number of outputs and is what the engine
talks to. Rules the encoder keeps:
  * every note-on gets its note-off: a note-on for a sounding note closes it first, a note-off
    for a silent note is dropped, and `close()` / `panic()` close whatever still sounds;
  * panic = note-offs for sounding notes + All Notes Off (CC 123);
  * CCs only on a change >= threshold, at most max_rate_hz per controller (the newest value
    wins: a held-back value goes out when the cap allows, and at the latest on close, before
    the note-offs); timing uses stream time, so a file
    and a port get the same messages;
  * latched (envelope) controls go out immediately, before the note-on they shape (the
    Performer emits them just before it; the rate cap does not delay them);
  * no CCs while nothing sounds (unless `cc_in_silence`): once no note has sounded for
    `release_s` (the synth's release tail), knob changes are held and go out, newest value
    first, right before the next note-on, so the synth plays it with the current timbre.
    Controls the user holds (`forced`, e.g. a knob held in the window) always go out.
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

    def __init__(self, space: ControlSpace, cc_map: CCMap | None = None, channel: int = 0,
                 cc_in_silence: bool = False, release_s: float = 0.5):
        if not (0 <= channel <= 15):
            raise ValueError(f"MIDI channel must be 0..15 (shown as 1..16), got {channel}")
        if not (math.isfinite(release_s) and 0.0 <= release_s <= 60.0):
            raise ValueError(f"release_s must be 0..60 seconds, got {release_s}")
        self.cc_in_silence = bool(cc_in_silence)
        self.release_s = float(release_s)          # CCs keep flowing this long after the last note-off
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
        self._pending = np.full(k, np.nan)          # value held back by the rate cap or by silence
        self.forced = np.zeros(k, bool)             # (K,) controls sent even in silence (user holds)
        self._last_bend = 8192
        self.sounding: dict[int, float] = {}        # note -> note-on time
        self._silent_since = -math.inf              # stream time the last note ended (-inf: none yet)

    def quiet(self, t: float) -> bool:
        """Nothing sounds at stream time t, and the last note's release tail is over."""
        return not self.sounding and t - self._silent_since >= self.release_s - 1e-9

    def _holds_back(self, i: int, t: float) -> bool:
        return not self.cc_in_silence and not self.forced[i] and self.quiet(t)

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
        if not self.sounding:
            self._silent_since = t
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
                # Knob values held back (silence, rate cap) reach the synth before the note.
                for i in np.flatnonzero(~np.isnan(self._pending)):
                    out += self._cc(int(i), float(self._pending[i]), t)
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
                elif self._holds_back(i, t):
                    self._pending[i] = v           # nothing sounds: sent before the next note-on
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
            if self._holds_back(int(i), t):
                continue
            if t - self._last_time[i] >= 1.0 / a.max_rate_hz - 1e-9:
                out += self._cc(int(i), float(self._pending[i]), t)
        return out

    def flush_pending(self, t: float) -> list[Message]:
        """Send every value the rate cap still holds back, now (stream is ending): the synth
        must end on the final control values, not on the last ones the cap let through. Values
        held back by silence stay unsent (nothing sounds that they would shape)."""
        out: list[Message] = []
        for i in np.flatnonzero(~np.isnan(self._pending)):
            if self._holds_back(int(i), t):
                continue
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
class JackWatch:
    """Tells when the JACK server went away: a client of our own (no ports, never activated) with
    libjack's shutdown callback (rtmidi's JACK backend registers none, and its port listing of a
    dead server is just empty). `gone` is set from libjack's thread; the owner polls it."""

    def __init__(self, name: str = "rtmirror-watch"):
        import ctypes
        import ctypes.util
        self.gone = False
        self._client = None
        lib = ctypes.CDLL(ctypes.util.find_library("jack") or "libjack.so.0")
        lib.jack_client_open.restype = ctypes.c_void_p
        lib.jack_client_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
        lib.jack_client_close.argtypes = [ctypes.c_void_p]
        shutdown = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
        lib.jack_on_shutdown.argtypes = [ctypes.c_void_p, shutdown, ctypes.c_void_p]
        status = ctypes.c_int(0)
        with _quiet_stderr():
            client = lib.jack_client_open(name.encode(), 0x01, ctypes.byref(status))   # JackNoStartServer
        if not client:
            raise RuntimeError(f"JACK watch client could not open (status {status.value:#x})")
        self._lib, self._client = lib, ctypes.c_void_p(client)
        self._callback = shutdown(self._on_shutdown)        # kept alive as long as the client
        lib.jack_on_shutdown(self._client, self._callback, None)
        names = ctypes.POINTER(ctypes.c_char_p)
        lib.jack_get_ports.restype = ctypes.c_void_p
        lib.jack_get_ports.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong]
        lib.jack_port_by_name.restype = ctypes.c_void_p
        lib.jack_port_by_name.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.jack_port_get_all_connections.restype = ctypes.c_void_p
        lib.jack_port_get_all_connections.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.jack_free.argtypes = [ctypes.c_void_p]
        self._names = names

    def _on_shutdown(self, arg) -> None:
        self.gone = True

    def _list(self, ptr) -> list[str]:
        import ctypes
        if not ptr:
            return []
        arr, out, i = ctypes.cast(ptr, self._names), [], 0
        while arr[i]:
            out.append(arr[i].decode(errors="replace"))
            i += 1
        self._lib.jack_free(ptr)
        return out

    def midi_outputs(self) -> set[str]:
        """Full names of every JACK MIDI output port."""
        if self.gone or self._client is None:
            return set()
        return set(self._list(self._lib.jack_get_ports(self._client, None, b"8 bit raw midi", 0x2)))

    def connections(self, port: str) -> int | None:
        """How many ports `port` is connected to (None: no such port / no server)."""
        if self.gone or self._client is None:
            return None
        p = self._lib.jack_port_by_name(self._client, port.encode())
        if not p:
            return None
        return len(self._list(self._lib.jack_port_get_all_connections(self._client, p)))

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and not self.gone:   # closing a client of a dead server can block
            _bounded(lambda: self._lib.jack_client_close(client), 2.0)


def _bounded(fn, timeout: float) -> bool:
    """Run fn in a daemon thread; False (and the thread left behind) when it did not return in
    `timeout` s. For library calls that can block forever on a dead server (JACK, PortAudio)."""
    import threading
    done = threading.Event()

    def run():
        try:
            fn()
        except Exception:
            pass
        finally:
            done.set()

    threading.Thread(target=run, name="rtmirror-bounded-close", daemon=True).start()
    return done.wait(timeout)


class PortOutput:
    """An rtmidi output: a virtual port others connect to, or a connection to an existing port.

    `check()` (called by the engine about twice a second) notices a connected port that vanished
    and reconnects when it comes back; `lost` tells the engine, and `fatal` that the MIDI system
    itself is gone (the JACK server stopped: the engine stops). No note the synth heard is left
    hanging: the port keeps the notes it delivered a note-on for and no note-off yet; when it
    reconnects it sends those note-offs + All Notes Off on their channels at once, and again one
    check later (JACK lists a connection before its graph carries it, so the first ones may be
    lost) on each channel that got no new note-on in between. On JACK, a virtual port's listeners
    are polled the same way: a synth that disconnected and connects again gets the note-offs it
    missed re-sent (`_check_listeners`).
    """

    def __init__(self, api: int, port: str | None = None, virtual: str | None = None,
                 client_name: str = "rtmirror"):
        rt = _rtmidi()
        self.api = api
        self.target = port
        self.lost = False
        self.fatal = False
        self.watch = None
        if api == rt.API_UNIX_JACK:
            try:
                self.watch = JackWatch(f"{client_name}-watch")
            except Exception:
                self.watch = None      # no server-death notice; everything else still works
        self._out = rt.MidiOut(api, name=client_name)
        self._sounding: set[tuple[int, int]] = set()   # (channel, note) delivered on, not yet off
        self._resend: set[tuple[int, int]] = set()     # closed at reconnect: sent again one check later
        self._fresh: set[int] = set()                  # channels with a note-on since the reconnect
        self.jack_port: str | None = None              # our virtual port's full JACK name
        self._listened: bool | None = None             # it had a connection at the last check (None: not checked)
        self._heard: set[tuple[int, int]] = set()      # sounding notes whose note-on went out with a listener
        self._recent_offs: set[tuple[int, int]] = set()  # heard notes closed since the last check
        self._missed: set[tuple[int, int]] = set()     # heard notes closed while nobody listened
        self._resend_offs_only = False
        try:
            if port is None:
                self.name = virtual or "rtmirror"
                before = self.watch.midi_outputs() if self.watch is not None else set()
                self._out.open_virtual_port(self.name)
                if self.watch is not None:
                    mine = self.watch.midi_outputs() - before
                    self.jack_port = mine.pop() if len(mine) == 1 else None
            else:
                ports = self._out.get_ports()
                i = find_port(ports, port)
                self.name = ports[i]
                self._out.open_port(i, "out")
        except BaseException:
            if self.watch is not None:
                self.watch.close()
            raise

    def send(self, t: float, msg: tuple[int, ...]) -> None:
        if self.lost:
            return
        self._out.send_message(msg)
        kind, ch = msg[0] & 0xF0, msg[0] & 0x0F
        if kind == NOTE_ON_STATUS and msg[2] > 0:
            self._sounding.add((ch, msg[1]))
            self._fresh.add(ch)
            self._missed.discard((ch, msg[1]))
            if self._listened:
                self._heard.add((ch, msg[1]))
        elif kind in (NOTE_ON_STATUS, NOTE_OFF_STATUS):
            if (ch, msg[1]) in self._heard:
                self._heard.discard((ch, msg[1]))
                (self._missed if self._listened is False else self._recent_offs).add((ch, msg[1]))
            self._sounding.discard((ch, msg[1]))
        elif kind == CC_STATUS and msg[1] == CC_ALL_NOTES_OFF:
            self._sounding = {s for s in self._sounding if s[0] != ch}

    def _close_notes(self, notes: set[tuple[int, int]]) -> None:
        """Note-offs for these (channel, note), then All Notes Off on each of their channels."""
        for ch, note in sorted(notes):
            self._out.send_message((NOTE_OFF_STATUS | ch, note, 0))
        for ch in sorted({ch for ch, _ in notes}):
            self._out.send_message((CC_STATUS | ch, CC_ALL_NOTES_OFF, 0))

    def check(self) -> str | None:
        """Returns a message when the connected port disappeared or came back, else None."""
        if self.watch is not None and self.watch.gone:
            if not self.fatal:
                self.lost = self.fatal = True
                return f"JACK server stopped: MIDI port {self.name!r} is gone"
            return None
        if self._resend and not self.lost:
            again = {(ch, n) for ch, n in self._resend if ch not in self._fresh}
            self._resend = set()
            try:
                if self._resend_offs_only:
                    for ch, note in sorted(again):
                        self._out.send_message((NOTE_OFF_STATUS | ch, note, 0))
                else:
                    self._close_notes(again)
            except Exception:
                pass
            self._resend_offs_only = False
        if self.target is None:
            return self._check_listeners()
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
            hanging, self._sounding, self._fresh = set(self._sounding), set(), set()
            if not hanging:
                return f"MIDI port {self.name!r} is back; reconnected"
            self._resend = hanging
            try:
                self._close_notes(hanging)
            except Exception:
                pass
            return (f"MIDI port {self.name!r} is back; reconnected and closed the {len(hanging)} note(s) "
                    f"it missed the note-off of (note-off + All Notes Off)")
        if not present:
            self.lost = True
            return f"MIDI port {self.name!r} disappeared"
        return None

    def _check_listeners(self) -> str | None:
        """Our virtual JACK port: a synth that disconnected (no connection left) and connects
        again gets the note-offs it missed in between, re-sent (polled: a gap shorter than one
        check, ~0.5 s, goes unseen)."""
        if self.jack_port is None:
            return None
        n = self.watch.connections(self.jack_port)
        if n is None:
            return None
        was, self._listened = self._listened, n > 0
        recent, self._recent_offs = self._recent_offs, set()
        if n == 0:
            if was:     # it went away since the last check: the note-offs since then may not have reached it
                self._missed |= recent
            self._missed |= self._heard    # nobody hears these end now
            self._heard = set()
            return None
        if was is False and self._missed:
            missed, self._missed = self._missed, set()
            try:
                for ch, note in sorted(missed):
                    self._out.send_message((NOTE_OFF_STATUS | ch, note, 0))
            except Exception:
                return None
            self._resend, self._resend_offs_only, self._fresh = missed, True, set()   # once more next check
            return f"MIDI port {self.name!r}: a listener connected again; re-sent {len(missed)} note-off(s) it missed"
        return None

    def close(self) -> None:
        # rtmidi's JACK backend hands messages to the next process cycle: closing the port at
        # once can lose or garble the last ones (the All Notes Off). Give it a few periods.
        # With the server gone, closing can block (libjack waits on a dead socket): bounded.
        out, self._out = self._out, None
        if out is None:
            return
        if not self.fatal:
            time.sleep(0.05)

        def close_port():
            out.close_port()
            out.delete()

        ok = _bounded(close_port, 3.0)
        if self.watch is not None:
            self.watch.close()
        if not ok:
            raise RuntimeError(f"MIDI port {self.name!r} did not close within 3 s (MIDI server gone?)")


class MidiFileRecorder:
    """Streams messages to a type-0 standard MIDI file as they come: a valid file on disk at every
    moment, at most `flush_s` behind the take (a crash, even SIGKILL, loses only that).

    Tempo 120 BPM (500000 us per beat, written as a set_tempo meta event) and 960 ticks per
    beat: one tick = 1/1920 s, so 8 ms frames land on whole ticks (15.36 ticks: within 0.3 ms).

    On disk: the header and an empty track are created in a temp file and renamed in (never a
    half-written file). Each flush appends the new events + End of Track after the old End of
    Track, then turns the old one into an empty text event (4 bytes, same size), then writes the
    track's new length: after each single write the file parses (the length covers complete
    events only). Only the unflushed messages are kept in memory. Times never go backwards
    (a message earlier than the last one written is written at the last one's time).
    """

    _EOT = b"\x00\xff\x2f\x00"
    _EMPTY_TEXT = b"\x00\xff\x01\x00"

    def __init__(self, path: str | Path, ticks_per_beat: int = 960, tempo_us: int = 500_000,
                 flush_s: float = 0.5):
        self.path = Path(path)
        self.ticks_per_beat = ticks_per_beat
        self.tempo_us = tempo_us
        self.flush_s = float(flush_s)
        self._pending: list[Message] = []
        self._f = None              # the open file (unbuffered), after the first flush
        self._track_len = 0         # bytes of track data on disk, End of Track included
        self._last_tick = 0
        self._last_flush = time.monotonic()
        self._closed = False
        self.written = 0            # messages on disk

    def send(self, t: float, msg: tuple[int, ...]) -> None:
        self._pending.append((max(0.0, t), msg))
        if time.monotonic() - self._last_flush >= self.flush_s:
            self.flush()

    def check(self) -> None:
        """The engine's periodic call (twice a second): write what waits even when nothing new
        is sent (a held note), and the empty take on the first call (the file is there from the
        start of a run, even while the input is silent)."""
        if self._f is None or (self._pending and time.monotonic() - self._last_flush >= self.flush_s):
            self.flush()

    def ticks(self, t: float) -> int:
        return int(round(t * 1e6 / self.tempo_us * self.ticks_per_beat))

    @staticmethod
    def _vlq(n: int) -> bytes:
        out = [n & 0x7F]
        n >>= 7
        while n:
            out.append(0x80 | (n & 0x7F))
            n >>= 7
        return bytes(reversed(out))

    def _open(self) -> None:
        import struct
        name = b"rtmirror"
        track = (b"\x00\xff\x51\x03" + self.tempo_us.to_bytes(3, "big")
                 + b"\x00\xff\x03" + bytes([len(name)]) + name + self._EOT)
        head = b"MThd" + struct.pack(">IHHH", 6, 0, 1, self.ticks_per_beat) + b"MTrk" + struct.pack(">I", len(track))
        _atomic_write(self.path, lambda f: f.write(head + track))
        self._f = open(self.path, "r+b", buffering=0)
        self._track_len = len(track)

    def flush(self) -> None:
        """Append the pending messages to the file (creating it on the first call)."""
        import struct
        self._last_flush = time.monotonic()
        if self._f is None:
            self._open()
        if not self._pending:
            return
        msgs, self._pending = sorted(self._pending, key=lambda m: m[0]), []   # stable: send order kept
        data = bytearray()
        for t, msg in msgs:
            tick = max(self.ticks(t), self._last_tick)
            data += self._vlq(tick - self._last_tick) + bytes(msg)
            self._last_tick = tick
        f, start = self._f, 22                          # track data starts after MThd (14) + MTrk header (8)
        old_eot = start + self._track_len - 4
        f.seek(old_eot + 4)
        f.write(bytes(data) + self._EOT)                # 1: new events after the old End of Track
        f.seek(old_eot)
        f.write(self._EMPTY_TEXT)                       # 2: the old End of Track -> empty text
        self._track_len += len(data) + 4
        f.seek(18)
        f.write(struct.pack(">I", self._track_len))     # 3: the track now covers them
        self.written += len(msgs)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.flush()
        f, self._f = self._f, None
        try:
            os.fsync(f.fileno())
        finally:
            f.close()

    @property
    def messages(self) -> list[Message]:
        """(time s, bytes) of everything recorded so far, read back from the file (+ unflushed)."""
        import mido
        out: list[Message] = []
        if self.path.exists() and (self._f is not None or self._closed):
            tick = 0
            for m in mido.MidiFile(self.path).tracks[0]:
                tick += m.time
                if not m.is_meta:
                    out.append((tick * self.tempo_us / self.ticks_per_beat / 1e6, tuple(m.bytes())))
        return out + list(self._pending)


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
