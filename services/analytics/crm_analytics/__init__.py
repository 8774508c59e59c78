"""Analytics service: read-model projections built from the other contexts' events."""
