"""Facts rackform holds about AWS and hardware (catalog, prices, peaks, service limits), each dated and sourced,
and the code that refreshes them from AWS."""
