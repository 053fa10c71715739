"""rdistill: distil image-retrieval teachers into small students from cached teacher features."""
