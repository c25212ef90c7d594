"""thinkgate: evals."""
