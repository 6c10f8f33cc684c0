"""Pure domain rules (no I/O): phone numbers, message types, delivery-status order.

Producers use them to validate, workers to decide; neither has to import the other.
"""
