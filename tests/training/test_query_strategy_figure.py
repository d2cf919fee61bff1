"""The query-strategy figure follows the task's design dimensions: strip, scatter, heatmap."""

import numpy as np
import pytest

from tfp_aline.training.summaries import query_strategy_figure


@pytest.mark.parametrize(
    "dims, kind",
    [(1, "strip"), (2, "scatter"), (6, "heatmap")],
)
def test_the_figure_is_drawn_by_design_dimensions(dims, kind):
    chosen = np.random.default_rng(0).normal(size=(5, 7, dims))  # [T, B, Dx]
    names = [f"x{i}" for i in range(dims)]
    fig = query_strategy_figure(chosen, names, "title")
    ax = fig.axes[0]
    if kind == "heatmap":
        (image,) = ax.get_images()
        assert image.get_array().shape == (dims, 5)  # inputs x steps
        assert [t.get_text() for t in ax.get_yticklabels()] == names
    else:
        (points,) = ax.collections
        assert len(points.get_offsets()) == 5 * 7  # every episode's choice at every step
        assert ax.get_ylabel() == names[-1] and not ax.get_images()
        if kind == "scatter":
            assert ax.get_xlabel() == "x0" and len(fig.axes) == 2  # the step colour bar
            np.testing.assert_allclose(points.get_offsets(), chosen.reshape(-1, 2))
