"""Colours shared by the views and the window."""

BACKGROUND = "#16181d"
PANEL = "#1f2229"
TEXT = "#d8dee9"
MUTED = "#7b8494"
ACCENT = "#5fb3b3"  # generated audio
SEED = "#e0a458"  # seed audio
RECORD = "#e06c75"
GRID = "#2c313a"
