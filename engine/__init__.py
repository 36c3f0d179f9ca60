"""HarmonicRNN engine: the model and everything that runs it without a GUI.

Nothing here imports Qt or training code. See `engine.model` for the functional API that
training, the generator and the app share.
"""
