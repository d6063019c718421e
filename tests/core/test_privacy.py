import pytest

from ketaweight.core.privacy import mask_count, masked_or_exact


@pytest.mark.parametrize("n, shown", [(0, "0"), (1, "<11"), (10, "<11"), (11, "11"), (12345, "12,345"), (None, "—")])
def test_mask_count(n, shown):
    assert mask_count(n) == shown


def test_masked_or_exact():
    assert masked_or_exact(5) == "<11" and masked_or_exact(11) == 11 and masked_or_exact(0) == 0


def test_negative_count_is_an_error():
    with pytest.raises(ValueError):
        mask_count(-1)
