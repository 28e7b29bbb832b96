"""TitansEncoder: shapes, causality, streaming, padding, ablations, precision, compilation."""

from __future__ import annotations

import pytest
import torch

from titans_seq import EncoderState, TitansEncoder

from .helpers import VARIANTS, run_in_pieces, tiny_encoder


def random_input(batch=2, length=23, dim=16, seed=1):
    return torch.randn(batch, length, dim, generator=torch.Generator().manual_seed(seed),
                       dtype=torch.float64)


@pytest.mark.parametrize("variant", VARIANTS)
def test_shapes_and_state(variant):
    encoder = tiny_encoder(variant)
    y, state = encoder(random_input())
    assert y.shape == (2, 23, 16)
    assert isinstance(state, EncoderState) and len(state.blocks) == 2
    assert state.blocks[0].memory.tokens_seen.tolist() == [23 + 2 * (variant != "mac")] * 2
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("step", [0, 5, 6, 13, 22])
def test_causal_outputs_ignore_the_future(variant, step):
    encoder = tiny_encoder(variant)
    x = random_input()
    changed = x.clone()
    changed[:, step + 1:] += torch.randn_like(changed[:, step + 1:])
    y, _ = encoder(x)
    y_changed, _ = encoder(changed)
    assert torch.equal(y[:, :step + 1], y_changed[:, :step + 1])
    if step + 1 < x.shape[1]:
        assert not torch.allclose(y[:, step + 1:], y_changed[:, step + 1:])


@pytest.mark.parametrize("variant", VARIANTS)
def test_whole_equals_split_equals_token_by_token(variant):
    encoder = tiny_encoder(variant)
    x = random_input()
    whole, whole_state = encoder(x)
    split, split_state = run_in_pieces(encoder, x, [7, 8, 19])  # across segments and chunks
    stepped, _ = run_in_pieces(encoder, x, list(range(1, 23)))
    torch.testing.assert_close(split, whole, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(stepped, whole, rtol=1e-10, atol=1e-12)
    # The states continue identically too.
    more = random_input(length=9, seed=2)
    torch.testing.assert_close(encoder(more, split_state)[0], encoder(more, whole_state)[0],
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("variant", VARIANTS)
def test_trailing_padding_changes_no_valid_output(variant):
    encoder = tiny_encoder(variant)
    x = random_input(length=20)
    mask = torch.ones(2, 20, dtype=torch.bool)
    mask[1, 13:] = False
    padded = x.clone()
    padded[1, 13:] = 7.0  # garbage in the padding
    y, state = encoder(padded, mask=mask)
    alone, alone_state = encoder(x[1:, :13])
    torch.testing.assert_close(y[1:, :13], alone, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(y[:1], encoder(x[:1])[0], rtol=1e-10, atol=1e-12)
    assert torch.equal(y[1, 13:], torch.zeros_like(y[1, 13:]))
    if variant == "mac":  # rows stopped at different places inside their segments
        with pytest.raises(ValueError, match="different positions"):
            encoder(random_input(length=3), state)
        return
    more = random_input(length=8, seed=3)
    continued, _ = encoder(more, state)
    continued_alone, _ = encoder(more[1:], alone_state)
    torch.testing.assert_close(continued[1:], continued_alone, rtol=1e-10, atol=1e-12)


def test_mac_continues_rows_that_stopped_at_the_same_place():
    encoder = tiny_encoder("mac")
    x = random_input(length=16)
    mask = torch.ones(2, 16, dtype=torch.bool)
    mask[:, 14:] = False
    _, state = encoder(x, mask=mask)
    more = random_input(length=9, seed=4)
    continued, _ = encoder(more, state)
    _, plain_state = encoder(x[:, :14])
    torch.testing.assert_close(continued, encoder(more, plain_state)[0], rtol=1e-10,
                               atol=1e-12)


def test_mac_retrieves_with_the_memory_before_the_segment():
    """The retrieved tokens of segment s depend on segments < s only (retrieve → attend →
    store), and change when an earlier segment changes."""
    encoder = tiny_encoder("mac", depth=1)
    block = encoder.blocks[0]
    retrieve = block.memory.retrieve
    recorded = []

    def recording_retrieve(queries, state):
        out = retrieve(queries, state)
        recorded.append(out.detach().clone())
        return out

    block.memory.retrieve = recording_retrieve
    x = random_input(length=24)  # segments of 6: [0, 6) [6, 12) [12, 18) [18, 24)
    encoder(x)
    first, recorded[:] = list(recorded), []
    changed = x.clone()
    changed[:, 12:18] += 1.0  # segment 2 only
    encoder(changed)
    assert len(first) == len(recorded) == 4
    for segment in (0, 1, 2):  # retrieved before segment 2 was stored
        assert torch.equal(first[segment], recorded[segment])
    assert not torch.allclose(first[3], recorded[3])  # segment 3 reads what segment 2 stored


ABLATIONS = [dict(), dict(persistent_tokens=0), dict(memory_depth=1), dict(convolution=False),
             dict(momentum=False), dict(forgetting=False), dict(attention=False),
             dict(memory_tokens=0), dict(ffn_mult=0.0)]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("flags", ABLATIONS, ids=lambda flags: ",".join(flags) or "full")
def test_every_ablation_builds_and_trains_a_step(variant, flags):
    encoder = tiny_encoder(variant, dtype=torch.float32, **flags)
    optimizer = torch.optim.SGD(encoder.parameters(), lr=0.1)
    x = random_input(length=14).float()
    target = torch.randn(2, 14, 16, generator=torch.Generator().manual_seed(5))
    before = {name: p.detach().clone() for name, p in encoder.named_parameters()}
    loss = (encoder(x)[0] - target).pow(2).mean()
    loss.backward()
    missing = [name for name, p in encoder.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    assert all(torch.isfinite(p.grad).all() for p in encoder.parameters())
    optimizer.step()
    moved = [name for name, p in encoder.named_parameters() if not torch.equal(p, before[name])]
    assert len(moved) == len(before)
    assert (encoder(x)[0] - target).pow(2).mean() < loss


@pytest.mark.parametrize("variant", VARIANTS)
def test_bf16_autocast_keeps_the_memory_in_fp32(variant):
    encoder = tiny_encoder(variant, dtype=torch.float32)
    x = random_input(length=20).float()
    reference, _ = encoder(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, state = encoder(x)
    assert all(w.dtype == torch.float32 for block in state.blocks
               for w in block.memory.memory.weights)
    if variant in ("mag", "mal"):  # the attention did run in bf16
        assert state.blocks[0].attention.keys.dtype == torch.bfloat16
    # Streaming under autocast continues like one call under autocast.
    with torch.autocast("cpu", dtype=torch.bfloat16):
        split, _ = run_in_pieces(encoder, x, [7, 13])
    torch.testing.assert_close(split.float(), y.float(), rtol=0.02, atol=0.02)
    assert torch.isfinite(y).all()
    relative = (y.float() - reference).norm() / reference.norm()
    assert relative < 0.05


@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_traces_without_graph_breaks(variant):
    encoder = tiny_encoder(variant, dtype=torch.float32)
    x = random_input(length=20).float()
    explanation = torch._dynamo.explain(encoder._forward)(x, None, None)
    assert explanation.graph_break_count == 0, explanation.break_reasons


def test_torch_compile_matches_eager():
    """Inductor on CPU, on MAC: attention, the segment loop and the memory scan in one graph."""
    torch._dynamo.reset()
    encoder = tiny_encoder("mac", dtype=torch.float32, depth=1)
    x = random_input(length=12).float()
    eager, _ = encoder(x)
    compiled, _ = torch.compile(encoder)(x)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("variant", ["mag", "mal", "mac"])
@torch.no_grad()  # flex_attention has no backward on CPU
def test_flex_attention_backend_equals_sdpa(variant):
    sdpa = tiny_encoder(variant, dtype=torch.float32, attention_backend="sdpa")
    flex = tiny_encoder(variant, dtype=torch.float32, attention_backend="flex")
    flex.load_state_dict(sdpa.state_dict())
    x = random_input(length=20).float()
    mask = torch.ones(2, 20, dtype=torch.bool)
    mask[1, 15:] = False
    y_sdpa, state_sdpa = sdpa(x[:, :12])
    y_flex, state_flex = flex(x[:, :12])
    torch.testing.assert_close(y_flex, y_sdpa, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(flex(x[:, 12:], state_flex, mask[:, 12:])[0],
                               sdpa(x[:, 12:], state_sdpa, mask[:, 12:])[0], rtol=1e-4,
                               atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_bidirectional_sees_both_directions_and_respects_padding(variant):
    encoder = tiny_encoder(variant, bidirectional=True)
    x = random_input(length=15)
    y, state = encoder(x)
    assert state is None and y.shape == x.shape
    changed = x.clone()
    changed[:, -1] += 1.0
    assert not torch.allclose(encoder(changed)[0][:, 0], y[:, 0])  # the end reaches the start
    mask = torch.ones(2, 15, dtype=torch.bool)
    mask[1, 9:] = False
    padded, _ = encoder(x, mask=mask)
    torch.testing.assert_close(padded[1:, :9], encoder(x[1:, :9])[0], rtol=1e-10, atol=1e-12)
    assert torch.equal(padded[1, 9:], torch.zeros_like(padded[1, 9:]))
    with pytest.raises(ValueError, match="no streaming state"):
        encoder.initial_state(2)


@pytest.mark.parametrize("bad,error,match", [
    (lambda x: x[:, :0], ValueError, "empty"),
    (lambda x: x[..., :5], ValueError, "dim=16"),
    (lambda x: x[0], ValueError, "dim=16"),
    (lambda x: x.long(), TypeError, "floating-point"),
    (lambda x: x.numpy(), TypeError, "torch.Tensor"),
    (lambda x: torch.where(torch.rand_like(x) < 0.1, float("nan"), x), ValueError, "NaN"),
    (lambda x: x.index_fill(1, torch.tensor([3]), float("inf")), ValueError, "infinite"),
])
def test_bad_input_is_refused(bad, error, match):
    encoder = tiny_encoder("mag")
    with pytest.raises(error, match=match):
        encoder(bad(random_input()))


def test_bad_mask_and_state_are_refused():
    encoder = tiny_encoder("mal")
    x = random_input(length=6)
    with pytest.raises(TypeError, match="bool"):
        encoder(x, mask=torch.ones(2, 6))
    with pytest.raises(ValueError, match="mask must be"):
        encoder(x, mask=torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="end of a row"):
        encoder(x, mask=torch.tensor([[False] + [True] * 5] * 2))
    _, state = encoder(x)
    with pytest.raises(ValueError, match="rows"):
        encoder(x[:1], state)
    with pytest.raises(TypeError, match="EncoderState"):
        encoder(x, state.blocks[0])
    with pytest.raises(ValueError, match="blocks"):
        tiny_encoder("mal", depth=3)(x, state)


@pytest.mark.parametrize("kwargs,match", [
    (dict(variant="mamba"), "variant"), (dict(depth=0), "depth"), (dict(window=0), "window"),
    (dict(persistent_tokens=-1), "persistent_tokens"), (dict(dropout=1.0), "dropout"),
    (dict(attention_backend="cuda"), "attention_backend"), (dict(dim=18, heads=4), "divisible"),
    (dict(ffn_mult=float("nan")), "ffn_mult"),
])
def test_bad_configuration_is_refused(kwargs, match):
    options = dict(variant="mag", dim=16, heads=2)
    options.update(kwargs)
    with pytest.raises(ValueError, match=match):
        TitansEncoder(**options)


@pytest.mark.parametrize("variant", VARIANTS)
def test_masked_continued_forward_has_no_graph_break_in_the_loop(variant):
    encoder = tiny_encoder(variant, dtype=torch.float32)
    x = random_input(length=20).float()
    _, state = encoder(x[:, :7])
    mask = torch.ones(2, 13, dtype=torch.bool)
    mask[1, 9:] = False
    explanation = torch._dynamo.explain(encoder._forward)(x[:, 7:], state, mask)
    # MAC reads the rows' end positions once per block, after its loop (to keep the segment).
    inside = [reason for reason in explanation.break_reasons
              if not any(frame.name == "_close" for frame in reason.user_stack)]
    assert not inside, inside


def test_mac_without_attention_continues_rows_of_any_length():
    encoder = tiny_encoder("mac", attention=False)
    x = random_input(length=20)
    mask = torch.ones(2, 20, dtype=torch.bool)
    mask[1, 13:] = False
    _, state = encoder(x, mask=mask)
    _, alone_state = encoder(x[1:, :13])
    more = random_input(length=8, seed=3)
    torch.testing.assert_close(encoder(more, state)[0][1:], encoder(more[1:], alone_state)[0],
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("variant", VARIANTS)
def test_an_all_padding_call_leaves_the_stream_unchanged(variant):
    encoder = tiny_encoder(variant)
    x = random_input(length=9)  # mid-segment and mid-chunk
    _, state = encoder(x)
    y, padded_state = encoder(random_input(length=8, seed=6), state,
                              torch.zeros(2, 8, dtype=torch.bool))
    assert torch.equal(y, torch.zeros_like(y))
    more = random_input(length=10, seed=7)
    torch.testing.assert_close(encoder(more, padded_state)[0], encoder(more, state)[0],
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("variant", ["mag", "mal", "mac"])
def test_persistent_tokens_learn_after_the_state_is_detached(variant):
    """Truncated back-propagation: the second window still trains the persistent tokens."""
    encoder = tiny_encoder(variant, dtype=torch.float32)
    x = random_input(length=16).float()
    _, state = encoder(x[:, :8])
    y, _ = encoder(x[:, 8:], state.detach())
    y.pow(2).sum().backward()
    for block in encoder.blocks:
        assert block.persistent.tokens.grad is not None
        assert block.persistent.tokens.grad.abs().sum() > 0


def test_a_state_from_another_encoder_is_refused():
    x = random_input(length=6)
    _, mag_state = tiny_encoder("mag")(x)
    with pytest.raises(ValueError, match="not a MAC state"):
        tiny_encoder("mac")(x, mag_state)
    with pytest.raises(ValueError, match="attention window"):
        tiny_encoder("mag", window=9)(x, mag_state)
    with pytest.raises(ValueError, match="chunk_size"):
        tiny_encoder("mag", chunk_size=8)(x, mag_state)


def test_block_configuration_is_validated():
    from titans_seq.blocks import BlockConfig
    with pytest.raises(ValueError, match="segment_len"):
        BlockConfig(dim=16, segment_len=0)
    with pytest.raises(ValueError, match="memory_tokens"):
        BlockConfig(dim=16).with_(memory_tokens=-2)
