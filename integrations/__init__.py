"""Clients of outside systems (WhatsApp gateways, later Odoo), each behind a small interface.

Workers depend on the interface, never on a vendor's wire format, so a gateway can be swapped by
a setting and faked in tests by a local HTTP server speaking the same format.
"""
