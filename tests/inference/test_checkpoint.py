"""Reading IC checkpoints: the network and its progress, or an error that names the file."""

from __future__ import annotations

import pytest
import torch

from inference.ic.checkpoint import checkpoint_progress, load_checkpoint


def test_progress_is_read_without_the_network_and_matches_the_full_read(barely_trained_checkpoint):
    progress = checkpoint_progress(barely_trained_checkpoint)
    assert progress["traces"] == 640 and progress["steps"] == 10
    assert progress == load_checkpoint(barely_trained_checkpoint)[1]["progress"]


@pytest.mark.parametrize("read", [checkpoint_progress, load_checkpoint])
def test_a_file_that_is_not_a_checkpoint_is_named(read, tmp_path):
    with pytest.raises(ValueError, match="absent.ckpt does not exist"):
        read(tmp_path / "absent.ckpt")
    (tmp_path / "text.ckpt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="text.ckpt is not a readable IC checkpoint"):
        read(tmp_path / "text.ckpt")
    torch.save({"format": "something else"}, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="other.ckpt is not an IC network checkpoint"):
        read(tmp_path / "other.ckpt")
