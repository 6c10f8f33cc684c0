"""The query and control API under ``/api`` (bearer ADMIN_TOKEN), served by producers.app."""
