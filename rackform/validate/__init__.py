"""The validation rules: one module per area, one Rule type for specs and workloads."""
