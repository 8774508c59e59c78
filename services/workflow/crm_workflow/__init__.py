"""Workflow service: decides assignments (and later timers and rules) from other contexts' events."""
