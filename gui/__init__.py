"""rtmirror.gui: the desktop window (PyQt6 + pyqtgraph) over the live engine.

`rtmirror gui [FILE.wav]` (gui/cli.py) -> `run_gui(...)` (gui/app.py) -> `MainWindow`
(gui/window.py), built from the widgets in gui/widgets.py. Importing this package does not
import Qt; the modules below it do.
"""
