"""HOW FAST, never WHAT: device choice, execution strategy, convolution layouts, precision, heap policy."""
