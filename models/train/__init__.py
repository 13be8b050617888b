"""Training (research side): the MirrorNet trainer (trainer.py: decoder init, mirror rounds,
encoder rounds, resume) and its losses (losses.py). The synth in the loop renders through the
one render path, rtmirror.synth.render."""
