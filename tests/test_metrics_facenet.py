"""FaceNet distance end to end with randomly initialised backbones
saved where the real weights are looked for (the loading and verification
code is the real one; only the expected digest is the test file's)."""

import numpy as np
import pytest
import torch

from tests.pretrained import metric_ctx, metric_data


def test_facenet_parameter_names_and_sizes_are_facenet_pytorchs():
    from mibench_core.metrics.facenet import InceptionResnetV1

    model = InceptionResnetV1()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    # facenet-pytorch's module names (models/inception_resnet_v1.py) and its 27,910,327 parameters
    # with the 8631-way VGGFace2 logits layer we leave out
    assert sum(p.numel() for p in model.parameters()) + 512 * 8631 + 8631 == 27_910_327
    assert sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()) == 132
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == 111
    assert shapes["conv2d_1a.conv.weight"] == (32, 3, 3, 3)
    assert shapes["repeat_1.4.branch2.2.conv.weight"] == (32, 32, 3, 3)
    assert shapes["mixed_6a.branch1.2.conv.weight"] == (256, 192, 3, 3)
    assert shapes["repeat_2.9.branch1.2.conv.weight"] == (128, 128, 7, 1)
    assert shapes["mixed_7a.branch2.2.conv.weight"] == (256, 256, 3, 3)
    assert shapes["block8.conv2d.weight"] == (1792, 384, 1, 1)
    assert shapes["last_linear.weight"] == (512, 1792)
    assert shapes["last_bn.running_var"] == (512,)
    assert model.repeat_1[0].scale == 0.17 and model.repeat_2[0].scale == 0.10 and model.repeat_3[0].scale == 0.20


def test_facenet_distance_end_to_end_on_a_face_dataset(homes, save_expected):
    from mibench_core.metrics.facenet import InceptionResnetV1, embed, facenet_distance

    torch.manual_seed(0)
    model = InceptionResnetV1().eval()
    for m in model.modules():  # variance-preserving init, so that random embeddings still differ
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    state = dict(model.state_dict())
    state["logits.weight"], state["logits.bias"] = torch.zeros(3, 512), torch.zeros(3)  # as the published files
    path = homes / "torch" / "checkpoints" / "20180402-114759-vggface2.pt"  # facenet-pytorch's cache
    save_expected("facenet-vggface2", state, path)
    recon, labels, px, py = metric_data(res=16, n=1, m=2)
    res = facenet_distance(metric_ctx(recon, labels, px, py, dataset="image-folder", label="celeba"), image_size=80)
    assert res.missing == {}, res.missing
    e_rec, e_ref = embed(model, recon, 80), embed(model, px.float() / 127.5 - 1, 80)
    expected = [
        min(float(((e_rec[i] - e_ref[j]) ** 2).sum()) for j in range(len(px)) if py[j] == labels[i]) for i in (0, 1)
    ]
    assert min(expected) > 1e-3  # the random embeddings differ: the comparison is not between zeros
    assert res.overall["facenet_dist"] == pytest.approx(np.mean(expected), rel=1e-5)


def test_facenet_is_missing_on_non_face_data_unless_forced(homes):
    from mibench_core.metrics.facenet import facenet_distance

    recon, labels, px, py = metric_data(res=16, n=1, m=1)
    res = facenet_distance(metric_ctx(recon, labels, px, py))
    assert res.overall["facenet_dist"] is None and "not a face dataset" in res.missing["facenet_dist"]
    res = facenet_distance(metric_ctx(recon, labels, px, py), face_dataset=True)
    assert "20180402-114759-vggface2.pt" in res.missing["facenet_dist"]  # forced: now only the weights are missing
