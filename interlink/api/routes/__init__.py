"""HTTP routes, one module per resource: handlers validate, delegate, and shape the answer."""
