"""What token embeddings encode: nearest neighbours in W_E and linear probes of simple token properties.

Properties come from each token's own text, so they exist for every tokenizer: whether it starts
with a space (a word start), is capitalised, is all digits, is longer than the median token.
Each is probed from W_E rows with a held-out split and compared with a shuffled-label control.
Special tokens and raw-byte tokens (``<0x0A>``) are left out.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import torch

from mechscope.errors import NotApplicableError
from mechscope.geometry.probes import probe_accuracy
from mechscope.results import Result

WORD_START_MARKERS = ("Ġ", "▁")          # GPT-2 byte-level BPE, SentencePiece
_BYTE_TOKEN = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")
DEFAULT_QUERIES = (" the", " king", " three", " Monday", " red", " dog", " happy", " went", "ing", " 1")


@dataclasses.dataclass
class TokenEmbeddingConfig:
    queries: tuple[str, ...] = DEFAULT_QUERIES   # tokens whose neighbours are listed (those in the vocab)
    n_neighbours: int = 8
    max_per_class: int = 1000                   # probe examples per class after balancing
    seed: int = 0


@dataclasses.dataclass
class TokenProperty:
    """One probed property: how many tokens have it, probe vs control held-out accuracy (or why skipped)."""

    name: str
    n_positive: int
    n_negative: int
    accuracy: float | None = None
    control_accuracy: float | None = None
    skipped: str | None = None


@dataclasses.dataclass
class TokenEmbeddingResult(Result):
    """neighbours: query token -> its n nearest tokens by cosine similarity of W_E rows (self excluded)."""

    n_tokens: int
    properties: list[TokenProperty]
    neighbours: dict[str, list[str]]
    neighbour_similarity: dict[str, list[float]]

    @property
    def probed(self) -> list[TokenProperty]:
        return [p for p in self.properties if p.skipped is None]

    def figure(self):
        import plotly.graph_objects as go

        names = [p.name for p in self.probed]
        fig = go.Figure([
            go.Bar(x=names, y=[p.accuracy for p in self.probed], name="probe on W_E"),
            go.Bar(x=names, y=[p.control_accuracy for p in self.probed], name="shuffled-label control"),
        ])
        fig.add_hline(y=0.5, line_dash="dot", annotation_text="chance")
        fig.update_layout(title="linear probes of token properties from token embeddings",
                          yaxis_title="held-out accuracy (balanced)", yaxis_range=[0, 1], barmode="group")
        return fig


def token_texts(model) -> tuple[np.ndarray, list[str]]:
    """(ids, texts) of the ordinary tokens: word-start markers turned into a leading space,
    special and raw-byte tokens dropped."""
    tok = model.tokenizer
    special = set(tok.all_special_ids or [])
    ids, texts = [], []
    raw = tok.convert_ids_to_tokens(list(range(model.cfg.d_vocab)))
    for i, piece in enumerate(raw):
        if i in special or piece is None or _BYTE_TOKEN.match(piece):
            continue
        if piece[:1] in WORD_START_MARKERS:
            piece = " " + piece[1:]
        piece = piece.replace("Ċ", "\n").replace("ĉ", "\t")
        if piece:
            ids.append(i)
            texts.append(piece)
    return np.asarray(ids), texts


def token_properties(texts: list[str]) -> dict[str, np.ndarray]:
    """Boolean arrays [n_tokens] of simple surface properties of each token's text."""
    body = [t.strip() for t in texts]
    lengths = np.array([len(b) for b in body])
    return {
        "starts with space": np.array([t.startswith(" ") for t in texts]),
        "capitalised": np.array([b[:1].isalpha() and b[:1].isupper() for b in body]),
        "is digits": np.array([b.isdigit() for b in body]),
        "longer than median": lengths > np.median(lengths),
    }


def nearest_neighbours(embeddings: torch.Tensor, query_ids: list[int], k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids [q k], cosine similarities [q k]) of each query row's k nearest rows, itself excluded."""
    unit = torch.nn.functional.normalize(embeddings.float(), dim=-1)
    sims = unit[query_ids] @ unit.T
    sims[torch.arange(len(query_ids)), query_ids] = -float("inf")
    top = sims.topk(k, dim=-1)
    return top.indices, top.values


def token_embedding_geometry(model, cfg: TokenEmbeddingConfig | None = None) -> TokenEmbeddingResult:
    cfg = cfg or TokenEmbeddingConfig()
    ids, texts = token_texts(model)
    if len(ids) < 40:
        raise NotApplicableError(f"only {len(ids)} ordinary tokens in the vocabulary: too few to probe")
    w_e = model.W_E.detach().float().cpu()
    vectors = w_e[ids].numpy()
    props = []
    for name, labels in token_properties(texts).items():
        prop = TokenProperty(name, int(labels.sum()), int((~labels).sum()))
        if min(prop.n_positive, prop.n_negative) < 10:
            prop.skipped = "fewer than 10 tokens in one class"
        else:
            score = probe_accuracy(vectors, labels, max_per_class=cfg.max_per_class, seed=cfg.seed)
            prop.accuracy, prop.control_accuracy = score.accuracy, score.control_accuracy
        props.append(prop)
    text_of = dict(zip(ids.tolist(), texts, strict=True))
    by_text: dict[str, int] = {}
    for i, t in zip(ids.tolist(), texts, strict=True):
        by_text.setdefault(t, i)
    queries = [(q, by_text[q]) for q in cfg.queries if q in by_text]
    if not queries:   # fall back to the first few word-start tokens of the vocabulary
        queries = [(t, i) for i, t in zip(ids.tolist(), texts, strict=True) if t.startswith(" ")][:5]
    neighbours, similarity = {}, {}
    if queries:
        k = min(cfg.n_neighbours, len(w_e) - 1)
        near, sims = nearest_neighbours(w_e, [i for _, i in queries], k)
        for (text, _), row, sim in zip(queries, near, sims, strict=True):
            neighbours[text] = [text_of.get(int(j), f"<id {int(j)}>") for j in row]
            similarity[text] = [round(float(s), 4) for s in sim]
    return TokenEmbeddingResult(n_tokens=len(ids), properties=props, neighbours=neighbours,
                                neighbour_similarity=similarity)
