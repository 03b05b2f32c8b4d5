"""Interactive medical image segmentation service."""
