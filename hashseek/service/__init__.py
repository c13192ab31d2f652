from hashseek.service.app import create_app  # noqa: F401
