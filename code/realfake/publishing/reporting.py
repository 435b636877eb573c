"""The reproduction report's writer: Markdown sections and PNG figures in one folder, every figure also in
results.json (strict JSON: a figure that does not exist is null)."""
import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd


class Report:
    """Markdown sections and PNG figures written into one folder, and every figure as results.json."""

    def __init__(self, out, stamp):
        self.out, self.lines, self.results = Path(out), [stamp, ""] if stamp else [], {}
        self.out.mkdir(parents=True, exist_ok=True)

    def text(self, *lines):
        self.lines += [*lines, ""]

    def table(self, frame, floatfmt=".4f"):
        self.text(markdown(frame, floatfmt))

    def figure(self, fig, name, caption):
        fig.savefig(self.out / name, dpi=110, bbox_inches="tight")
        plt.close(fig)
        self.text(f"![{caption}]({name})")

    def write(self):
        (self.out / "results.json").write_text(json.dumps(finite(self.results), indent=2, default=float) + "\n")
        path = self.out / "report.md"
        path.write_text("\n".join(self.lines))
        return path


def finite(value):
    """`value` with every NaN (a figure that does not exist, such as the original study's missing ones) as None, so
    that results.json is strict JSON."""
    if isinstance(value, dict):
        return {key: finite(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return None if isinstance(value, float) and value != value else value


def markdown(frame, floatfmt=".4f"):
    """A table as Markdown: whole-number columns as integers, the others with `floatfmt`."""
    frame = frame.copy()
    for column in frame.columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        if values.notna().all() and (values % 1 == 0).all() and frame[column].dtype != bool:
            frame[column] = values.astype(int).astype(str)
    return frame.to_markdown(floatfmt=floatfmt)
