"""Can this account hold the cluster: pure checks over fetched state, and the fetching."""
