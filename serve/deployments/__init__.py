"""The Ray Serve deployments: one module each; the graph is bound in `serve.app`."""
