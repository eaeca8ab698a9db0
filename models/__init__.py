"""The shipped spot-CNN weights and model card (this folder is the top-level ``models/`` of the repository,
mapped into the package as ``laue_live.models`` by the symlink ``laue_live/models``)."""
