"""The result cache: keys and modes (torch-free). Storage is ``limner.store.cache``; the
semantic index and the worker-side lookup are in ``limner.runtime``."""
