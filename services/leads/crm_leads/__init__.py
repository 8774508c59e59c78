"""Leads service: capture, validation and normalisation, assignment of prospective customers."""
