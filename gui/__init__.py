"""rtmirror.gui."""
