from projects.image_text import contrastive_losses, retrieval, two_tower, zero_shot  # noqa: F401
