"""Data sets: built-in (digits, piano) and any folder of audio, one on-disk format.

A data set is a directory:

    manifest.json             what it is, where it came from, clips and hours per split
    {split}_tokens.npy        uint8 [N, clip_len]: mu-law classes (docs/spec.md §1), padded with 128
    {split}_lengths.npy       int32 [N]: real samples of each clip (the rest is padding)
    {split}_labels.npy        int16 [N]: class label (digits 0-9), -1 where none

Splits are "train", "valid" and "test". The loader memory-maps the arrays.
"""
