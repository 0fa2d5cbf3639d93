"""MLPs as key-value memories: neuron keys and values, causal tracing, key covariance, ROME and MEMIT."""
