"""HarmonicRNN Studio, the desktop app (PyQt6 + pyqtgraph). Start it with `harmonic-studio`.

Threads: widgets are touched only from the GUI thread. Loading, compiling, generating
and exporting run in worker threads (`app.workers`) that report through Qt signals; the
live views read thread-safe view buffers (`app.view_buffer`) from QTimers.
"""
