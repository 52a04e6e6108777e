"""Training: fit the routed recommenders from the store and publish versioned artifacts."""

from kosmos.training.artifacts import ArtifactError, Artifacts, Version
from kosmos.training.trainer import TrainResult, train

__all__ = ["ArtifactError", "Artifacts", "TrainResult", "Version", "train"]
