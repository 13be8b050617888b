"""rtmirror.frontend."""
