"""Token data: evaluation text bundled with the package or read from files."""
