"""docs/simulator.md documents every scenario parameter with its current default."""

from pathlib import Path

from ketaweight.sources.simulator.scenario import Scenario

DOC = (Path(__file__).resolve().parents[3] / "docs" / "simulator.md").read_text(encoding="utf-8").split("## Parameters")[1]


def test_every_parameter_is_documented_with_its_default():
    missing = []
    for section in ("population", "treatment", "pharmacology", "pathways", "confounding", "observation", "negative_controls"):
        model = Scenario.model_fields[section].annotation
        defaults = model()
        for name in model.model_fields:
            value = getattr(defaults, name)
            row = next((line for line in DOC.splitlines() if line.startswith(f"| `{name}` |")), None)
            if row is None or (not isinstance(value, dict) and f"| {value} |" not in row):
                missing.append(f"{section}.{name}")
    assert not missing, f"undocumented or stale in docs/simulator.md: {missing}"
