"""The ASGI layer: `SupervisorMiddleware`, the lifespan bridge that composes the
supervisor with the app's own lifespan, websockets the supervisor can close, and the
endpoints the middleware answers itself.
"""
