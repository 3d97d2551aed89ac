"""Web layer: every page and request-bound helper (views, forms, who is signed
in, re-authentication, the request's facts). Imports services, never the reverse."""
