"""Target profiles, inference backends and signed model bundles."""
