from fairlatent.models.thresholds import calibrated_threshold, f1_best_threshold  # noqa: F401  (moved; shim)
