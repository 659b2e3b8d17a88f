"""farl: deep reinforcement learning in very large action spaces by factoring them."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("farl")
except PackageNotFoundError:  # running from a checkout that was not installed
    __version__ = "0.0.0+unknown"
