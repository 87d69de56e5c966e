"""The Metropolitan Museum's open-access sources: the MetObjects CSV, the Collection API crawler,
and a local mirror of the API to test and demo against.

Network code lives here and does no image decoding (header parsing for validation only).
"""
