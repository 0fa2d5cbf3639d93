"""Training curves of one SAETrainer run: per SAE, per logged step, loss / L0 / FVU / dead fraction."""

from __future__ import annotations

import dataclasses
from typing import Any

from mechscope.results import Result


@dataclasses.dataclass
class TrainingHistory(Result):
    """names: SAE names; steps: logged steps; metrics[name][metric] -> values aligned with steps."""

    names: list[str] = dataclasses.field(default_factory=list)
    steps: list[int] = dataclasses.field(default_factory=list)
    metrics: dict[str, dict[str, list[float]]] = dataclasses.field(default_factory=dict)

    def record(self, step: int, values: dict[str, dict[str, float]]) -> None:
        self.steps.append(step)
        for name, row in values.items():
            per = self.metrics.setdefault(name, {})
            for key, value in row.items():
                per.setdefault(key, []).append(float(value))

    def last(self, name: str | None = None) -> dict[str, float]:
        """The most recent logged metrics of one SAE (the first one by default)."""
        name = name or self.names[0]
        return {k: v[-1] for k, v in self.metrics.get(name, {}).items() if v}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainingHistory:
        return cls(names=list(d["names"]), steps=list(d["steps"]), metrics=d["metrics"])

    def figure(self):
        from plotly.subplots import make_subplots

        panels = ["loss", "l0", "fvu", "dead_fraction"]
        fig = make_subplots(rows=1, cols=len(panels), subplot_titles=["loss", "L0", "FVU", "dead fraction"])
        for name in self.names:
            for col, key in enumerate(panels, start=1):
                fig.add_scatter(x=self.steps, y=self.metrics.get(name, {}).get(key, []), name=name,
                                legendgroup=name, showlegend=col == 1, row=1, col=col)
        fig.update_layout(title="SAE training", height=320)
        return fig
