"""thinkgate: testbed."""
