"""Classification metrics as pure functions of predicted and actual labels."""

import torch


def confusion(actual: torch.Tensor, predicted: torch.Tensor, classes: int) -> torch.Tensor:
    """counts[i, j] = images of class i predicted as class j."""
    flat = actual.long() * classes + predicted.long()
    return torch.bincount(flat, minlength=classes * classes).reshape(classes, classes)


def accuracy(counts: torch.Tensor) -> float:
    return (counts.diag().sum() / counts.sum()).item()


def per_class_accuracy(counts: torch.Tensor) -> list[float]:
    """Recall of each class: the share of its images predicted right."""
    return (counts.diag() / counts.sum(1).clamp(min=1)).tolist()


def macro_f1(counts: torch.Tensor) -> float:
    true_positive = counts.diag().double()
    precision = true_positive / counts.sum(0).clamp(min=1)
    recall = true_positive / counts.sum(1).clamp(min=1)
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return f1.mean().item()
