"""Debian-package audio data for TUSS training: collect.py (cache), mixtures.py (on-the-fly mixtures)."""
