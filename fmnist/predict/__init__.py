"""The predict command: user pictures into Fashion-MNIST form, classified by a trained model."""
