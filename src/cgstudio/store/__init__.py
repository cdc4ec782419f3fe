"""Where models come from: the local store and its registry, Hub pulls, the catalog of known
CodeGemma files, the demo models assembled from PyPI packages, and name resolution."""
