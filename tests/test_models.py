"""MirrorNet networks: causality, streaming == full sequence, shapes, checkpoints without pickle."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from rtmirror.controls import ControlSpace
from rtmirror.models import (Decoder, DecoderConfig, Encoder, EncoderConfig, load_checkpoint,
                             save_checkpoint)
from rtmirror.models.checkpoint import load_train_state, optimizer_state

SPACE = ControlSpace.load("live")
torch.set_num_threads(1)   # tiny nets: threads only fight over the shared cores


def small_encoder(lookahead=0, pitch_head="classes", seed=0):
    torch.manual_seed(seed)
    cfg = EncoderConfig.for_space(SPACE, lookahead=lookahead, pitch_head=pitch_head, hidden=32,
                                  freq_channels=4, dilations=(1, 2, 4, 1))
    return Encoder(cfg).eval()


def raw_frames(b, t, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 128, t, generator=g) ** 3 * 0.05   # raw, non-negative, frontend-like


@pytest.mark.parametrize("lookahead", [0, 1, 2])
@pytest.mark.parametrize("pitch_head", ["classes", "continuous"])
def test_outputs_in_unit_range_and_shapes(lookahead, pitch_head):
    enc = small_encoder(lookahead, pitch_head)
    x = raw_frames(3, 40)
    y = enc(x)
    assert y.shape == (3, len(SPACE), 40)
    assert torch.all((y >= 0) & (y <= 1))
    dec = Decoder(DecoderConfig.for_space(SPACE, hidden=32, dilations=(1, 2)))
    assert dec(y).shape == (3, 128, 40)


@pytest.mark.parametrize("lookahead", [0, 1, 2])
def test_encoder_is_causal_with_its_lookahead(lookahead):
    enc = small_encoder(lookahead)
    x = raw_frames(2, 60)
    rng = np.random.default_rng(lookahead)
    with torch.no_grad():
        y = enc(x)
        for t in rng.integers(0, 55, size=6):
            z = x.clone()
            z[:, :, t + lookahead + 1:] = torch.rand_like(z[:, :, t + lookahead + 1:])  # change the future
            y2 = enc(z)
            assert torch.equal(y[:, :, :t + 1], y2[:, :, :t + 1]), f"output <= {t} saw the future"
            # and the frame t + lookahead does matter to frame t (the lookahead is real)
            w = x.clone()
            w[:, :, t + lookahead] += 0.5
            assert not torch.allclose(enc(w)[:, :, t], y[:, :, t])


@pytest.mark.parametrize("lookahead", [0, 1, 2])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chained_steps_equal_forward_delayed_by_lookahead(lookahead, seed):
    enc = small_encoder(lookahead, seed=seed)
    T = 83
    x = raw_frames(2, T, seed=seed)
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        full = enc(x)
        state = enc.initial_state(2)
        shapes = [s.shape for s in state]
        outs, i = [], 0
        while i < T:
            k = int(rng.choice([1, 1, 2, 3, 7, 16]))
            out, *state = enc.step(x[:, :, i:i + k], *state)
            assert [s.shape for s in state] == shapes      # fixed state shapes
            outs.append(out)
            i += k
        streamed = torch.cat(outs, dim=2)
    assert streamed.shape == full.shape
    # step output j is the control frame for input frame j - lookahead
    diff = (streamed[:, :, lookahead:] - full[:, :, :T - lookahead]).abs().max().item()
    assert diff <= 1e-5


def test_soft_argmax_pitch_lands_on_class_values():
    enc = small_encoder()
    with torch.no_grad():
        enc.pitch_head.bias.zero_()
        enc.pitch_head.weight.zero_()
        enc.pitch_head.bias[24] = 50.0        # all mass on class 24
        y = enc(raw_frames(1, 5))
    p = SPACE.role_index("pitch")
    assert torch.allclose(y[0, p], torch.full((5,), 24 / 60), atol=1e-6)
    assert SPACE.controls[p].to_physical(24 / 60) == pytest.approx(60.0)


@pytest.mark.parametrize("second", [20, 30, 50])
def test_pitch_readout_is_local_at_inference_and_global_in_training(second):
    """Mass split between two notes (a note change): at inference the read-out stays on the
    stronger note instead of gliding through the semitones between; training keeps the global
    soft-argmax (smooth for the mirror loss), and pitch_readout=0 restores it at inference."""
    enc = small_encoder()
    with torch.no_grad():
        enc.pitch_head.weight.zero_()
        enc.pitch_head.bias.zero_()
        enc.pitch_head.bias[10] = 5.0
        enc.pitch_head.bias[second] = 4.5
    x, p = raw_frames(1, 6), SPACE.role_index("pitch")
    logits = enc.pitch_head.bias.detach().double().numpy()
    w = np.exp(logits - logits.max())
    global_value = float((w / w.sum()) @ np.linspace(0, 1, 61))
    with torch.no_grad():
        local = enc(x)[0, p]
        enc.train()
        trained = enc(x)[0, p]
    assert torch.allclose(local, torch.full((6,), 10 / 60), atol=1e-6)   # window 6..14 is symmetric
    assert torch.allclose(trained.double(), torch.full((6,), global_value, dtype=torch.float64), atol=1e-6)
    assert global_value > 10 / 60 + 0.02                                 # what the glide looked like
    torch.manual_seed(0)
    glob = Encoder(dataclasses.replace(enc.cfg, pitch_readout=0)).eval()
    glob.load_state_dict(enc.state_dict())
    with torch.no_grad():
        assert torch.allclose(glob(x)[0, p].double(), torch.full((6,), global_value, dtype=torch.float64), atol=1e-6)


def test_bad_configs_are_refused():
    with pytest.raises(ValueError):
        EncoderConfig.for_space(SPACE, lookahead=3)
    with pytest.raises(ValueError):
        EncoderConfig.for_space(SPACE, pitch_head="bins")
    with pytest.raises(ValueError):
        EncoderConfig.for_space(SPACE, pitch_readout=-1)
    with pytest.raises(ValueError):
        EncoderConfig.from_dict({"n_controls": 3, "bogus": 1})


def test_checkpoint_round_trip_and_optimizer_state(tmp_path):
    enc = small_encoder(1)
    dec = Decoder(DecoderConfig.for_space(SPACE, hidden=32, dilations=(1, 2)))
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=1e-3)
    x = raw_frames(2, 20)
    loss = dec(enc(x)).pow(2).mean()
    loss.backward()
    opt.step()
    meta = {"control_space": SPACE.to_dict(), "train_config": {"lr": 1e-3}, "progress": {"step": 1}}
    save_checkpoint(tmp_path / "ck", enc, dec, meta, optimizer_state({"opt": opt}, {"note": "x"}))
    ck = load_checkpoint(tmp_path / "ck")
    with torch.no_grad():
        assert torch.equal(ck.encoder(x), enc(x))
        assert torch.equal(ck.decoder(enc(x)), dec(enc(x)))
    assert ck.encoder.lookahead == 1
    assert ck.meta["progress"] == {"step": 1}
    assert ControlSpace.from_dict(ck.meta["control_space"]) == SPACE
    assert json.loads((tmp_path / "ck" / "config.json").read_text())["train_config_hash"]
    opt2 = torch.optim.Adam(list(ck.encoder.parameters()) + list(ck.decoder.parameters()), lr=5.0)
    info = load_train_state(tmp_path / "ck", {"opt": opt2})
    assert info["extra"] == {"note": "x"} and info["progress"] == {"step": 1}
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s2["param_groups"][0]["lr"] == 1e-3
    for pid in s1["state"]:
        for k, v in s1["state"][pid].items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(s2["state"][pid][k]))
    assert not list(tmp_path.glob("ck/*.tmp*"))


def test_checkpoint_loading_refuses_pickles(tmp_path):
    d = tmp_path / "evil"
    d.mkdir()

    class Boom:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    torch.save({"w": torch.zeros(3), "x": Boom()}, d / "model.safetensors")
    with pytest.raises(ValueError, match="safetensors"):
        load_checkpoint(d)
    assert not (tmp_path / "pwned").exists()
    (d / "model.safetensors").write_bytes(b"\x00" * 7)           # truncated / garbage
    with pytest.raises(ValueError):
        load_checkpoint(d)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "nothing")
