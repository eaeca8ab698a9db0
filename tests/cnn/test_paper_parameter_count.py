"""The paper's parameter count (347,493, section 2.3.3) against ours (347,057): derived, not pinned.

The paper fixes everything about the network except the six filter counts of its Figure 3, which
the text does not give: 3x3 convolutions, a batch normalization after each, a (4, 4, 128) output of
the convolutional stage, dense layers of 112, 56, 22 and 5 neurons. Keras counts a Conv2D as
``9 c_in c_out + c_out``, a BatchNormalization as ``4 c`` (gamma, beta and the two moving
statistics, trainable or not) and a Dense as ``n_in n_out + n_out``.

What follows, asserted below:

* ours, widths 16, 16, 32, 32, 64, 128, counted layer by layer as Keras would: 347,057;
* the dense stage is fixed by the text: 2048 * 112 + 112 + ... = 237,185, so the paper's
  convolutional stage holds 347,493 - 237,185 = 110,308 parameters;
* a convolutional layer of ``c`` filters counts ``c (9 c_in + 1 + 4)``, a multiple of ``c``: if every
  width is a multiple of 8, so is the stage, whatever the counting convention (bias or not, batch
  normalization counted with 4 or only its 2 trainable numbers); 110,308 = 8 * 13,788 + 4 is not.
  So no Figure 3 of multiples of 8 gives 347,493 (the enumeration below checks it exhaustively),
  and the paper's count cannot be matched by any such choice of widths;
* the 436 missing parameters are one short of one more filter in the second or the third
  convolution (+437 each: ``9 * 16 + 9 * 32 + 5``): widths 16, 17, 32, 32, 64, 128 or 16, 16, 33,
  32, 64, 128 give 347,494, one over.

We keep the power-of-two ladder 16-128, 0.13% under the paper's count.
"""

from __future__ import annotations

import itertools

import numpy as np
from torch import nn

from laue_live.cnn import ARCHITECTURES, SpotCNN, keras_parameter_count

PAPER_COUNT = 347_493  # the paper, section 2.3.3: "theta in R^347493"
OURS = 347_057
DENSE = (112, 56, 22, 5)  # the paper, section 2.3.2
FLAT = 4 * 4 * 128  # the (4, 4, 128) output of the convolutional stage


def keras_count(widths, dense=DENSE, *, conv_bias=True, bn_per_channel=4) -> tuple[int, int]:
    """(convolutional stage, dense stage) parameters of the paper's layout, counted as Keras does."""
    chans = (1, *widths)
    conv = sum(9 * a * b + (b if conv_bias else 0) + bn_per_channel * b for a, b in itertools.pairwise(chans))
    sizes = (FLAT, *dense)
    dense_n = sum(a * b + b for a, b in itertools.pairwise(sizes))
    return conv, dense_n


def test_our_count_layer_by_layer():
    widths = ARCHITECTURES["paper"].widths
    assert widths == (16, 16, 32, 32, 64, 128)
    conv, dense = keras_count(widths)
    assert (conv, dense) == (109_872, 237_185)
    assert conv + dense == OURS
    net = SpotCNN()
    assert keras_parameter_count(net) == OURS
    # the same number from the torch modules, mapped one to one onto Keras layers
    by_layer = 0
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            by_layer += m.weight.numel() + m.bias.numel()
        elif isinstance(m, nn.BatchNorm2d):
            by_layer += 4 * m.num_features
        elif isinstance(m, nn.Linear):
            by_layer += m.in_features * m.out_features + m.out_features
    assert by_layer == OURS
    assert round(100 * (PAPER_COUNT - OURS) / PAPER_COUNT, 2) == 0.13


def test_paper_count_is_out_of_reach_of_widths_in_multiples_of_8():
    _, dense = keras_count(ARCHITECTURES["paper"].widths)
    paper_conv = PAPER_COUNT - dense
    assert paper_conv == 110_308 and paper_conv % 8 == 4
    # exhaustively: five free widths in 8, 16, ..., 128 and the last 128, four counting conventions
    vals = np.arange(8, 129, 8)
    grid = np.stack(np.meshgrid(*[vals] * 5, indexing="ij"), -1).reshape(-1, 5)
    w = np.c_[np.ones(len(grid), np.int64), grid, np.full(len(grid), 128)]
    for conv_bias, bn in itertools.product((True, False), (4, 2)):
        per_channel = 9 * w[:, :-1] + (1 if conv_bias else 0) + bn
        conv = (per_channel * w[:, 1:]).sum(axis=1)
        assert (conv % 8 == 0).all()
        assert not (conv + dense == PAPER_COUNT).any(), (conv_bias, bn)
        # the formula of the enumeration is the one of keras_count
        k = 1234
        assert conv[k] == keras_count(tuple(w[k, 1:]), conv_bias=conv_bias, bn_per_channel=bn)[0]


def test_the_missing_436_are_one_short_of_one_more_filter():
    for widths in ((16, 17, 32, 32, 64, 128), (16, 16, 33, 32, 64, 128)):
        conv, dense = keras_count(widths)
        assert conv + dense == OURS + 9 * 16 + 9 * 32 + 5 == PAPER_COUNT + 1
