"""The leaderboard: every model's headline numbers, ranked by test accuracy."""

# (key, title, format) of each column, in order.
COLUMNS = (
    ("model", "model", "{}"),
    ("test_accuracy", "test acc", "{:.4f}"),
    ("test_macro_f1", "macro-F1", "{:.4f}"),
    ("test_loss", "test loss", "{:.4f}"),
    ("best_val_accuracy", "best val acc", "{:.4f}"),
)  # no wall time: a rerun of the same params must leave the leaderboard as it was (times: reports/timing/)


def rank(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda row: (-row["test_accuracy"], row["model"]))


def cells(row: dict) -> list[str]:
    return [form.format(row[key]) if key in row else "-" for key, _, form in COLUMNS]


def markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(title for _, title, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells(row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"
