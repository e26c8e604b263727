"""Local demo systems: a seeded Tryton server for the demo command and the tests."""
