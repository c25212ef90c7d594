"""thinkgate: router."""
