"""rtmirror.synth."""
