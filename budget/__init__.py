"""thinkgate: budget."""
