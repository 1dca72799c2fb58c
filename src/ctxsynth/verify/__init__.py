"""Verification of generated contexts: each check returns a verdict; the first failure names the reason."""

from ctxsynth.verify.checks import REASONS, VerifyConfig, verify_context

__all__ = ["REASONS", "VerifyConfig", "verify_context"]
