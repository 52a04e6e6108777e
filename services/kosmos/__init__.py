"""Kosmos: a personalization cluster.

Services live in subpackages (`kosmos.profile`, `kosmos.feedback`, `kosmos.recommendation`),
the plugin contract in `kosmos.plugin`, the Python client in `kosmos.client`.
"""

__version__ = "0.1.0"
