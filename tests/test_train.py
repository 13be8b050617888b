"""MirrorNet training: tiny configs that train in seconds, the whole mirror loop with both synth
kinds, exact resume, the render pool, config validation. Nothing here needs the long run."""
from __future__ import annotations

import copy
import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import require
from rtmirror.models import load_checkpoint
from rtmirror.synth.render import Renderer
from rtmirror.models.train.trainer import Trainer, load_config, merge_config, phase_plan, train

AMSYNTH = "/usr/lib/vst/amsynth_vst.so"
torch.set_num_threads(1)


def tiny(**sections) -> dict:
    cfg = load_config("tiny")
    for k, v in sections.items():
        if isinstance(v, dict):
            cfg[k] = {**cfg[k], **v}
        else:
            cfg[k] = v
    return merge_config(cfg)


def rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_tiny_losses_fall(tmp_path):
    cfg = tiny(init={"decoder_epochs": 6, "encoder_epochs": 6}, mirror={"rounds": 0},
               optim={"lr_decoder": 1e-2, "lr_encoder": 1e-2})
    train(cfg, tmp_path / "run", progress=False)
    r = rows(tmp_path / "run")
    d = [float(x["loss"]) for x in r if x["phase"] == "decoder_init"]
    e = [float(x["loss"]) for x in r if x["phase"] == "encoder_init"]
    assert len(d) == 6 and len(e) == 6
    assert np.mean(d[-2:]) < 0.7 * np.mean(d[:2]), d
    assert np.mean(e[-2:]) < 0.8 * np.mean(e[:2]), e


def _check_mirror_run(run_dir: Path, cfg: dict) -> None:
    r = rows(run_dir)
    phases = [x["phase"] for x in r]
    assert phases == [p for p, _, n in phase_plan(cfg) for _ in range(n)]
    dec = [x for x in r if x["phase"] == "decoder"]
    assert dec and all(math.isfinite(float(x["gap_after"])) for x in dec if x["gap_after"])
    assert math.isfinite(float(dec[-1]["gap_before"]))
    enc = [x for x in r if x["phase"] == "encoder"]
    assert math.isfinite(float(enc[-1]["val_loss_mirror"])) and 0 <= float(enc[-1]["val_gate_acc"]) <= 1
    assert (run_dir / "loss.png").stat().st_size > 1000
    ck = load_checkpoint(run_dir / "checkpoint")
    assert ck.meta["progress"]["complete"] and ck.meta["synth"] == cfg["synth"]["spec"]
    x = torch.rand(1, 128, 30) * 0.1
    y = ck.encoder(x)
    assert y.shape == (1, len(ck.meta["control_space"]["controls"]), 30) and torch.all(torch.isfinite(y))
    assert ck.decoder(y).shape == (1, 128, 30)


def test_mirror_loop_end_to_end_builtin(tmp_path):
    cfg = tiny(mirror={"rounds": 2, "decoder_epochs": 1, "encoder_epochs": 1, "encoder_sup_weight": 0.5})
    t = train(cfg, tmp_path / "run", progress=False)
    assert t.step > 0
    _check_mirror_run(tmp_path / "run", cfg)


def test_mirror_loop_end_to_end_amsynth(tmp_path):
    require(Path(AMSYNTH).is_file(), f"amsynth VST ({AMSYNTH}, apt: amsynth)")
    cfg = tiny(synth={"spec": AMSYNTH}, data={"n": 4, "n_random": 8, "n_val": 2},
               init={"decoder_epochs": 1, "encoder_epochs": 1})
    train(cfg, tmp_path / "run", progress=False)
    _check_mirror_run(tmp_path / "run", cfg)


def test_resume_is_exact(tmp_path):
    # plan: decoder_init 2, encoder_init 2, decoder r0 2, encoder r0 1, decoder r1 2, encoder r1 1
    cfg = tiny(mirror={"rounds": 2, "decoder_epochs": 2, "encoder_epochs": 1},
               data={"n": 4, "n_random": 8, "n_val": 2})
    full = train(cfg, tmp_path / "full", progress=False)
    # killed in the middle of round 0's decoder phase (its renders must be redone identically),
    # then resumed twice more
    part = train(cfg, tmp_path / "part", progress=False, stop_after_epochs=5)
    assert part.position == (2, 1)
    part = train(cfg, tmp_path / "part", resume=True, progress=False, stop_after_epochs=3)
    part = train(cfg, tmp_path / "part", resume=True, progress=False)
    assert part.step == full.step
    for a, b in ((full.encoder, part.encoder), (full.decoder, part.decoder)):
        for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(p, q), name
    ra, rb = rows(tmp_path / "full"), rows(tmp_path / "part")
    assert [(r["phase"], r["epoch"], r["step"], r["loss"]) for r in ra] == \
           [(r["phase"], r["epoch"], r["step"], r["loss"]) for r in rb]


def test_resume_may_change_the_schedule_only(tmp_path):
    cfg = tiny(init={"decoder_epochs": 3, "encoder_epochs": 2}, mirror={"rounds": 1},
               data={"n": 4, "n_random": 8, "n_val": 2})
    part = train(cfg, tmp_path / "run", progress=False, stop_after_epochs=2)
    assert part.position == (0, 2)
    cut = merge_config({"init": {"decoder_epochs": 2, "encoder_epochs": 1}, "mirror": {"rounds": 2}}, cfg)
    t = train(cut, tmp_path / "run", resume=True, progress=False)
    phases = [(r["phase"], r["round"]) for r in rows(tmp_path / "run")]
    assert phases == [("decoder_init", "-1")] * 2 + [("encoder_init", "-1")] + \
        [("decoder", "0"), ("encoder", "0"), ("decoder", "1"), ("encoder", "1")]
    assert t.position == (len(phase_plan(cut)), 0)


def test_fresh_run_refuses_to_overwrite_and_resume_checks_config(tmp_path):
    cfg = tiny(init={"decoder_epochs": 1, "encoder_epochs": 0}, mirror={"rounds": 0})
    train(cfg, tmp_path / "run", progress=False)
    with pytest.raises(FileExistsError):
        train(cfg, tmp_path / "run", progress=False)
    other = copy.deepcopy(cfg)
    other["optim"]["lr_decoder"] = 0.5
    with pytest.raises(ValueError, match="another config"):
        train(other, tmp_path / "run", resume=True, progress=False)


def test_render_pool_matches_in_process():
    cfg = tiny()
    t = Trainer(cfg, "unused", progress=False)
    spec = t.loop_spec
    with Renderer(spec, workers=0) as r0, Renderer(spec, workers=1) as r1:
        s0, c0, src0 = r0.melodies("paper", 5, 3)
        s1, c1, _ = r1.melodies("paper", 5, 3)
        assert list(src0) == [0, 0, 0]
        np.testing.assert_array_equal(s0, s1)
        np.testing.assert_array_equal(c0, c1)
        # frames -> Performer -> synth: the truth frames of a melody re-render to (nearly) its audio
        p0 = r0.frames(c0)
        np.testing.assert_array_equal(p0, r1.frames(c0))
    assert s0.shape == (3, spec.n_frames, 128) and c0.shape == (3, spec.n_frames, len(t.space))
    corr = np.corrcoef(np.log1p(p0.ravel() / 0.01), np.log1p(s0.ravel() / 0.01))[0, 1]
    assert corr > 0.9


def test_config_validation():
    with pytest.raises(ValueError, match="unknown config key"):
        merge_config({"bogus": 1})
    with pytest.raises(ValueError, match="unknown keys in \\[optim\\]"):
        merge_config({"optim": {"lr": 1}})
    with pytest.raises(ValueError, match="mode"):
        merge_config({"mode": "magic"})
    with pytest.raises(ValueError, match="knob_loss"):
        merge_config({"optim": {"knob_loss": "loud"}})
    with pytest.raises(FileNotFoundError):
        load_config("no-such-config")
    for name in ("default", "tiny", "world", "world-unsup"):
        cfg = load_config(name)
        assert phase_plan(cfg)
    for bad, match in (({"data": {"target_synth": {"wide": 0}}}, "weight of 'wide'"),
                       ({"data": {"target_synth": {}}}, "target_synth"),
                       ({"data": {"target_synth": 3}}, "target_synth"),
                       ({"augment": {"rt60_s": [2.0, 1.0]}}, "augment.rt60_s"),
                       ({"augment": {"reverb": 1}}, "unknown keys in \\[augment\\]")):
        with pytest.raises(ValueError, match=match):
            merge_config(bad)


def test_config_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "w.toml"
    bad.write_text("[mirror]\ntarget_note_weight = -1\n")
    with pytest.raises(ValueError, match="w.toml.*target_note_weight"):
        load_config(bad)
    bad.write_text("[data]\ntarget_synth = { wide = -1 }\n")
    with pytest.raises(ValueError, match="w.toml.*weight of 'wide'"):
        load_config(bad)


def test_standardized_knob_loss_weighs_each_knob_by_its_spread():
    from rtmirror.models.train.losses import CONSTANT_KNOB_SCALE, knob_scales_from, supervised_loss
    rng = np.random.default_rng(3)
    # (N, T, K): pitch, gate, a constant knob (exp1's velocity), a narrow knob, a wide knob
    truth = np.zeros((4, 50, 5))
    truth[..., 1] = rng.random((4, 50)) > 0.3
    truth[..., 2] = 1.0
    truth[..., 3] = rng.uniform(0.3, 0.4, (4, 50))
    truth[..., 4] = rng.uniform(0.0, 1.0, (4, 50))
    truth[truth[..., 1] < 0.5, 3] = 0.9            # silent frames do not count towards the spread
    on = truth[..., 1] > 0.5
    scales = knob_scales_from(truth, 0, 1)
    assert scales[0] == CONSTANT_KNOB_SCALE
    np.testing.assert_allclose(scales[1:], 1.0 / truth[on][:, 3:].var(axis=0), rtol=1e-5)
    assert scales[1] > 50 * scales[2]
    # predicting each knob's mean costs ~1 per knob in standardized units, whatever its range
    t = torch.from_numpy(truth).float().transpose(1, 2)          # (N, K, T)
    pred = t.clone()
    for k in (3, 4):
        pred[:, k] = float(truth[on][:, k].mean())
    _, parts = supervised_loss(pred, None, t, 0, 1, 61, knob_scales=torch.from_numpy(scales))
    assert parts["knobs"] == pytest.approx(2.0 / 3.0, rel=1e-4)
    _, raw = supervised_loss(pred, None, t, 0, 1, 61)
    assert raw["knobs"] < 0.05
    with pytest.raises(ValueError, match="knob_scales"):
        supervised_loss(pred, None, t, 0, 1, 61, knob_scales=torch.ones(2))


def test_supervised_mode_trains_only_the_encoder(tmp_path):
    cfg = tiny(mode="supervised", init={"encoder_epochs": 2}, optim={"knob_loss": "standardized"})
    train(cfg, tmp_path / "run", progress=False)
    r = rows(tmp_path / "run")
    assert {x["phase"] for x in r} == {"encoder_init"}
    assert all(math.isfinite(float(x["loss_knobs"])) for x in r)
    ck = load_checkpoint(tmp_path / "run" / "checkpoint")
    assert ck.meta["train_config"]["mode"] == "supervised"


def test_cli_reports_bad_config(tmp_path, capsys):
    from rtmirror.cli import main
    bad = tmp_path / "bad.toml"
    bad.write_text("bogus = 1\n")
    assert main(["train", str(bad)]) == 2
    assert "unknown config key" in capsys.readouterr().err


@pytest.mark.parametrize("target", [{"target_set": "exp2"}, {"target_synth": "piano"}])
def test_targets_from_another_set_or_instrument(tmp_path, target):
    cfg = tiny(data={"n": 4, "n_random": 8, "n_val": 2, **target},
               init={"decoder_epochs": 1, "encoder_epochs": 1})
    t = train(cfg, tmp_path / "run", progress=False)
    # the truth of the targets is in the model's control order (K of exp1), audio is not silent
    assert t.target[1].shape[-1] == len(t.space) == 8
    assert t.target[0].max() > 0.01
    if "target_set" in target:       # the exp2 targets really move the vibrato the model can't play
        assert t.target_space.name == "exp2" and len(t.target_space) == 11
    _check_mirror_run(tmp_path / "run", cfg)


@pytest.mark.parametrize("spec, why", [
    ("fluidsynth:0", "name the sound font"),
    ("fluidsynth:0@/usr/share/sounds/sf2/FluidR3_GM.sf2", "held out"),
    ("fluidsynth:0@/usr/share/sounds/sf2/default-GM.sf2", "held out"),      # a link to FluidR3 here
    ("fluidsynth:0@/opt/fonts/TimGM6mb.sf2", "held out"),
    ("fluidsynth:0@/opt/fonts/MuseScore_General.sf3", "held out"),
    ("fluidsynth:0@/usr/share/sounds/sf2/sf_GMbank.sf2", "reserved"),        # our own held-out sets
])
def test_training_refuses_held_out_sound_sources(spec, why):
    """No training config may render a held-out sound font (as targets or as the synth in the loop)."""
    if spec.endswith("default-GM.sf2"):
        link = Path("/usr/share/sounds/sf2/default-GM.sf2")
        require(link.exists() and "fluidr3" in link.resolve().name.lower(), "default-GM.sf2 -> FluidR3")
    with pytest.raises(ValueError, match=why):
        merge_config({"data": {"target_synth": spec}})
    with pytest.raises(ValueError, match=why):
        merge_config({"data": {"target_synth": {"piano": 1.0, spec: 1.0}}})
    with pytest.raises(ValueError, match=why):
        merge_config({"synth": {"spec": spec}})


def test_local_pitch_readout_only_where_the_classes_were_trained():
    """The argmax of the pitch classes means something only after the supervised cross-entropy
    (init, the mirror rounds' supervised anchor, or supervised mode); a pure mirror run keeps the
    global read-out it was trained with, unless the config says otherwise."""
    from rtmirror.models.train.trainer import encoder_kwargs
    pure = merge_config({"init": {"enabled": False}, "mirror": {"encoder_sup_weight": 0.0}})
    assert encoder_kwargs(pure)["pitch_readout"] == 0
    assert encoder_kwargs(merge_config({"init": {"enabled": False}, "mirror": {"encoder_sup_weight": 0.0},
                                        "encoder": {"pitch_readout": 2}}))["pitch_readout"] == 2
    for trained in (merge_config({}), merge_config({"mode": "supervised", "init": {"enabled": False}}),
                    merge_config({"init": {"enabled": False}, "mirror": {"encoder_sup_weight": 0.5}})):
        assert "pitch_readout" not in encoder_kwargs(trained)      # EncoderConfig's default (4)


def test_world_targets_mix_augment_notes_and_warm_start(tmp_path):
    """The world recipe in small: targets from a weighted mix of the wide and the built-in voice
    through rooms and microphones, their notes supervised (knobs only for the built-in voice's
    melodies), E and D started from a finished run's weights."""
    base = tiny(init={"decoder_epochs": 2, "encoder_epochs": 1}, mirror={"rounds": 0},
                data={"n": 4, "n_random": 8, "n_val": 2})
    first = train(base, tmp_path / "base", progress=False)
    cfg = tiny(data={"n": 8, "n_random": 8, "n_val": 4, "target_synth": {"wide": 0.5, "builtin": 0.5}},
               augment={"enabled": True},
               init={"decoder_epochs": 0, "encoder_epochs": 0, "from_checkpoint": str(tmp_path / "base" / "checkpoint")},
               mirror={"rounds": 1, "decoder_epochs": 1, "encoder_epochs": 2, "target_note_weight": 1.0,
                       "encoder_sup_weight": 0.5})
    t = Trainer(cfg, tmp_path / "world", progress=False)
    t.warm_start(cfg["init"]["from_checkpoint"])
    for a, b in ((first.encoder, t.encoder), (first.decoder, t.decoder)):
        for p, q in zip(a.state_dict().values(), b.state_dict().values()):
            assert torch.equal(p, q)
    t = train(cfg, tmp_path / "world", progress=False)
    assert t.target_spec.sources == (("wide", 0.5), ("builtin", 0.5)) and t.target_spec.augment["enabled"]
    src = np.load(tmp_path / "world" / "data" / "target.source.npy")
    np.testing.assert_array_equal(t.target_known, src == 1)
    assert 0 < t.target_known.sum() < len(src)
    r = rows(tmp_path / "world")
    assert [x["phase"] for x in r] == ["decoder", "encoder", "encoder"]
    enc = [x for x in r if x["phase"] == "encoder"]
    assert all(math.isfinite(float(x["loss_target_sup"])) and float(x["loss_target_sup"]) > 0 for x in enc)
    assert 0 <= float(enc[-1]["val_pitch_acc"]) <= 1
    # a checkpoint with other controls is refused with a line that says why
    other = tiny(data={"set": "live"}, init={"from_checkpoint": str(tmp_path / "base" / "checkpoint")})
    with pytest.raises(ValueError, match="control_space differs"):
        Trainer(other, tmp_path / "x", progress=False).warm_start(other["init"]["from_checkpoint"])


def test_target_notes_mask_the_knobs_of_foreign_melodies():
    from rtmirror.models.train.losses import supervised_loss
    rng = np.random.default_rng(0)
    truth = torch.from_numpy(rng.random((4, 5, 30))).float()
    truth[:, 1] = (truth[:, 1] > 0.3).float()
    pred = truth.clone()
    pred[2:, 3:] = 1.0 - truth[2:, 3:]          # knobs wrong only in melodies 2 and 3
    _, all_known = supervised_loss(pred, None, truth, 0, 1, 61)
    _, masked = supervised_loss(pred, None, truth, 0, 1, 61, knobs_known=torch.tensor([1.0, 1.0, 0.0, 0.0]))
    assert all_known["knobs"] > 0.01 and masked["knobs"] == 0.0
    assert masked["gate"] == all_known["gate"] and masked["pitch"] == all_known["pitch"]
