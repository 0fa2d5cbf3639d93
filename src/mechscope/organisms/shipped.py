"""Organisms shipped inside the package (src/mechscope/organisms/weights/<name>/)."""

from __future__ import annotations

from pathlib import Path

from mechscope.errors import ModelLoadError

DEFAULT_ORGANISM = "tiny-llama"   # textbook induction and a name mover; tiny-gpt2 keeps learned positions (C03, C04)
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def list_shipped() -> list[str]:
    """Names of the organisms whose weights are in the package."""
    if not WEIGHTS_DIR.is_dir():
        return []
    return sorted(p.name for p in WEIGHTS_DIR.iterdir() if (p / "config.json").is_file())


def shipped_path(name: str) -> Path:
    """Directory of a shipped organism: an HF checkpoint dir (from_pretrained works on it)."""
    path = WEIGHTS_DIR / name
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"no shipped organism named {name!r}; available: {list_shipped() or 'none'}. "
                             "Train one with `mechscope organism train PRESET --out DIR`")
    return path


def organism_file(path_or_name: str | Path, filename: str, how: str) -> Path:
    """`filename` inside an organism: given as the file itself, an organism directory, or a shipped
    name. `how` ends the error message: how such a file is made."""
    path = Path(path_or_name)
    if not path.exists():
        path = shipped_path(str(path_or_name))
    if path.is_dir():
        path = path / filename
    if not path.is_file():
        raise ModelLoadError(f"no {filename} at {path}; {how}")
    return path


def planted_summary(name: str) -> dict:
    """What a shipped organism plants, from its measured files: {"kind", "mechanisms", "claims"}.

    Compiled and enforced organisms: the circuit's task, nodes and claims (circuit.json). Trained organisms: each
    claim's behaviour with its measured value, and the claims whose target the weights meet
    (mechanisms.json), kind "trained + enforced" when heads were trained to a role (a name mover, an induction head) beside free ones;
    an empty dict entry when the file is missing."""
    import json

    path = shipped_path(name)
    if (path / "circuit.json").is_file():
        circuit = json.loads((path / "circuit.json").read_text(encoding="utf-8"))
        nodes = [n for n in circuit["nodes"] if n not in ("input", "logits")]
        kind = "enforced" if "enforcement" in circuit else "compiled"     # trained to a circuit, or written
        text = f"{circuit['task']} ({', '.join(nodes)})"
        if "faithfulness" in circuit["metrics"]:
            text += f"; node faithfulness {circuit['metrics']['faithfulness']:.2f}"
        return {"kind": kind, "mechanisms": text, "claims": circuit.get("claims", [])}
    if (path / "mechanisms.json").is_file():
        measured = json.loads((path / "mechanisms.json").read_text(encoding="utf-8"))
        claims = measured["claims"]
        met, missed = ([f"{c['metric']} {c['value']:.2f}" for c in claims.values() if c["planted"] is hit]
                       for hit in (True, False))
        top = measured["heads"]["lagged-induction"][0]
        text = f"met: {', '.join(met) or 'none'}; missed: {', '.join(missed) or 'none'}; top induction head " \
               f"{top['head']} (lag {top['lag']}, {top['score']:.2f})"
        writer = measured.get("name_movers", {}).get("by_direct_effect", [None])[0]
        if writer:   # the head writing most of IO - S at the end, and where it reads from
            text += (f"; IOI answer head {writer['head']} (direct effect {writer['logit_effect']:.2f}, attends "
                     f"IO {writer['attention_to_io']:.2f}, S {writer['attention_to_s']:.2f})")
        card = path / "training_card.json"
        preset = json.loads(card.read_text(encoding="utf-8"))["preset"] if card.is_file() else {}
        enforced = preset.get("name_mover") or preset.get("enforce")
        kind = "trained + enforced" if enforced else "trained"      # heads trained to a role, the rest free
        return {"kind": kind, "mechanisms": text, "claims": [k for k, c in claims.items() if c["planted"]]}
    return {"kind": "trained", "mechanisms": "not measured", "claims": []}
