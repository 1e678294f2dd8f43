"""Hypothesis strategies shared by the tests: random small lrpkit architectures."""

from hypothesis import strategies as st

from lrpkit import layers as L
from lrpkit.errors import SpecError


def fits(spec, shape):
    try:
        return spec.output_shape(shape)
    except SpecError:
        return None


@st.composite
def image_layers(draw, shape, always_relu=False):
    """Pad / Conv (stride, padding) / ReLU / pooling blocks on an image of ``shape``; returns (layers, shape)."""
    layers = []
    if draw(st.booleans()):
        layers.append(L.Pad(draw(st.integers(1, 2)), draw(st.sampled_from([None, 0.0, 0.3]))))
        shape = layers[-1].output_shape(shape)
    for _ in range(draw(st.integers(1, 3))):
        conv = L.Conv(
            draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(0, 2))
        )
        if fits(conv, shape) is None:
            break
        shape = conv.output_shape(shape)
        layers.append(conv)
        if always_relu or draw(
            st.integers(0, 4)
        ):  # mostly a ReLU; sometimes a conv straight into pooling or the next conv
            layers.append(L.ReLU())
        kind = draw(st.sampled_from([None, L.SumPool, L.AvgPool, L.MaxPool]))
        pool = kind and kind(draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        if pool and fits(pool, shape):
            layers.append(pool)
            shape = pool.output_shape(shape)
    if draw(st.booleans()):
        layers.append(L.Flatten())
    return layers, shape


@st.composite
def architectures(draw, always_relu=False):
    """``(layers, input_shape, classes)``: a random small MLP or CNN (Pad, Conv with stride/padding, ReLU,
    sum/avg/max pooling, Flatten, Linear, Dropout) after a Format/NoFormat layer, ending in Linear(classes).

    ``always_relu``: every hidden Conv is followed by a ReLU (else mostly, not always)."""
    first = draw(st.sampled_from([L.Format(), L.NoFormat(), L.Format(-0.5, 2.0)]))
    if draw(st.booleans()):
        input_shape = (draw(st.integers(1, 3)), draw(st.integers(3, 9)), draw(st.integers(3, 9)))
        layers, _ = draw(image_layers(input_shape, always_relu))
    else:
        input_shape, layers = draw(st.sampled_from([(1,), (5,), (2, 2, 3)])), []
    for _ in range(draw(st.integers(0, 2))):
        layers += [L.Linear(draw(st.integers(1, 6))), L.ReLU()]
        if draw(st.booleans()):
            layers.append(L.Dropout(0.3))
    classes = draw(st.integers(1, 4))
    return [first, *layers, L.Linear(classes)], input_shape, classes
