"""Errors of bundles and backends (part of the :mod:`sonoedge.errors` hierarchy)."""

from __future__ import annotations

from sonoedge.errors import ConfigError


class BundleError(ConfigError):
    """A bundle is malformed, tampered with, or cannot run on the chosen device."""


class SignatureError(BundleError):
    """A bundle signature is missing, invalid, or made by a key that is not trusted."""


class UntrustedKeyError(SignatureError):
    """A bundle is signed, but by a key that is not among the trusted keys."""
