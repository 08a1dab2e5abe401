"""The workflow APIs under /api/v1/ and /api/v2/: each one outcome a partner wants (schedule a visit,
share a lab result, check eligibility), not a table.

Each workflow has a module of services (``visits``, ``lab_shares``, ``eligibility``: every rule and
every write, transactional) and a module of views and serializers (``*_api``) that validate, call one
service and serialize. ``common`` holds what they share: opaque ids and cursor pagination.
"""
