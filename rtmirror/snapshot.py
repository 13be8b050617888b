"""Snapshot: what the GUI (or any observer) reads from the live engine, without locks.

One writer (the engine's worker thread) and any number of readers (the GUI thread on a QTimer).
Everything is preallocated; the writer only assigns into fixed numpy arrays and rebinds plain
Python scalars (atomic under the GIL), so a reader never blocks the worker and a slow reader
only misses display frames, never audio or MIDI.

"Lock-free-ish": a reader copying the spectrogram ring while the worker writes may see a column
that was overwritten mid-copy; `columns_since` detects that with the write counter and returns
only the columns that were stable.

How the GUI uses it (engine = rtmirror.engine.Engine; snap = engine.snapshot):

    Static metadata (set once, never change while the engine runs)
      snap.control_names  tuple[str]        the K controls, model order (DIVA names)
      snap.cc_numbers     tuple[int|None]   the CC each control is sent on (None: not sent)
      snap.frame_rate     float             spectrogram columns / control frames per second (125)
      snap.n_channels     int               spectrogram channels (128, low -> high frequency)
      snap.history        int               columns kept in the spectrogram ring (~5 s)

    Spectrogram (scrolling image)
      count, cols = snap.columns_since(last_count)  # cols (n, 128) float32, oldest first;
                                                    # n <= history; keep `count` for next call
      img = snap.spectrogram_history()              # (history, 128), oldest first, zeros before start
      snap.spec_count                               # total columns written so far

    Latest values (plain attributes; copy arrays if you keep them)
      snap.controls       (K,) float32   normalized [0, 1] values as sent (holds applied)
      snap.model_controls (K,) float32   the model's raw values (before holds)
      snap.note, snap.velocity            sounding note (MIDI number) and its velocity; -1 / 0 if none
      snap.recent_notes()                 list of (note, velocity, t_on_s, t_off_s or nan), oldest
                                          first, for a piano-roll strip
      snap.time_s                         stream time of the newest frame (x axis of the piano roll)
      snap.level_db, snap.peak            input RMS in dBFS of the newest block (-120 at silence), peak |x|

    Stats (updated about 4 times a second)
      snap.latency_ms       estimated input -> MIDI latency (snap.latency's total + the queued audio)
      snap.latency          rtmirror.engine.Latency: the same by stage (parts in ms), None before the first stats
      snap.cpu_share        worker CPU time / wall time (1.0 = one full core)
      snap.frame_ms_median, snap.frame_ms_p99   processing time per 8 ms frame
      snap.dropped_frames   frames dropped (worker overload + input overflows), total
      snap.input_overflows  input status flags counted by the audio callback
      snap.midi_msgs_per_s  MIDI messages sent per second
      snap.running          True while the worker runs
      snap.message          "" or a human-readable status/error ("MIDI port 'x' disappeared", ...)

    GUI -> engine requests (the engine polls them once per block)
      snap.set_hold(name_or_index, value)   freeze a control at a normalized value
      snap.set_hold(name_or_index, None)    release it (follow the model again)
      snap.holds()                          {name: value} of held controls
      snap.request_panic()                  note-offs for sounding notes + All Notes Off (CC 123)
"""
from __future__ import annotations

import math

import numpy as np


class Snapshot:
    def __init__(self, control_names, cc_numbers=None, frame_rate: float = 125.0,
                 n_channels: int = 128, history_s: float = 5.0, max_notes: int = 128):
        self.control_names = tuple(control_names)
        k = len(self.control_names)
        self.cc_numbers = tuple(cc_numbers) if cc_numbers is not None else (None,) * k
        if len(self.cc_numbers) != k:
            raise ValueError("cc_numbers must have one entry per control")
        self.frame_rate = float(frame_rate)
        self.n_channels = int(n_channels)
        self.history = max(1, int(math.ceil(history_s * self.frame_rate)))

        self._spec = np.zeros((self.history, self.n_channels), np.float32)  # ring of columns
        self.spec_count = 0
        self._writing_upto = 0   # spec_count once the push in progress completes

        self.controls = np.zeros(k, np.float32)
        self.model_controls = np.zeros(k, np.float32)
        self._hold = np.full(k, np.nan, np.float32)   # NaN = not held
        self.note = -1
        self.velocity = 0
        self._notes = np.full((max_notes, 4), np.nan, np.float64)  # (note, vel, t_on, t_off)
        self._notes_count = 0
        self.time_s = 0.0
        self.level_db = -120.0
        self.peak = 0.0

        self.latency_ms = 0.0
        self.latency = None
        self.key = "off"              # the scale lock: "off", "C major", "auto (A minor)", "auto (listening)"
        self.cpu_share = 0.0
        self.frame_ms_median = 0.0
        self.frame_ms_p99 = 0.0
        self.dropped_frames = 0
        self.input_overflows = 0
        self.midi_msgs_per_s = 0.0
        self.running = False
        self.message = ""
        self._panic_requested = False

    # -- reader side (GUI thread) ----------------------------------------------------------
    def columns_since(self, count: int) -> tuple[int, np.ndarray]:
        """Columns written after `count` -> (new_count, (n, n_channels) copy, oldest first)."""
        end = self.spec_count
        start = max(int(count), end - self.history)
        if start >= end:
            return end, np.zeros((0, self.n_channels), np.float32)
        idx = np.arange(start, end) % self.history
        cols = self._spec[idx]  # fancy indexing copies
        # A column the writer overwrote (or is overwriting) during the copy belongs to a newer
        # frame: drop it. The writer announces `_writing_upto` before it touches the slots.
        overwritten = max(self._writing_upto, self.spec_count) - self.history
        if overwritten > start:
            cols = cols[overwritten - start:]
        return end, cols

    def spectrogram_history(self) -> np.ndarray:
        """(history, n_channels) copy, oldest first; rows before the first column are zeros."""
        end = self.spec_count
        out = np.zeros((self.history, self.n_channels), np.float32)
        _, cols = self.columns_since(end - self.history)
        if len(cols):
            out[-len(cols):] = cols
        return out

    def recent_notes(self) -> list[tuple[int, int, float, float]]:
        """[(note, velocity, t_on_s, t_off_s or nan)], oldest first."""
        n = self._notes_count
        m = len(self._notes)
        rows = [self._notes[i % m].copy() for i in range(max(0, n - m), n)]
        return [(int(r[0]), int(r[1]), float(r[2]), float(r[3])) for r in rows if not math.isnan(r[0])]

    def set_hold(self, control, value) -> None:
        i = control if isinstance(control, int) else self.control_names.index(control)
        self._hold[i] = np.nan if value is None else float(np.clip(value, 0.0, 1.0))

    def holds(self) -> dict[str, float]:
        return {n: float(v) for n, v in zip(self.control_names, self._hold) if not math.isnan(v)}

    def request_panic(self) -> None:
        self._panic_requested = True

    # -- writer side (engine worker only) --------------------------------------------------
    @property
    def hold_values(self) -> np.ndarray:
        """(K,) float32, NaN where the control follows the model (read by the engine)."""
        return self._hold

    def take_panic_request(self) -> bool:
        if self._panic_requested:
            self._panic_requested = False
            return True
        return False

    def push_columns(self, cols: np.ndarray) -> None:
        """cols (n, n_channels): append spectrogram columns."""
        n = len(cols)
        if n == 0:
            return
        self._writing_upto = self.spec_count + n
        if n > self.history:
            self.spec_count += n - self.history
            cols = cols[-self.history:]
            n = self.history
        start = self.spec_count % self.history
        first = min(n, self.history - start)
        self._spec[start:start + first] = cols[:first]
        if first < n:
            self._spec[:n - first] = cols[first:]
        self.spec_count += n

    def set_controls(self, model_controls: np.ndarray, sent_controls: np.ndarray, time_s: float) -> None:
        self.model_controls[:] = model_controls
        self.controls[:] = sent_controls
        self.time_s = float(time_s)

    def note_started(self, note: int, velocity: int, time_s: float) -> None:
        row = self._notes[self._notes_count % len(self._notes)]
        row[:] = (note, velocity, time_s, np.nan)
        self._notes_count += 1
        self.note, self.velocity = int(note), int(velocity)

    def note_ended(self, note: int, time_s: float) -> None:
        m = len(self._notes)
        for i in range(self._notes_count - 1, max(-1, self._notes_count - m - 1), -1):
            row = self._notes[i % m]
            if row[0] == note and math.isnan(row[3]):
                row[3] = time_s
                break
        if self.note == note:
            self.note, self.velocity = -1, 0

    def set_level(self, block: np.ndarray) -> None:
        if len(block) == 0:
            return
        rms = float(np.sqrt(np.mean(np.square(block, dtype=np.float64))))
        self.level_db = 20.0 * math.log10(rms) if rms > 1e-6 else -120.0
        self.peak = float(np.max(np.abs(block)))
