"""Networks of layer specs, training, data, and files (saved models, the heatmapping.org tutorial format)."""
