"""rtmirror.models."""
