"""Training: the loop and its one entry point, augmentation, several processes, progress, live signals."""
