"""The CycleGAN image history pool: pass-through, history semantics, determinism and resuming."""

from __future__ import annotations

import pytest
import torch

from rlcyclegan.nets.image_pool import ImagePool


def batches(n: int, b: int = 4) -> list[torch.Tensor]:
    """n batches of b tiny images; image number i (over all batches) is filled with the value i."""
    return [torch.arange(j * b, (j + 1) * b, dtype=torch.float32).reshape(b, 1, 1, 1).expand(b, 3, 2, 2) for j in range(n)]


def ids(images: torch.Tensor) -> list[int]:
    return images[:, 0, 0, 0].long().tolist()


def run(pool: ImagePool, inputs: list[torch.Tensor]) -> list[list[int]]:
    return [ids(pool.query(x)) for x in inputs]


def test_size_zero_passes_the_batch_through():
    x = torch.randn(4, 3, 2, 2)

    assert ImagePool(0).query(x) is x


def test_negative_size_raises():
    with pytest.raises(ValueError, match="size"):
        ImagePool(-1)


def test_filling_pool_returns_the_new_images_unchanged():
    pool = ImagePool(8, torch.Generator().manual_seed(0))

    assert run(pool, batches(2)) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert len(pool) == 8


def test_pool_returns_only_images_queried_before_or_now():
    pool = ImagePool(5, torch.Generator().manual_seed(0))

    seen: set[int] = set()
    for x in batches(20):
        seen.update(ids(x))
        assert set(ids(pool.query(x))) <= seen


def test_full_pool_swaps_about_half_of_the_images_for_older_ones():
    pool = ImagePool(4, torch.Generator().manual_seed(0))
    inputs = batches(250)

    returned = run(pool, inputs)

    new = [r == i for x, out in zip(inputs[1:], returned[1:]) for r, i in zip(out, ids(x))]
    assert 0.45 < 1 - sum(new) / len(new) < 0.55


def test_swapped_out_image_is_replaced_by_the_new_one():
    pool = ImagePool(2, torch.Generator().manual_seed(0))
    pool.query(batches(1, b=2)[0])  # pool holds images 0 and 1

    swaps = 0
    for x in batches(40, b=1)[2:]:
        before = set(ids(torch.stack(pool.images)))
        (r,), (i,) = ids(pool.query(x)), ids(x)
        after = set(ids(torch.stack(pool.images)))
        if r == i:
            assert after == before
        else:
            assert r in before and after == before - {r} | {i}
            swaps += 1

    assert swaps > 0


def test_same_generator_seed_gives_the_same_draws():
    a = run(ImagePool(3, torch.Generator().manual_seed(7)), batches(10))
    b = run(ImagePool(3, torch.Generator().manual_seed(7)), batches(10))
    c = run(ImagePool(3, torch.Generator().manual_seed(8)), batches(10))

    assert a == b and a != c


def test_default_generator_follows_torch_manual_seed():
    torch.manual_seed(3)
    a = run(ImagePool(3), batches(10))
    torch.manual_seed(3)
    b = run(ImagePool(3), batches(10))

    assert a == b


def test_state_dict_round_trip_gives_identical_subsequent_outputs():
    inputs = batches(12)
    original = ImagePool(3, torch.Generator().manual_seed(0))
    run(original, inputs[:6])

    state = original.state_dict()
    resumed = ImagePool(3, torch.Generator().manual_seed(123))
    resumed.load_state_dict(state)

    assert run(resumed, inputs[6:]) == run(original, inputs[6:])


def test_state_dict_is_a_snapshot_unaffected_by_later_queries():
    pool = ImagePool(2, torch.Generator().manual_seed(0))
    run(pool, batches(3))
    state = pool.state_dict()
    stored = [img.clone() for img in state["images"]]

    run(pool, batches(5)[3:])

    assert all(torch.equal(a, b) for a, b in zip(state["images"], stored))


def test_state_dict_survives_torch_save(tmp_path):
    pool = ImagePool(3, torch.Generator().manual_seed(0))
    run(pool, batches(4))
    torch.save(pool.state_dict(), tmp_path / "pool.pt")

    resumed = ImagePool(3)
    resumed.load_state_dict(torch.load(tmp_path / "pool.pt"))

    assert run(resumed, batches(8)[4:]) == run(pool, batches(8)[4:])


def test_loading_a_state_of_another_size_raises():
    with pytest.raises(ValueError, match="size"):
        ImagePool(4).load_state_dict(ImagePool(3).state_dict())


def test_returned_images_are_detached():
    x = torch.randn(3, 3, 2, 2, requires_grad=True)

    assert not ImagePool(2, torch.Generator().manual_seed(0)).query(x).requires_grad
