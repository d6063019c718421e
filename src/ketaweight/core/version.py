"""The installed ketaweight version (kept out of the package root so the ground floor never
imports the facade above it)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ketaweight")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"
