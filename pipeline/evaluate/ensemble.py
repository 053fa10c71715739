"""Ensemble Mean (EM, Whiten-MTD §3 baseline): several teachers' similarities averaged at test time."""
from __future__ import annotations

import numpy as np


def ensemble_mean_features(features: list[np.ndarray]) -> np.ndarray:
    """Features whose inner products are the mean of the teachers' (l2-normalised) ones: [f_1..f_T] / √T."""
    return np.concatenate(features, axis=1) / np.sqrt(len(features))
