"""The result cache: keys and modes (torch-free). Storage is ``limner.cache.store``; the
semantic index and the worker-side lookup are in ``limner.runtime``."""
