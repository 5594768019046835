"""What people read: metrics, pictures, the leaderboard, model cards, the torch.export program."""
