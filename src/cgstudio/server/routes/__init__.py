"""Thin routers: parse the dialect's request, hand a GenSpec to the service, format the answer."""
