"""rtmirror.gui: the desktop window (PyQt6 + pyqtgraph) over the live engine.

`rtmirror gui [FILE.wav]` (rtmirror/cli/gui.py) -> `run_gui(LiveOptions)` (gui/app.py) -> `MainWindow`
(gui/window.py), built from the widgets in gui/widgets.py. Importing this package does not
import Qt; the modules below it do.
"""
