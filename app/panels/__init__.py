"""The window's side panels: transport, model, controls, seed audio, effects."""
