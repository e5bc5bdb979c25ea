"""CUDA path: the same code on the GPU gives the CPU's results within tolerance (skips without
CUDA)."""

import numpy as np
import pytest
import torch

from tardiff.diffusion.samplers import generate
from tardiff.diffusion.schedule import NoiseSchedule, cosine_betas
from tardiff.guidance.hook import Guidance
from tardiff.guidance.influence import influence_vector
from tardiff.guidance.terms import double_backprop, finite_difference
from tardiff.models.classifier import build_classifier
from tardiff.models.denoiser import Denoiser
from tardiff.runtime import pick_device

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]
CUDA = torch.device("cuda")


def _models(seed=0, T=24, C=5):
    torch.manual_seed(seed)
    classifier = build_classifier("gru", C, 16, 1, 0.0).eval()
    denoiser = Denoiser(C, T, base_channels=8, channel_mults=(1, 2), num_res_blocks=1).eval()
    for p in denoiser.parameters():  # non-zero output convs so the sampler does real work
        torch.nn.init.normal_(p, std=0.05)
    return classifier, denoiser


def test_auto_device_picks_cuda():
    assert pick_device("auto").type == "cuda"
    assert pick_device("cpu").type == "cpu"


def test_influence_and_guidance_terms_match_cpu():
    classifier, _ = _models()
    x = torch.randn(32, 24, 5)
    y = (torch.rand(32) < 0.3).long()
    G_cpu, _ = influence_vector(classifier, x, y, normalize="none")
    gpu = build_classifier("gru", 5, 16, 1, 0.0).eval()
    gpu.load_state_dict(classifier.state_dict())
    gpu.to(CUDA)
    G_gpu, _ = influence_vector(gpu, x.to(CUDA), y.to(CUDA), normalize="none")
    torch.testing.assert_close(G_gpu.cpu(), G_cpu, rtol=1e-4, atol=1e-5)
    for term in (double_backprop, finite_difference):
        cpu_J = term(classifier, G_cpu, x, y)
        gpu_J = term(gpu, G_gpu, x.to(CUDA), y.to(CUDA)).cpu()
        assert (gpu_J - cpu_J).norm() / cpu_J.norm() < 1e-3


def test_guided_sampling_matches_cpu():
    classifier, denoiser = _models()
    schedule = NoiseSchedule(cosine_betas(50), "v")
    labels = np.array([0] * 12 + [1] * 4)
    G = torch.randn(sum(p.numel() for p in classifier.parameters()))
    outputs = {}
    for device in ("cpu", "cuda"):
        clf = build_classifier("gru", 5, 16, 1, 0.0).eval()
        clf.load_state_dict(classifier.state_dict())
        den = Denoiser(5, 24, base_channels=8, channel_mults=(1, 2), num_res_blocks=1).eval()
        den.load_state_dict(denoiser.state_dict())
        clf.to(device), den.to(device)
        guidance = Guidance("tardiff", clf, G.to(device), scale=0.1)
        outputs[device], _ = generate(
            den, schedule, labels, 24, 5, batch_size=8, sampler="ddim", steps=10, eta=1.0,
            guidance=guidance, seed=0, device=torch.device(device), progress=False,
        )  # fmt: skip
    np.testing.assert_allclose(outputs["cuda"], outputs["cpu"], rtol=1e-3, atol=1e-3)
