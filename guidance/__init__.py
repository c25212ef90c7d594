"""thinkgate: guidance."""
