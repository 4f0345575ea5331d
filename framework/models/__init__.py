"""The plain ViT, the backbone any config may use; importing this package registers it."""

from framework.models import vit  # noqa: F401  (registers its models)
