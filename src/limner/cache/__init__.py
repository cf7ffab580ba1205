"""The result cache. Torch-free and used by the API: ``keys``, ``modes``, ``store`` (entries in
the job store), ``submit`` (answers at submit time). Worker side: ``worker`` (lookups before a
batch runs), ``slots`` + ``lexicon`` + ``slot_index`` (the default semantic method),
``semantic`` (embeddings and the faiss index), ``approximate`` + ``latents`` + ``resume``
(reuse of cached intermediate latents, NIRVANA)."""
