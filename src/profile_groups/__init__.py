"""Profile Groups: named, addressable groups of profiles, static or rule-driven."""

__version__ = "0.1.0"
