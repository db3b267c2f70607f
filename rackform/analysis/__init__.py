"""Reading results: headline figures, reports against limits and prices, advice across runs."""
