// TussWeights module.
