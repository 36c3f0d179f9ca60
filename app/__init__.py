"""HarmonicRNN Studio, the desktop app (PyQt6 + pyqtgraph). Start it with `harmonic-studio`.

Threads: widgets are touched only from the GUI thread. Loading, compiling, generating
and exporting run in worker threads (`app.workers`) that report through Qt signals; the
live views are fed by one display timer (`app.monitor`) from the pipeline's program tap.
"""
