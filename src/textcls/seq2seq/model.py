"""The RNN encoder-decoder of Bahdanau, Cho & Bengio (2015), with and without additive attention.

    encoder   a bidirectional GRU over the source embeddings; h(i) = [forward(i); backward(i)]
    attention additive ("additive"): e(t, i) = vᵀ tanh(W s(t-1) + U h(i)), padding masked to -inf
              before the softmax, alpha(t, ·) = softmax(e(t, ·)), c(t) = Σ_i alpha(t, i) h(i);
              none ("none", RNNenc of Cho et al. 2014): c(t) = the encoder's final states for every t
    decoder   a GRU cell: s(t) = GRU([y(t-1); c(t)], s(t-1)), s(0) = tanh(W_init [forward(last); backward(first)]),
              and a deep output tanh(W_o [s(t); c(t); y(t-1)]) -> vocabulary logits

`forward` (teacher forcing) returns `(logits, attention_weights)`, the weights (batch, target, source)
or None without attention: plotting works from these arrays. `greedy` decodes a batch; `beam` one
source at a time. The encoder runs on packed sequences, so padding changes no number.

Example:
    >>> model = Seq2Seq(source_vocab=40, target_vocab=30, attention="additive")
    >>> logits, weights = model(torch.tensor([[5, 6, 2]]), torch.tensor([[1, 1, 1]]), torch.tensor([[1, 7]]))
    >>> logits.shape, weights.shape
    (torch.Size([1, 2, 30]), torch.Size([1, 2, 3]))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from textcls.seq2seq.config import ATTENTIONS
from textcls.seq2seq.pairs import BOS, EOS, PAD


@dataclass
class Memory:
    """What the decoder reads from the encoder, computed once per batch."""

    states: torch.Tensor  # (batch, source, 2 * encoder_hidden): h(i)
    keys: torch.Tensor | None  # (batch, source, attention_size): U h(i), None without attention
    mask: torch.Tensor  # (batch, source) bool, True on real tokens
    summary: torch.Tensor  # (batch, 2 * encoder_hidden): [forward(last); backward(first)]

    def repeat(self, count: int) -> Memory:
        """This (one-row) memory `count` times, for the hypotheses of a beam."""
        return Memory(
            self.states.expand(count, -1, -1),
            None if self.keys is None else self.keys.expand(count, -1, -1),
            self.mask.expand(count, -1),
            self.summary.expand(count, -1),
        )


def never_special(logits: torch.Tensor) -> torch.Tensor:
    """`logits` (..., vocab) with `<pad>` and `<s>` ruled out: an output never holds them (an untrained
    decoder's argmax could pick them, and each output token labels one row of the alignment)."""
    return logits.index_fill(-1, torch.tensor([PAD, BOS], device=logits.device), float("-inf"))


class Seq2Seq(nn.Module):
    def __init__(
        self,
        source_vocab: int,
        target_vocab: int,
        attention: str = "additive",
        embedding_size: int = 64,
        encoder_hidden: int = 64,
        decoder_hidden: int = 128,
        attention_size: int = 64,
        dropout: float = 0.1,
    ):
        super().__init__()
        if attention not in ATTENTIONS:
            raise ValueError(f"attention: expected one of {ATTENTIONS}, found {attention!r}")
        self.attention = attention
        context = 2 * encoder_hidden
        self.source_embedding = nn.Embedding(source_vocab, embedding_size, padding_idx=PAD)
        self.encoder = nn.GRU(embedding_size, encoder_hidden, batch_first=True, bidirectional=True)
        self.init_state = nn.Linear(context, decoder_hidden)
        if attention == "additive":
            self.query = nn.Linear(decoder_hidden, attention_size, bias=False)  # W
            self.key = nn.Linear(context, attention_size)  # U (its bias is the tanh's bias)
            self.energy = nn.Linear(attention_size, 1, bias=False)  # v
        self.target_embedding = nn.Embedding(target_vocab, embedding_size, padding_idx=PAD)
        self.cell = nn.GRUCell(embedding_size + context, decoder_hidden)
        self.deep_output = nn.Linear(decoder_hidden + context + embedding_size, decoder_hidden)
        self.output = nn.Linear(decoder_hidden, target_vocab)
        self.dropout = nn.Dropout(dropout)

    # ---- encoder ----------------------------------------------------------------------------
    def encode(self, source_ids: torch.Tensor, source_mask: torch.Tensor) -> Memory:
        """source_ids, source_mask: (batch, source) -> the decoder's `Memory`."""
        lengths = source_mask.sum(dim=1).cpu()
        embedded = self.dropout(self.source_embedding(source_ids))  # (batch, source, embedding)
        packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
        outputs, final = self.encoder(packed)  # final: (2, batch, encoder_hidden)
        states, _ = pad_packed_sequence(outputs, batch_first=True, total_length=source_ids.shape[1])
        summary = torch.cat([final[0], final[1]], dim=-1)  # (batch, 2 * encoder_hidden)
        keys = self.key(states) if self.attention == "additive" else None  # (batch, source, attention)
        return Memory(states, keys, source_mask.bool(), summary)

    def initial_state(self, memory: Memory) -> torch.Tensor:
        return torch.tanh(self.init_state(memory.summary))  # (batch, decoder_hidden)

    # ---- one decoder step -------------------------------------------------------------------
    def attend(self, state: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor | None]:
        """state s(t-1): (batch, decoder_hidden) -> context c(t) (batch, 2 * encoder_hidden), alpha (batch, source)."""
        if memory.keys is None:
            return memory.summary, None
        energies = self.energy(torch.tanh(self.query(state)[:, None, :] + memory.keys)).squeeze(-1)  # (batch, source)
        # -inf before the softmax: padding gets exactly zero weight, and the rows still sum to 1
        alpha = torch.softmax(energies.masked_fill(~memory.mask, float("-inf")), dim=-1)
        context = torch.bmm(alpha[:, None, :], memory.states).squeeze(1)  # (batch, 2 * encoder_hidden)
        return context, alpha

    def step(
        self, previous: torch.Tensor, state: torch.Tensor, memory: Memory
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """previous y(t-1): (batch,) ids, state s(t-1) -> logits (batch, vocab), s(t), alpha (batch, source) or None."""
        embedded = self.dropout(self.target_embedding(previous))  # (batch, embedding)
        context, alpha = self.attend(state, memory)
        state = self.cell(torch.cat([embedded, context], dim=-1), state)  # (batch, decoder_hidden)
        hidden = torch.tanh(self.deep_output(torch.cat([state, context, embedded], dim=-1)))
        return self.output(self.dropout(hidden)), state, alpha

    # ---- teacher forcing --------------------------------------------------------------------
    def forward(
        self, source_ids: torch.Tensor, source_mask: torch.Tensor, target_in: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """target_in: (batch, target) starting with `<s>` -> logits (batch, target, vocab), and weights
        (batch, target, source) or None."""
        memory = self.encode(source_ids, source_mask)
        state = self.initial_state(memory)
        logits, weights = [], []
        for t in range(target_in.shape[1]):
            step_logits, state, alpha = self.step(target_in[:, t], state, memory)
            logits.append(step_logits)
            if alpha is not None:  # None without attention
                weights.append(alpha)
        attention = torch.stack(weights, dim=1) if weights else None
        return torch.stack(logits, dim=1), attention

    # ---- decoding ---------------------------------------------------------------------------
    @torch.inference_mode()
    def greedy(
        self, source_ids: torch.Tensor, source_mask: torch.Tensor, max_steps: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The most probable token at each step -> ids (batch, steps) ending in `</s>` or cut at
        `max_steps`, and weights (batch, steps, source) or None."""
        memory = self.encode(source_ids, source_mask)
        state = self.initial_state(memory)
        previous = torch.full((source_ids.shape[0],), BOS, dtype=torch.long, device=source_ids.device)
        finished = torch.zeros_like(previous, dtype=torch.bool)
        ids, weights = [], []
        for _ in range(max_steps):
            logits, state, alpha = self.step(previous, state, memory)
            previous = never_special(logits).argmax(dim=-1).masked_fill(finished, PAD)  # (batch,)
            ids.append(previous)
            if alpha is not None:  # None without attention
                weights.append(alpha)
            finished |= previous == EOS
            if bool(finished.all()):
                break
        attention = torch.stack(weights, dim=1) if weights else None
        return torch.stack(ids, dim=1), attention

    @torch.inference_mode()
    def beam(
        self, source_ids: torch.Tensor, source_mask: torch.Tensor, beam_size: int, max_steps: int
    ) -> tuple[list[int], torch.Tensor | None]:
        """Beam search for one source (1, source): the best hypothesis by mean log-probability per token,
        its ids (ending in `</s>` unless cut at `max_steps`) and weights (steps, source) or None.

        With `beam_size` 1 this is greedy decoding.
        """
        memory = self.encode(source_ids, source_mask)
        state = self.initial_state(memory)  # (hypotheses, decoder_hidden)
        hypotheses: list[tuple[list[int], list[torch.Tensor]]] = [([], [])]
        scores = torch.zeros(1, device=source_ids.device)  # (hypotheses,) summed log-probabilities
        finished: list[tuple[float, list[int], list[torch.Tensor]]] = []
        for _ in range(max_steps):
            previous = torch.tensor([ids[-1] if ids else BOS for ids, _ in hypotheses], device=source_ids.device)
            logits, state, alpha = self.step(previous, state, memory.repeat(len(hypotheses)))
            totals = scores[:, None] + F.log_softmax(never_special(logits), dim=-1)  # (hypotheses, vocab)
            best, flat = totals.flatten().topk(min(beam_size, totals.numel()))
            survivors, rows, new_scores = [], [], []
            for score, index in zip(best.tolist(), flat.tolist()):
                row, token = divmod(index, logits.shape[-1])
                ids, alphas = hypotheses[row]
                extended = (ids + [token], alphas + ([alpha[row]] if alpha is not None else []))
                if token == EOS:
                    finished.append((score / len(extended[0]), *extended))
                else:
                    survivors.append(extended)
                    rows.append(row)
                    new_scores.append(score)
            if len(finished) >= beam_size or not survivors:
                break
            hypotheses, state = survivors, state[rows]
            scores = torch.tensor(new_scores, device=source_ids.device)
        if not finished:  # cut at max_steps: the best unfinished hypothesis
            finished = [(score / len(ids), ids, alphas) for score, (ids, alphas) in zip(scores.tolist(), hypotheses)]
        _, ids, alphas = max(finished, key=lambda entry: entry[0])
        return ids, torch.stack(alphas) if alphas else None
