"""rtmirror.export."""
