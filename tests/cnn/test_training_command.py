"""The model card's "Reproduce" line names the training, not the report written beside it."""

from laue_live.cli._train_stream import training_command


def test_report_and_cache_options_are_left_out():
    args = ["train", "--out", "models/spot_cnn.safetensors", "--report", "docs/report", "--notes", "n.md",
            "--threads", "1", "--compare", "paper=p.safetensors", "--stream-dir=cache", "--network", "tiny",
            "--eval-frames", "f.tif", "--time-limit", "60"]
    assert training_command(args) == (
        "laue-live train --out models/spot_cnn.safetensors --threads 1 --network tiny"
    )


def test_what_changes_the_weights_is_kept():
    args = ["train", "--samples", "1500000", "--seed", "3", "--real-frames", "a b.tif", "--lr=0.001"]
    want = "laue-live train --samples 1500000 --seed 3 --real-frames 'a b.tif' --lr=0.001"
    assert training_command(args) == want
