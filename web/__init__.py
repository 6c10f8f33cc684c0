"""The team inbox pages (/inbox)."""
