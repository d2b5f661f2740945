"""zcache-forge: render, commit, export, build and boot the zcache patch series."""

__version__ = "0.1.0"
