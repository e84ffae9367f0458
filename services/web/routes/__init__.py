"""The web app's routes, one module per domain, each with a module-level `router` that
`services.web.app` includes."""
