"""Distribution metrics of subgraph outputs against the full model's: TV, KL, top-1, ν, entropy, loss."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

NU_LEVELS = (0.01, 0.05, 0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.90, 0.99)


@dataclass
class Metrics:
    """How K subgraph distributions compare with the full model's; each field is [K]."""

    tv: np.ndarray  # total variation distance
    kl: np.ndarray  # KL(full ‖ subgraph), nats
    top1: np.ndarray  # bool: same top-1 token as the full model
    nu: np.ndarray  # shared nucleus level, percent
    entropy: np.ndarray  # the subgraph distribution's entropy, nats
    loss: np.ndarray  # -log p(actual next token), nats; NaN where the text ends
    topk_token: np.ndarray  # [K, k] int64 the k most probable tokens, most probable first
    topk_prob: np.ndarray  # [K, k] their probabilities


def distribution_metrics(full_logits: torch.Tensor, logits: torch.Tensor, target: int | None, topk: int = 5) -> Metrics:
    """Compare subgraph distributions with the full model's, all in float32.

    full_logits: [V]; logits: [K, V]; target: the actual next token id or None; topk: how many
    of each subgraph's most probable tokens to keep.
    """
    logp_full = torch.log_softmax(full_logits.float(), dim=-1)  # [V]
    logp = torch.log_softmax(logits.float(), dim=-1)  # [K, V]
    p_full, p = logp_full.exp(), logp.exp()
    tv = 0.5 * (p - p_full).abs().sum(-1)  # [K]
    kl = (p_full * (logp_full - logp)).sum(-1).clamp_min(0.0)  # [K]
    top1 = logits.argmax(-1) == full_logits.argmax(-1)  # [K]
    entropy = -(p * logp).sum(-1)  # [K]
    loss = -logp[:, target] if target is not None else torch.full_like(tv, float("nan"))
    topk_prob, topk_token = ranked(p, min(topk, p.shape[-1]))  # [K, k] each
    return Metrics(
        tv=tv.double().numpy(),
        kl=kl.double().numpy(),
        top1=top1.numpy(),
        nu=shared_nucleus(p_full, p),
        entropy=entropy.double().numpy(),
        loss=loss.double().numpy(),
        topk_token=topk_token.numpy().astype(np.int64),
        topk_prob=topk_prob.double().numpy(),
    )


def ranked(p: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``width`` most probable tokens of each row of p [N, V], most probable first, ties in
    token-id order (as ``argmax`` breaks them): probabilities and ids, [N, width] each.

    ``topk`` alone leaves the order of equal values, and which of them make the cut, unspecified;
    a uniform row (every stratum short of the input) then has no defined "top-k"."""
    n_vocab = p.shape[-1]
    top = torch.topk(p, min(width + 1, n_vocab), dim=-1)  # one more, to see a tie across the cut
    ids, by_id = top.indices.sort(dim=-1)
    values, by_value = top.values.gather(-1, by_id).sort(dim=-1, descending=True, stable=True)
    ids = ids.gather(-1, by_value)
    if width < n_vocab:
        uniform = p.amax(-1) == p.amin(-1)  # [N]
        ids[uniform] = torch.arange(width + 1)
        torn = (values[:, width - 1] == values[:, width]) & ~uniform  # which tied tokens made the cut is arbitrary
        for row in torn.nonzero().flatten().tolist():  # rare: sort that row in full
            v, i = torch.sort(p[row], descending=True, stable=True)
            values[row], ids[row] = v[: width + 1], i[: width + 1]
    return values[:, :width], ids[:, :width]


def shared_nucleus(p_full: torch.Tensor, p: torch.Tensor, levels: tuple[float, ...] = NU_LEVELS) -> np.ndarray:
    """ν: the largest level q for which the ordered top-q nuclei (each including the token that
    crosses q) of the full and subgraph distributions are identical; 0 when none is.

    p_full: [V]; p: [K, V]. Returns [K] in percent. Nuclei of any length are compared (a flat
    distribution's 99 % nucleus can hold most of the vocabulary), without sorting the subgraphs'
    distributions: a subgraph's top n tokens are the full model's top n, in order, exactly when its
    probabilities read in the full model's order decrease over the first n and the n-th beats every
    later one (ties ranked by token id, as ``argmax`` breaks them).
    """
    n_vocab = p_full.numel()
    sorted_full, order = torch.sort(p_full, descending=True, stable=True)  # [V] the full model's ranking
    width = min(n_vocab, int((sorted_full.cumsum(0) < max(levels)).sum()) + 17)  # its largest nucleus, with room for rounding
    both = torch.cat([p_full[None], p])  # [1 + K, V], row 0 the full model
    rows = torch.cat([torch.tensor([0]), 1 + (p.argmax(-1) == order[0]).nonzero().flatten()])  # only a shared top-1 can share a nucleus

    def keys(probs: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:  # a larger key is ranked first; ties by smaller id
        return (probs.contiguous().view(torch.int32).long() << 20) | ((1 << 20) - 1 - ids)  # non-negative float32 bits are monotone

    candidates = both[rows]  # [C, V]
    while True:
        head = candidates[:, order[:width]]  # [C, W] in the full model's order
        key = keys(head, order[:width])  # [C, W]
        later = torch.cat(
            [key.flip(-1).cummax(-1).values.flip(-1)[:, 1:], key.new_full((len(rows), 1), -1)], -1
        )  # [C, W] best key after each
        rest = keys(candidates, torch.arange(n_vocab)).index_fill(1, order[:width], -1).amax(-1)  # [C] the best key past the head
        prefix = (key[:, :-1] > key[:, 1:]).int().cumprod(-1).sum(-1) + 1  # [C] leading tokens in the full model's order
        mass = head.cumsum(-1)  # [C, W]; row 0 sums as the others do, so the full graph agrees with itself
        if width == n_vocab or int((mass[0] < max(levels)).sum()) < width:
            break
        width = n_vocab
    out = np.zeros(1 + p.shape[0])
    for q in levels:
        n = min(int((mass[0] < q).sum()) + 1, n_vocab)  # the full nucleus; every token if rounding leaves q unreached
        beats_the_rest = (key[:, n - 1] > later[:, n - 1]) & (key[:, n - 1] > rest)  # ties ranked by id, inside the head or past it
        same = (prefix >= n) & beats_the_rest & ((mass[:, n - 1] >= q) | (n == n_vocab))
        if n > 1:
            same &= mass[:, n - 2] < q
        out[rows[same].numpy()] = 100 * q
    return out[1:]


def tv_empty_graph(full_logits: torch.Tensor, empty_logits: torch.Tensor) -> np.ndarray:
    """[R] TV(p_empty, p_full), p_empty the output of the empty graph (a zero root state through the
    final norm and unembedding): the uniform distribution for RMSNorm models, softmax(W_U β_f) under
    LayerNorm (docs/method.md §8, §9.2). full_logits: [R, V]; empty_logits: [V]."""
    p_full, p_empty = torch.softmax(full_logits.float(), dim=-1), torch.softmax(empty_logits.float(), dim=-1)  # [R, V], [V]
    return (0.5 * (p_full - p_empty).abs().sum(-1)).double().numpy()
