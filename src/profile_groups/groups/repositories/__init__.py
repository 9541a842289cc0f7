"""Every SQL statement of profile groups, one module per table group."""
