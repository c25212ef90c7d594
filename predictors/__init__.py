"""thinkgate: predictors."""
