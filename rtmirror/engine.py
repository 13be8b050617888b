"""The live engine: audio source -> resample -> CochlearStream -> encoder step -> Performer -> sinks.

Two layers:
  * `Pipeline` — the synchronous chain, one call per audio block. `rtmirror file` runs it on a
    whole file in blocks; the live `Engine` runs the very same object on ring-buffer blocks, so
    live and offline give the same events for the same input. Every stage is block-partition
    invariant (the frontend by its own parity test; the encoder is stepped one frame at a time;
    the Performer is per frame), so the block sizes the audio arrives in do not matter.
  * `Engine` — a worker thread draining the source's ring buffer through the Pipeline into a
    MidiOut (port / file / printer), a ControlsCsv and a Snapshot for the GUI. Bounded latency:
    when the backlog exceeds `max_backlog_s` it discards the oldest audio and counts the frames.

No stuck notes: every way out of the worker (stop Event, end of input, device loss, model error,
any exception) runs the same `finally`: the Performer's flush, note-offs for every sounding
note, All Notes Off (CC 123), then the outputs close and `error` / `message` say what happened.

Timing: event times are stream time of the resampled audio, frame i at i / frame_rate (frame i
is the frame that ends at resampled sample (i + 1) * hop), which is also the input's timeline:
the streaming resampler holds samples back (latency, `Pipeline.delay_s`) but does not shift them.
The encoder's first `lookahead` outputs belong to frames before the stream started and are
dropped, so control row i is frame i; `finish()` flushes the resampler and feeds `lookahead`
zero frames to get the last frames out.
"""
from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from rtmirror.events import NOTE_OFF, NOTE_ON, Event
from rtmirror.frontend.config import FrontendConfig
from rtmirror.dc_block import DCBlocker
from rtmirror.level_gate import LevelGate
from rtmirror.snapshot import Snapshot


@dataclass
class BlockResult:
    spec: np.ndarray             # (n, 128) new spectrogram columns
    model: np.ndarray            # (m, K) the model's control frames (m = n once warmed up)
    controls: np.ndarray         # (m, K) what the Performer got (holds applied, sanitized)
    times: np.ndarray            # (m,) stream time of each control frame
    events: list[Event] = field(default_factory=list)

    @classmethod
    def events_only(cls, events: list[Event], k: int = 0, n_channels: int = 128) -> "BlockResult":
        return cls(np.zeros((0, n_channels), np.float32), np.zeros((0, k), np.float32),
                   np.zeros((0, k), np.float32), np.zeros(0), list(events))


class Pipeline:
    """One audio block at `input_sr` in -> spectrogram columns, control frames and events out.

    runtime: rtmirror.runtime.EncoderRuntime (its manifest fixes the control space and frontend).
    frontend: the frontend configuration to run; must match the model's (ModelError otherwise).
    """

    def __init__(self, runtime, input_sr: int, performer_cfg=None, frontend: FrontendConfig | None = None,
                 resampler: str = "live", level_gate=None, scale_lock=None):
        from rtmirror.audio_io import LiveResampler
        from rtmirror.frontend import CochlearStream, StreamResampler
        from rtmirror.performer import Performer

        if frontend is not None:
            runtime.check_frontend(frontend)   # a model trained on another frontend is refused
        self.runtime = runtime
        self.frontend = runtime.frontend
        self.space = runtime.space
        self.input_sr = int(input_sr)
        self.frame_rate = self.frontend.frame_rate
        sr = self.frontend.sample_rate
        # "live": rtmirror.audio_io.LiveResampler (1.5 ms latency); "soxr": the frontend's
        # StreamResampler (soxr HQ; 36-95 ms held back in 128-sample blocks, see LiveResampler).
        if resampler not in ("live", "soxr"):
            raise ValueError(f"resampler must be 'live' or 'soxr', got {resampler!r}")
        make = LiveResampler if resampler == "live" else StreamResampler
        self.resampler = make(self.input_sr, sr) if self.input_sr != sr else None
        self.delay_s = 0.0   # the resampler's steady-state latency (output held back), seconds
        if self.resampler is not None:
            probe = make(self.input_sr, sr)
            probe.process(np.zeros(self.input_sr // 2, np.float32))
            self.delay_s = float(probe.delay_samples) / sr
        self.cochlea = CochlearStream(self.frontend)
        self.dc_block = DCBlocker(self.input_sr)   # DC off at the input, before the resampler and cochlea
        # the floor under the model's gate, on the input level before the AGC (rtmirror/level_gate.py)
        self.level_gate = LevelGate(self.frontend.hop, level_gate, self.frame_rate)
        self._gate_col = self.space.role_index("gate")
        self.performer = Performer(self.space, performer_cfg, self.frame_rate)
        # key/scale lock on the Performer's notes (rtmirror.scale.ScaleLock; None: off)
        self.scale_lock = scale_lock
        self.lookahead = int(runtime.lookahead)
        self._k = len(self.space)
        self.reset()

    def reset(self) -> None:
        self.runtime.reset()
        self.cochlea.reset()
        self.dc_block.reset()
        if getattr(self, "scale_lock", None) is not None:
            self.scale_lock.reset()
        self.level_gate.reset()
        self._level_open: list[bool] = []      # per frame not yet given to the Performer
        if self.resampler is not None and hasattr(self.resampler, "reset"):
            self.resampler.reset()
        self.performer.reset()
        self._warmup = self.lookahead          # encoder rows still to drop
        self.nonfinite_samples = 0             # input samples replaced by 0 (NaN/inf audio)
        self.input_samples = 0
        self.frames = 0                        # control frames given to the Performer

    def _sanitize(self, block: np.ndarray) -> np.ndarray:
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        if not np.isfinite(block).all():
            bad = ~np.isfinite(block)
            self.nonfinite_samples += int(bad.sum())
            block = np.where(bad, np.float32(0.0), block)
        return block

    def process(self, block: np.ndarray, hold: np.ndarray | None = None) -> BlockResult:
        """block (n,) float32 at input_sr; hold (K,) NaN = follow the model, else a fixed value."""
        block = self._sanitize(block)
        self.input_samples += len(block)
        block = self.dc_block.process(block)
        x = self.resampler.process(block) if self.resampler is not None else block
        spec = self.cochlea.process(x, copy=True)                        # (n, 128), ours to keep
        self._level_open += self.level_gate.process(x).tolist()          # same framing as spec
        return self._controls(spec, hold)

    def _controls(self, spec: np.ndarray, hold: np.ndarray | None) -> BlockResult:
        n = len(spec)
        model = np.empty((n, self._k), np.float32)
        for j in range(n):                      # one frame per step: partition invariant
            model[j] = self.runtime.step(spec[j:j + 1])[0]
        if self._warmup:
            drop = min(self._warmup, n)
            model = model[drop:]
            self._warmup -= drop
        # rows are frames self.frames.. (lookahead behind the spectrogram): their levels are known
        m = len(model)
        level_open = np.array(self._level_open[:m] + [False] * (m - len(self._level_open)), dtype=bool)
        del self._level_open[:m]
        return self.play(spec, model, level_open, hold)

    def play(self, spec: np.ndarray, model: np.ndarray, level_open: np.ndarray,
             hold: np.ndarray | None = None) -> BlockResult:
        """The stages after the encoder, for the control rows of frames self.frames.. in order.

        model (m, K): the encoder's control frames; level_open (m,) bool: the level gate's flags of
        the same frames. Sanitize and clip, level gate, holds, Performer, key/scale lock. The
        streaming path calls it per block, `rtmirror file` once on the full-sequence graph's rows.
        """
        controls = model.copy() if np.isfinite(model).all() else np.nan_to_num(model, nan=0.0, posinf=1.0, neginf=0.0)
        np.clip(controls, 0.0, 1.0, out=controls)
        if self._gate_col is not None and len(controls):
            controls[~level_open, self._gate_col] = 0.0
        if hold is not None and not np.isnan(hold).all():
            held = ~np.isnan(hold)
            controls[:, held] = hold[held]
        times = (self.frames + np.arange(len(controls))) / self.frame_rate
        events: list[Event] = []
        step = self.performer.step
        for row in controls.astype(np.float64):  # the Performer's own dtype: one conversion, not one per row
            events += step(row)
        if self.scale_lock is not None:
            events = self.scale_lock.process(events)
        self.frames += len(controls)
        return BlockResult(spec, model, controls, times, events)

    def end(self) -> list[Event]:
        """Close the sounding note after the last frame (Performer flush, through the scale lock)."""
        flush = self.performer.flush()
        return self.scale_lock.process(flush) if self.scale_lock is not None else flush

    def finish(self, hold: np.ndarray | None = None) -> BlockResult:
        """End of input: push the resampler's tail and the encoder's lookahead out, close notes."""
        parts = []
        if self.resampler is not None:
            tail_x = self.resampler.flush()
            spec = self.cochlea.process(tail_x, copy=True)
            self._level_open += self.level_gate.process(tail_x).tolist()
            parts.append(self._controls(spec, hold))
        if self.lookahead:
            tail = self._controls(np.zeros((self.lookahead, self.frontend.n_channels), np.float32), hold)
            tail.spec = tail.spec[:0]            # padding, not spectrogram: one column per control frame
            parts.append(tail)
        flush = self.end()
        k, c = self._k, self.frontend.n_channels
        return BlockResult(
            np.concatenate([p.spec for p in parts]) if parts else np.zeros((0, c), np.float32),
            np.concatenate([p.model for p in parts]) if parts else np.zeros((0, k), np.float32),
            np.concatenate([p.controls for p in parts]) if parts else np.zeros((0, k), np.float32),
            np.concatenate([p.times for p in parts]) if parts else np.zeros(0),
            [e for p in parts for e in p.events] + flush)


@dataclass(frozen=True)
class EngineConfig:
    max_backlog_s: float | None = 0.064  # live: drop the oldest audio beyond this; None = never drop
    read_block: int = 2048               # most input samples processed per worker iteration
    wait_s: float = 0.01                 # longest wait for audio before the worker looks at requests
    stop_on_port_loss: bool = False      # a vanished MIDI port stops the engine (else: report, go on)
    stats_interval_s: float = 0.25
    port_check_interval_s: float = 0.5
    record: bool = False                 # keep every event, MIDI message and input block (tests)


@dataclass(frozen=True)
class Latency:
    """Where the time from a sound's onset to its MIDI note-on goes, in ms.

    Stages whose wait depends on where the onset falls in a period or a frame count their mean
    (half the period / frame); `worker_ms` is measured. The model's share (`model_ms`) is the
    manifest's `delay` (lookahead + the note-on's longest settling wait); `engine_ms` is the rest.
    """
    input_ms: float       # audio input: the driver latency PortAudio reports + half a period (the onset's period must end)
    resampler_ms: float   # LiveResampler: the future half of its window
    frame_ms: float       # half a frame: the onset's frame is complete with its last sample
    lookahead_ms: float   # the encoder's lookahead (model)
    settle_ms: float      # the note-on's longest wait for a settled pitch (model)
    worker_ms: float      # newest audio written -> its MIDI handed to the port: queue + compute (median)
    midi_out_ms: float    # the MIDI system's wait for its next cycle (JACK: half a period; ALSA: none)
    period_ms: float      # the audio period (callback block), for reference; not a part of the sum

    PARTS = ("input_ms", "resampler_ms", "frame_ms", "lookahead_ms", "settle_ms", "worker_ms", "midi_out_ms")

    @property
    def parts(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self.PARTS}

    @property
    def total_ms(self) -> float:
        return float(sum(self.parts.values()))

    @property
    def model_ms(self) -> float:
        return self.lookahead_ms + self.settle_ms

    @property
    def engine_ms(self) -> float:
        return self.total_ms - self.model_ms

    @property
    def file_to_port_ms(self) -> float:
        """A note's `rtmirror file` event time -> its note-on at the MIDI port, live: file mode
        stamps the decision frame with its start, so a whole frame, the lookahead and the engine's
        stages follow it (detection and settling are in both)."""
        return self.total_ms - self.settle_ms + self.frame_ms

    def describe(self) -> str:
        """'latency 33.1 ms = input 1.3 + resampler 1.5 + ... (model 16.0, engine 17.1)'"""
        parts = " + ".join(f"{name[:-3].replace('_', ' ')} {v:.1f}" for name, v in self.parts.items())
        return f"latency {self.total_ms:.1f} ms = {parts} (model {self.model_ms:.1f}, engine {self.engine_ms:.1f})"


class EngineStopped(RuntimeError):
    pass


class Engine:
    """Runs a Pipeline on a worker thread fed by an audio source (rtmirror.audio_io).

    source: has `.ring` (rtmirror.ring.Ring), `.sample_rate`, `.start()`, `.stop()`,
            `.finished` (a file source that has pushed everything), `.error` (str or None),
            `.period_s` (the callback block), `.device_latency_s` (the driver's own input latency),
            `.overflows` (input status flags counted).
    midi:   rtmirror.midi.MidiOut or None; csv: rtmirror.midi.ControlsCsv or None.
    midi_out_periods: the MIDI system's mean wait before a message leaves, in audio periods
            (JACK MIDI: the next cycle of the server the JACK audio input shares; ALSA: 0).

    The worker sleeps on the ring (rtmirror.ring.Ring.wait) and starts on a block as soon as the
    audio callback has written it.
    """

    def __init__(self, runtime, source, midi=None, *, cfg: EngineConfig | None = None,
                 performer_cfg=None, frontend: FrontendConfig | None = None, csv=None,
                 snapshot: Snapshot | None = None, on_message=None, level_gate=None, scale_lock=None,
                 midi_out_periods: float = 0.0):
        self.cfg = cfg or EngineConfig()
        self.midi_out_periods = float(midi_out_periods)
        self.source = source
        self.midi = midi
        self.csv = csv
        self.pipeline = Pipeline(runtime, source.sample_rate, performer_cfg, frontend, level_gate=level_gate,
                                 scale_lock=scale_lock)
        space = self.pipeline.space
        ccs = None
        if midi is not None:
            ccs = [a.cc if a is not None else None for a in midi.encoder.assignments]
        self.snapshot = snapshot or Snapshot(space.names, ccs, self.pipeline.frame_rate,
                                             self.pipeline.frontend.n_channels)
        self.on_message = on_message or (lambda msg: None)
        self.stop_event = threading.Event()
        self.error: str | None = None
        self.exhausted = False            # the source ended (file played through)
        self.events: list[Event] = []     # with cfg.record
        self.messages: list = []          # with cfg.record
        self.input_blocks: list[np.ndarray] = []   # with cfg.record: the audio exactly as processed
        self.dropped_frames = 0
        self.frame_times: list[float] = []  # recent per-frame processing times (s)
        self.worker_times: list[float] = []  # recent (MIDI handed over - newest audio written), s, blocks with frames
        self.cpu_share = 0.0
        self._thread: threading.Thread | None = None
        self._msgs_window: list[tuple[float, int]] = []
        self._last_callbacks, self._callbacks_seen_at, self._stalled = -1, time.monotonic(), False

    # -- control ---------------------------------------------------------------------------
    def start(self) -> "Engine":
        """Open the input (errors raise here, before any thread, with the MIDI outputs closed)
        and start the worker."""
        if self._thread is not None:
            raise RuntimeError("engine already started")
        try:
            # Warm up first: the first calls load Numba's cached kernels and onnxruntime's, which
            # would otherwise stall the worker ~1 s with the input already running.
            self.pipeline.process(np.zeros(self.source.sample_rate // 10, np.float32))
            self.pipeline.reset()
            # The audio callback needs the GIL; with Python's default 5 ms switch interval a busy
            # worker could hold it for most of an 8 ms period. 1 ms keeps the callback's wait short.
            if sys.getswitchinterval() > 0.001:
                sys.setswitchinterval(0.001)
            self.source.start()
        except BaseException:
            # Nothing was played: close the MIDI outputs (no port left open) and whatever part
            # of the input did open, then report.
            try:
                self.source.stop()
            except Exception:
                pass
            if self.midi is not None:
                self.midi.close(0.0)
            raise
        self.snapshot.running = True
        self._thread = threading.Thread(target=self._run, name="rtmirror-engine", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.stop_event.set()
        self.source.ring.wake()
        self.join(timeout)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker; True when it has ended."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run(self) -> int:
        """Start, wait until the input ends, stop() is called or an error; 0 ok, 1 on error."""
        self.start()
        try:
            while not self.join(0.1):
                pass
        except KeyboardInterrupt:
            self.stop()
        return 1 if self.error else 0

    # -- latency ---------------------------------------------------------------------------
    def latency(self) -> Latency:
        """The latency by stage (rtmirror.engine.Latency); the worker's part is measured once
        audio flows (0 before)."""
        p, src = self.pipeline, self.source
        period = float(getattr(src, "period_s", 0.0))
        frame = p.frontend.hop / p.frontend.sample_rate
        recent = self.worker_times[-500:]
        return Latency(
            input_ms=1e3 * (float(getattr(src, "device_latency_s", 0.0)) + period / 2),
            resampler_ms=1e3 * p.delay_s,
            frame_ms=1e3 * frame / 2,
            lookahead_ms=1e3 * p.lookahead * frame,
            settle_ms=1e3 * p.performer.cfg.onset_settle_frames * frame,
            worker_ms=1e3 * float(np.median(recent)) if recent else 0.0,
            midi_out_ms=1e3 * self.midi_out_periods * period,
            period_ms=1e3 * period)

    # -- worker ----------------------------------------------------------------------------
    def _say(self, msg: str) -> None:
        self.snapshot.message = msg
        try:
            self.on_message(msg)
        except Exception:
            pass

    def _emit(self, r: BlockResult) -> None:
        events = r.events   # already in send order (frames in sequence; legato puts note-on first)
        msgs = self.midi.send_frames(events, r.times) if self.midi is not None else []
        if self.csv is not None:
            self.csv.write(r.times, r.controls)
        if self.cfg.record:
            self.events += events
            self.messages += msgs
        self._msgs_window.append((time.monotonic(), len(msgs)))
        snap = self.snapshot
        for ev in events:
            if ev.kind == NOTE_ON:
                snap.note_started(ev.note, ev.velocity, ev.time)
            elif ev.kind == NOTE_OFF:
                snap.note_ended(ev.note, ev.time)

    def _run(self) -> None:
        cfg, p, snap, src = self.cfg, self.pipeline, self.snapshot, self.source
        ring = src.ring
        buf = np.zeros(cfg.read_block, np.float32)
        samples_per_frame = p.frontend.hop * src.sample_rate / p.frontend.sample_rate
        max_backlog = None if cfg.max_backlog_s is None else int(cfg.max_backlog_s * src.sample_rate)
        last_stats = last_check = time.monotonic()
        cpu0, wall0 = time.thread_time(), time.perf_counter()
        try:
            while not self.stop_event.is_set():
                if snap.take_panic_request():
                    self._emit(BlockResult.events_only(p.performer.flush()))
                    if self.midi is not None:
                        msgs = self.midi.panic(p.performer.time)
                        if cfg.record:
                            self.messages += msgs
                    self._say("panic: all notes off")
                if src.error:
                    raise EngineStopped(f"audio input lost: {src.error}")
                avail = ring.available()
                if avail == 0:
                    if src.finished and ring.available() == 0:
                        self.exhausted = True
                        break
                    avail = ring.wait(cfg.wait_s)      # the audio callback's write wakes it
                if max_backlog is not None and avail > max_backlog:
                    # Overload: keep the newest audio, count what was skipped (latency stays bounded).
                    ring.discard(avail - max_backlog // 2)
                    self.dropped_frames = int(ring.discarded_samples // samples_per_frame)
                    avail = ring.available()
                if avail:
                    written_at = ring.written_at          # the newest block read below came then (or later)
                    n = ring.read(buf[:min(avail, len(buf))])
                    if cfg.record:
                        self.input_blocks.append(buf[:n].copy())
                    t0 = time.perf_counter()
                    if self.midi is not None:   # knobs the user holds go out even in silence
                        self.midi.encoder.forced = ~np.isnan(snap.hold_values)
                    r = p.process(buf[:n], snap.hold_values)
                    self._emit(r)
                    t1 = time.perf_counter()
                    if len(r.spec):
                        self.frame_times.append((t1 - t0) / len(r.spec))
                        self.worker_times.append(t1 - written_at)
                    snap.push_columns(r.spec)
                    if len(r.controls):
                        snap.set_controls(r.model[-1], r.controls[-1], r.times[-1])
                    snap.set_level(buf[:n])
                now = time.monotonic()
                if now - last_check >= cfg.port_check_interval_s and self.midi is not None:
                    last_check = now
                    self._check_ports()
                if now - last_stats >= cfg.stats_interval_s:
                    last_stats = now
                    self._watch_input(now)
                    cpu1, wall1 = time.thread_time(), time.perf_counter()
                    self.cpu_share = (cpu1 - cpu0) / max(wall1 - wall0, 1e-9)
                    cpu0, wall0 = cpu1, wall1
                    self._update_stats(ring.available() / src.sample_rate)
            if self.exhausted:
                r = p.finish(snap.hold_values)
                self._emit(r)
                snap.push_columns(r.spec)
        except EngineStopped as exc:
            self.error = str(exc)
        except Exception as exc:  # model error, sink error, bug: report, then the finally closes notes
            from rtmirror.runtime import ModelError
            kind = "model error" if isinstance(exc, ModelError) else f"{type(exc).__name__}"
            self.error = f"engine stopped by {kind}: {exc}"
        finally:
            self._close()

    def _check_ports(self) -> None:
        for o in self.midi.outputs:
            check = getattr(o, "check", None)
            if check is None:
                continue
            msg = check()
            if msg:
                self._say(msg)
                if getattr(o, "fatal", False):       # the MIDI system itself is gone (JACK server)
                    raise EngineStopped(f"{msg}; stopping")
                if getattr(o, "lost", False) and self.cfg.stop_on_port_loss:
                    raise EngineStopped(f"{msg}; stopping (--stop-on-port-loss)")

    def _watch_input(self, now: float) -> None:
        """A device that stops calling back without closing its stream: say so (once)."""
        n = getattr(self.source, "callbacks", None)
        if n is None:
            return
        if n != self._last_callbacks:
            self._last_callbacks, self._callbacks_seen_at = n, now
            if self._stalled:
                self._stalled = False
                self._say("audio input is back")
        elif now - self._callbacks_seen_at > 2.0 and not self._stalled:
            self._stalled = True
            self._say(f"no audio from the input for {now - self._callbacks_seen_at:.0f} s (device stalled?)")

    def _update_stats(self, backlog_s: float) -> None:
        snap = self.snapshot
        ft = np.asarray(self.frame_times[-500:])
        del self.frame_times[:-500]
        if len(ft):
            snap.frame_ms_median = float(np.median(ft) * 1e3)
            snap.frame_ms_p99 = float(np.percentile(ft, 99) * 1e3)
        del self.worker_times[:-500]
        lat = self.latency()
        snap.latency = lat
        snap.latency_ms = lat.total_ms + 1e3 * backlog_s
        lock = self.pipeline.scale_lock
        snap.key = lock.name if lock is not None else "off"
        snap.cpu_share = self.cpu_share
        overflows = int(getattr(self.source, "overflows", 0))
        snap.input_overflows = overflows
        ring = self.source.ring
        refused = ring.dropped_samples * self.pipeline.frontend.sample_rate / self.source.sample_rate
        snap.dropped_frames = self.dropped_frames + int(refused // self.pipeline.frontend.hop)
        now = time.monotonic()
        self._msgs_window = [(t, n) for t, n in self._msgs_window if now - t <= 1.0]
        snap.midi_msgs_per_s = float(sum(n for _, n in self._msgs_window))

    def _close(self) -> None:
        """Every exit path: flush the Performer, note-offs + All Notes Off, close the sinks."""
        p = self.pipeline
        t = p.performer.time
        try:
            flush = p.performer.flush()
            if flush:
                self._emit(BlockResult.events_only(flush))
        except Exception as exc:
            self.error = self.error or f"flush failed: {exc}"
        finally:
            if self.midi is not None:
                msgs = self.midi.close(t)
                if self.cfg.record:
                    self.messages += msgs
                for e in self.midi.errors:
                    self._say(e)
            if self.csv is not None:
                try:
                    self.csv.close()
                except Exception as exc:
                    self.error = self.error or f"writing controls CSV failed: {exc}"
            try:
                self.source.stop()
            except Exception:
                pass
            self._update_stats(0.0)
            self.snapshot.running = False
            if self.error:
                self._say(f"{self.error} (all notes off sent)")
            else:
                self.snapshot.message = "stopped (all notes off sent)"
