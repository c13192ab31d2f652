"""The web service: ``create_app`` builds the FastAPI app (see ``hashseek.service.app``).

``create_app`` is imported on first use, so that the CLI can read the service's settings
(``hashseek.service.config``) without loading FastAPI and the models."""


def __getattr__(name: str):
    if name == "create_app":
        from hashseek.service.app import create_app
        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
