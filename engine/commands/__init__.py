"""The engine's `harmonic` subcommands, one module each."""
