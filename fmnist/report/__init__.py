"""What people read: metrics, pictures, the leaderboard, model cards, the pull-request report."""
